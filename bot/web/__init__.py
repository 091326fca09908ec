"""The officers' desk: a server-rendered web application for information requests.

`app.py` builds the Flask application and its guards, `views.py` the pages, `auth.py` sign-in
(single-sign-on header, local accounts from `accounts.py`, CSRF, rate limiting), `queue.py` and
`overview.py` what the pages show, `charts.py` the SVG charts, `serve.py` the HTTP server, and
`cli.py` the `clerk web` verbs. Templates and the one stylesheet live beside them; pages need no
JavaScript and load nothing from elsewhere.
"""

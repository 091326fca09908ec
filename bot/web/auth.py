"""Who is signed in to the desk, and the guards around it.

- `proxy_officer`: the officer named by the single-sign-on proxy's header, believed only when
  the request comes straight from a configured proxy address.
- `LoginLimiter`: failed password sign-ins counted per address and per account name.
- `csrf_token` / `csrf_ok`: one random token per session, required in every form.
- `session_key`: the key signing session cookies (the setting, or one kept in the data folder).
- `DeskSessionInterface`: session cookies marked Secure whenever the page came over HTTPS.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from flask import Request, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.datastructures import Headers

from bot.settings import Settings, WebSettings
from indexer.errors import ConfigError

SECRET_KEY_FILE = "web-secret-key"  # noqa: S105 - a file name, not a secret
CSRF_FIELD = "csrf_token"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(web: WebSettings) -> tuple[Network, ...]:
    """The configured proxy addresses, checked once at start-up."""
    networks = []
    for item in web.trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"CLERK_WEB_TRUSTED_PROXIES: {item!r} is not an address or network"
            ) from exc
    if web.trusted_header and not networks:
        raise ConfigError(
            "CLERK_WEB_TRUSTED_HEADER is set but CLERK_WEB_TRUSTED_PROXIES is empty: name the "
            "single-sign-on proxy's addresses, or anyone could sign in by sending the header"
        )
    return tuple(networks)


def from_proxy(remote_addr: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether the request's own peer (never a forwarded-for header) is a trusted proxy."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def proxy_officer(
    web: WebSettings, networks: tuple[Network, ...], remote_addr: str | None, headers: Headers
) -> str | None:
    """The officer the proxy vouches for, or None (no header, not from the proxy, not allowed)."""
    if not web.trusted_header or not from_proxy(remote_addr, networks):
        return None
    name = (headers.get(web.trusted_header) or "").strip()
    if not name or (web.sso_officers and name not in web.sso_officers):
        return None
    return name


def is_https(req: Request, networks: tuple[Network, ...]) -> bool:
    """Served over HTTPS: directly, or by a trusted proxy that says so."""
    if req.is_secure:
        return True
    forwarded = req.headers.get("X-Forwarded-Proto", "").lower()
    return forwarded == "https" and from_proxy(req.remote_addr, networks)


class LoginLimiter:
    """Refuses sign-in after too many failures from one address or for one account name."""

    def __init__(
        self, attempts: int, window_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self.attempts, self.window, self.clock = attempts, window_seconds, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allowed(self, address: str, name: str) -> bool:
        with self._lock:
            return all(self._recent(key) < self.attempts for key in self._keys(address, name))

    def failed(self, address: str, name: str) -> None:
        with self._lock:
            for key in self._keys(address, name):
                self._failures[key].append(self.clock())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"name:{name.casefold()}", None)

    def _keys(self, address: str, name: str) -> tuple[str, str]:
        return f"addr:{address}", f"name:{name.strip().casefold()}"

    def _recent(self, key: str) -> int:
        times = self._failures[key]
        while times and times[0] < self.clock() - self.window:
            times.popleft()
        return len(times)


def csrf_token(session) -> str:
    """This session's form token, made on first use."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def csrf_ok(session, submitted: str | None) -> bool:
    expected = session.get(CSRF_FIELD)
    return bool(expected and submitted) and hmac.compare_digest(expected, submitted or "")


def session_key(settings: Settings) -> str:
    """CLERK_WEB_SECRET_KEY, else a random key made once and kept (owner-only) in the data
    folder, so sessions survive a restart and every desk process on the volume shares it."""
    if settings.web.secret_key:
        return settings.web.secret_key
    path = settings.home / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    return path.read_text(encoding="ascii").strip()


class DeskSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with Secure set per request: on whenever the page came
    over HTTPS (directly or through the trusted proxy)."""

    def __init__(self, networks: tuple[Network, ...]):
        self.networks = networks

    def get_cookie_secure(self, app) -> bool:
        return is_https(request, self.networks)

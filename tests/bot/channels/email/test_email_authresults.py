"""Reading the receiving server's Authentication-Results (RFC 8601) as real servers write them."""

from __future__ import annotations

import pytest

from bot.channels.email.authresults import authentication_failure, parse_results
from bot.settings import Settings

GMAIL = (
    "mx.google.com;\r\n       dkim=pass header.i=@kent.gov.uk header.s=s1 header.b=AbC;\r\n"
    "       spf=pass (google.com: domain of jane@kent.gov.uk designates 1.2.3.4 as permitted "
    "sender) smtp.mailfrom=jane@kent.gov.uk;\r\n"
    "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=kent.gov.uk"
)
# Exchange Online writes no server name before the first result
EXCHANGE_FAIL = (
    "spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=kent.gov.uk; dkim=none (message not "
    "signed) header.d=none;dmarc=fail action=quarantine header.from=kent.gov.uk;compauth=fail "
    "reason=000"
)


def test_real_server_headers_are_read():
    results = parse_results(GMAIL)
    assert [(r.method, r.result) for r in results] == [
        ("dkim", "pass"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    assert results[2].get("header.from") == "kent.gov.uk"
    assert [(r.method, r.result) for r in parse_results(EXCHANGE_FAIL)][:3] == [
        ("spf", "fail"),
        ("dkim", "none"),
        ("dmarc", "fail"),
    ]


def test_comments_and_quoted_strings_do_not_split_results():
    value = 'mx.example (a; comment (nested; too)); dmarc=pass reason="one; two" header.from=x.uk'
    [result] = parse_results(value)
    assert (result.method, result.result, result.get("reason")) == ("dmarc", "pass", "one; two")
    assert parse_results("mx.kent.gov.uk 1; none") == ()


@pytest.mark.parametrize(
    ("headers", "failure"),
    [
        ([GMAIL], None),
        ([EXCHANGE_FAIL], "dmarc=fail"),
        (["mx.kent.gov.uk; spf=softfail smtp.mailfrom=kent.gov.uk"], "spf=softfail"),
        (["mx.kent.gov.uk; spf=fail smtp.mailfrom=kent.gov.uk; dmarc=none"], "spf=fail"),
        # DKIM alignment passed DMARC: a failing SPF does not matter
        (["mx.kent.gov.uk; spf=fail smtp.mailfrom=k.uk; dmarc=pass header.from=kent.gov.uk"], None),
        # the server judged another From domain than the one Clerk read
        (["mx.kent.gov.uk; dmarc=pass header.from=evil.com"], "dmarc checked another From domain"),
        # a forged pass added by the sender cannot hide the receiving server's fail
        (["mx.kent.gov.uk; dmarc=fail", "evil.com; dmarc=pass"], "dmarc=fail"),
        (["mx.kent.gov.uk; spf=neutral; dkim=none"], None),
        ([], None),
    ],
)
def test_failures(headers, failure):
    assert authentication_failure(headers, "Kent.gov.uk") == failure


def test_require_auth_setting_reads_false_from_the_environment():
    assert Settings.from_env({}).email.require_auth is True
    for value in ("false", "0", "no", "off"):
        settings = Settings.from_env({"CLERK_EMAIL_REQUIRE_AUTH": value})
        assert settings.email.require_auth is False
    assert Settings.from_env({"CLERK_EMAIL_MAX_MB": "2.5"}).email.max_mb == 2.5

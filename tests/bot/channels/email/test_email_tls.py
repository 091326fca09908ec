"""Connection security and configuration for the email channel: TLS to a real Dovecot with a
self-signed certificate the client is told to trust, and clear errors for missing settings."""

from __future__ import annotations

import ssl

import paths
import pytest
from mailservers import PASSWORD, remove_dovecot, start_dovecot

from bot.channels.email.clients import Mailbox, check_email_settings, connect_imap
from bot.cli.main import main
from bot.settings import Security, Settings
from indexer.errors import ConfigError

FIXTURES = paths.FIXTURES / "email"


@pytest.fixture(scope="module")
def tls_dovecot():
    server = start_dovecot(tls=True)
    yield server
    remove_dovecot(server)


def tls_settings(server, user: str, security: str, ca_file: str) -> Settings:
    port = server.imaps_port if security == "tls" else server.imap_port
    return Settings.from_env(
        {},
        CLERK_IMAP_HOST="127.0.0.1",
        CLERK_IMAP_PORT=port,
        CLERK_IMAP_USER=user,
        CLERK_IMAP_PASSWORD=PASSWORD,
        CLERK_IMAP_SECURITY=security,
        CLERK_EMAIL_CA_FILE=ca_file,
    )


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_over_tls_trusting_the_configured_ca(tls_dovecot, security):
    user = tls_dovecot.new_user()
    tls_dovecot.append(user, (FIXTURES / "plain_question.eml").read_bytes())
    settings = tls_settings(tls_dovecot, user, security, str(tls_dovecot.cert))

    imap = connect_imap(settings)
    mailbox = Mailbox(imap, "INBOX")
    try:
        assert isinstance(imap.sock, ssl.SSLSocket)
        [uid] = mailbox.unprocessed()
        assert b"<plain-question-1@mail.kent.gov.uk>" in mailbox.fetch(uid)
    finally:
        mailbox.close()


def test_untrusted_certificate_is_refused(tls_dovecot):
    settings = tls_settings(tls_dovecot, tls_dovecot.new_user(), "tls", "")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect_imap(settings)


def test_tls_is_the_default():
    settings = Settings.from_env({})
    assert (settings.email.imap_security, settings.email.smtp_security) == (
        Security.TLS,
        Security.STARTTLS,
    )


def test_missing_host_and_user_are_named():
    with pytest.raises(ConfigError, match="CLERK_IMAP_HOST.*CLERK_IMAP_USER"):
        check_email_settings(
            Settings.from_env({}, CLERK_SMTP_HOST="smtp.example", CLERK_EMAIL_ADDRESS="a@b.c")
        )
    with pytest.raises(ConfigError, match="CLERK_IMAP_SECURITY"):
        check_email_settings(
            Settings.from_env(
                {},
                CLERK_IMAP_HOST="h",
                CLERK_IMAP_USER="u",
                CLERK_SMTP_HOST="s",
                CLERK_EMAIL_ADDRESS="a@b.c",
                CLERK_IMAP_SECURITY="ssl",
            )
        )


def test_cli_reports_missing_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(tmp_path))
    assert main(["email", "--once"]) == 2
    err = capsys.readouterr().err
    assert "CLERK_IMAP_HOST" in err and "CLERK_IMAP_USER" in err

"""Connection security and configuration for the email channel: TLS to a real Dovecot with a
self-signed certificate the client is told to trust, and clear errors for missing settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from mailservers import PASSWORD, remove_dovecot, start_dovecot

from bot.cli import main
from bot.email_clients import Mailbox, check_email_settings, connect_imap
from indexer.errors import ConfigError
from indexer.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "email"


@pytest.fixture(scope="module")
def tls_dovecot():
    server = start_dovecot(tls=True)
    yield server
    remove_dovecot(server)


def tls_settings(server, user: str, security: str, ca_file: str) -> Settings:
    port = server.imaps_port if security == "tls" else server.imap_port
    return Settings(
        imap_host="127.0.0.1",
        imap_port=port,
        imap_user=user,
        imap_password=PASSWORD,
        imap_security=security,
        email_ca_file=ca_file,
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
    settings = Settings()
    assert (settings.imap_security, settings.smtp_security) == ("tls", "starttls")


def test_missing_host_and_user_are_named():
    with pytest.raises(ConfigError, match="CLERK_IMAP_HOST.*CLERK_IMAP_USER"):
        check_email_settings(Settings(smtp_host="smtp.example", email_address="a@b.c"))
    with pytest.raises(ConfigError, match="CLERK_IMAP_SECURITY"):
        check_email_settings(
            Settings(
                imap_host="h", imap_user="u", smtp_host="s", email_address="a@b.c",
                imap_security="ssl",
            )
        )  # fmt: skip


def test_cli_reports_missing_settings(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(tmp_path))
    assert main(["email", "--once"]) == 2
    err = capsys.readouterr().err
    assert "CLERK_IMAP_HOST" in err and "CLERK_IMAP_USER" in err

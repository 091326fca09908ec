"""The IMAP and SMTP connections (TLS by default) and the few mailbox operations Clerk uses.

`connect_imap` and `connect_smtp` are the real factories the email assistant is given; tests pass
the same factories pointed at loopback servers. `Mailbox` wraps one logged-in IMAP connection:
search, fetch, flag, move, and wait for new mail (IDLE where the server has it).
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import re
import select
import smtplib
import ssl
import threading
import time
from email.generator import BytesGenerator
from email.message import EmailMessage

from bot.settings import Security, Settings
from indexer.errors import ClerkError, ConfigError

TIMEOUT = 60.0  # seconds for any single network operation
PROCESSED = "$ClerkProcessed"
HEADER_LIMIT = 64 * 1024  # bytes of header read from a message too large to fetch
# Errors after which a new connection is worth trying.
CONNECTION_ERRORS = (OSError, EOFError, imaplib.IMAP4.error, smtplib.SMTPException)


class MessageRefused(ClerkError):
    """The IMAP server answered NO or BAD to a command about one message (fetch, flag, move).

    Not a connection error: the connection is fine and the other messages can still be handled;
    this one is skipped for the pass. Carries the command, the status and the server's response
    code (such as SERVERBUG), never the server's free text."""

    def __init__(self, command: str, status: str, code: str = ""):
        self.command, self.status, self.code = command, status, code
        super().__init__(f"{command} {status}" + (f" [{code}]" if code else ""))


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifying TLS context; trusts settings.email.ca_file when set, else the system's CAs."""
    return ssl.create_default_context(cafile=settings.email.ca_file or None)


def check_email_settings(settings: Settings) -> None:
    """ConfigError naming every missing or impossible email setting."""
    missing = [
        env
        for env, value in (
            ("CLERK_IMAP_HOST", settings.email.imap_host),
            ("CLERK_IMAP_USER", settings.email.imap_user),
            ("CLERK_SMTP_HOST", settings.email.smtp_host),
            ("CLERK_EMAIL_ADDRESS", settings.email.address),
        )
        if not value
    ]
    if missing:
        raise ConfigError("email needs " + ", ".join(missing) + " to be set")
    if "@" not in settings.email.address:
        raise ConfigError(f"CLERK_EMAIL_ADDRESS={settings.email.address!r} is not an address")


def connect_imap(settings: Settings) -> imaplib.IMAP4:
    """A logged-in IMAP connection using settings.email.imap_security (tls, starttls or none)."""
    host, port = settings.email.imap_host, settings.email.imap_port
    imap: imaplib.IMAP4
    if settings.email.imap_security is Security.TLS:
        imap = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(settings), timeout=TIMEOUT)
    else:
        imap = imaplib.IMAP4(host, port, timeout=TIMEOUT)
        if settings.email.imap_security is Security.STARTTLS:
            imap.starttls(ssl_context=tls_context(settings))
    try:
        imap.login(settings.email.imap_user, settings.email.imap_password)
    except BaseException:
        imap.shutdown()
        raise
    return imap


def connect_smtp(settings: Settings) -> smtplib.SMTP:
    """A ready SMTP connection using settings.email.smtp_security, logged in when a user is set."""
    host, port = settings.email.smtp_host, settings.email.smtp_port
    smtp: smtplib.SMTP
    if settings.email.smtp_security is Security.TLS:
        smtp = smtplib.SMTP_SSL(host, port, context=tls_context(settings), timeout=TIMEOUT)
    else:
        smtp = smtplib.SMTP(host, port, timeout=TIMEOUT)
        if settings.email.smtp_security is Security.STARTTLS:
            smtp.starttls(context=tls_context(settings))
    try:
        if settings.email.smtp_user:
            smtp.login(settings.email.smtp_user, settings.email.smtp_password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def quote_folder(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One logged-in IMAP connection with the watched folder selected."""

    def __init__(self, imap: imaplib.IMAP4, folder: str):
        self.imap = imap
        self.folder = folder
        # imaplib keeps the list from before login, which may lack MOVE, UIDPLUS and IDLE
        data = _check(imap.capability(), "CAPABILITY")
        self.capabilities = {c.upper() for c in imap.capabilities}
        self.capabilities |= {c.decode().upper() for c in (data[0] or b"").split()}
        _check(imap.select(quote_folder(folder)), f"SELECT {folder}")

    def unprocessed(self) -> list[bytes]:
        """UIDs of messages Clerk has not flagged as processed, oldest first."""
        data = _check(self.imap.uid("SEARCH", "UNKEYWORD", PROCESSED, "UNDELETED"), "SEARCH")
        return data[0].split() if data and data[0] else []

    def size(self, uid: bytes) -> int | None:
        """The message's size in bytes (RFC822.SIZE), without fetching it; None when vanished."""
        for item in self._uid("FETCH", uid, "(RFC822.SIZE)"):
            line = item[0] if isinstance(item, tuple) else item
            found = re.search(rb"RFC822\.SIZE (\d+)", line) if isinstance(line, bytes) else None
            if found:
                return int(found.group(1))
        return None

    def fetch(self, uid: bytes) -> bytes | None:
        """The raw message, without setting \\Seen; None when it has vanished."""
        return _literal(self._uid("FETCH", uid, "(BODY.PEEK[])"))

    def header(self, uid: bytes, limit: int = HEADER_LIMIT) -> bytes | None:
        """At most the first `limit` bytes of the message's header, without setting \\Seen."""
        return _literal(self._uid("FETCH", uid, f"(BODY.PEEK[HEADER]<0.{limit}>)"))

    def flag(self, uid: bytes, *flags: str) -> None:
        """Add flags and keywords (always including the processed keyword)."""
        names = " ".join(dict.fromkeys((PROCESSED, *flags)))
        self._uid("STORE", uid, "+FLAGS.SILENT", f"({names})")

    def move(self, uid: bytes, folder: str) -> None:
        """Move a message to folder (created when absent). Without MOVE it is copied, and the
        original expunged (with UIDPLUS) or left flagged as processed, so it is not seen again.
        A refused move leaves the message where it was, to be moved on a later pass."""
        self.ensure_folder(folder)
        if "MOVE" in self.capabilities:
            self._uid("MOVE", uid, quote_folder(folder))
            return
        self._uid("COPY", uid, quote_folder(folder))
        if "UIDPLUS" in self.capabilities:
            self.flag(uid, "\\Deleted")
            self._uid("EXPUNGE", uid)
        else:
            self.flag(uid)

    def _uid(self, command: str, uid: bytes, *args: str) -> list:
        """A UID command about one message; MessageRefused when the server answers NO or BAD."""
        try:
            status, data = self.imap.uid(command, uid.decode(), *args)
        except imaplib.IMAP4.abort:
            raise  # the connection is gone
        except imaplib.IMAP4.error as exc:  # imaplib raises on BAD
            raise MessageRefused(command, "BAD", _response_code(str(exc))) from exc
        if status != "OK":
            raise MessageRefused(command, status, _response_code(repr(data)))
        return data

    def ensure_folder(self, folder: str) -> None:
        status, _ = self.imap.create(quote_folder(folder))
        if status == "OK":
            self.imap.subscribe(quote_folder(folder))

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Return when new mail may have arrived, after `seconds`, or when stop is set."""
        if "IDLE" in self.capabilities:
            self._idle(seconds, stop)
        else:
            stop.wait(seconds)
            _check(self.imap.noop(), "NOOP")

    def _idle(self, seconds: float, stop: threading.Event) -> None:
        """RFC 2177 IDLE until the server reports a change (imaplib has no IDLE before 3.14)."""
        imap = self.imap
        tag = imap._new_tag()
        imap.send(tag + b" IDLE\r\n")
        if not imap.readline().startswith(b"+"):
            raise imaplib.IMAP4.abort("server refused IDLE")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.is_set():
            if not self._readable(min(1.0, max(0.0, deadline - time.monotonic()))):
                continue
            line = imap.readline()
            if not line or line.startswith(b"* BYE"):
                raise imaplib.IMAP4.abort(f"server closed the connection: {line!r}")
            if re.match(rb"\* \d+ (EXISTS|RECENT)", line):
                break
        imap.send(b"DONE\r\n")
        while True:
            line = imap.readline()
            if not line:
                raise imaplib.IMAP4.abort("connection closed while ending IDLE")
            if line.startswith(tag):
                return

    def _readable(self, timeout: float) -> bool:
        sock = self.imap.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        return bool(select.select([sock], [], [], timeout)[0])

    def close(self) -> None:
        logout_quietly(self.imap)


def logout_quietly(imap: imaplib.IMAP4) -> None:
    """Log out politely; a dead connection is just dropped."""
    try:
        imap.logout()
    except (*CONNECTION_ERRORS, ValueError):
        with contextlib.suppress(OSError, ValueError):
            imap.shutdown()  # logout skips closing the socket when LOGOUT fails


def send(smtp: smtplib.SMTP, msg: EmailMessage) -> None:
    """Send a message as written: smtplib's send_message would turn body lines that start with
    "From " into ">From " (an mbox habit); the envelope comes from the From and To headers."""
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=msg.policy.clone(linesep="\r\n")).flatten(msg)
    sender = msg["From"].addresses[0].addr_spec
    recipients = [a.addr_spec for a in msg["To"].addresses]
    smtp.sendmail(sender, recipients, out.getvalue())


def smtp_problem(exc: BaseException) -> str:
    """An SMTP or connection failure in a few words with its reply codes, never the addresses
    it names (a refused recipient's exception quotes the address)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        return "recipient refused (" + ", ".join(codes) + ")"
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__} {code}" if code else type(exc).__name__


def quit_quietly(smtp: smtplib.SMTP) -> None:
    """End an SMTP session; a dead connection is just closed."""
    try:
        smtp.quit()
    except CONNECTION_ERRORS:
        smtp.close()


def _literal(data: list) -> bytes | None:
    """The one literal (message bytes) in a FETCH response, or None."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return item[1]
    return None


def _response_code(text: str) -> str:
    """The bracketed response code in a server reply (`NO [SERVERBUG] ...` gives SERVERBUG)."""
    found = re.search(r"\[([A-Z][A-Z0-9-]*)", text)
    return found.group(1) if found else ""


def _check(response: tuple[str, list], what: str) -> list:
    status, data = response
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what} failed: {data!r}")
    return data

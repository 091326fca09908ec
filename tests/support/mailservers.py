"""Real mail servers on loopback for the email tests: Dovecot (IMAP) and aiosmtpd (SMTP).

Dovecot runs from Debian's packages (scripts/test-services installs them) with a throwaway
configuration in a temporary directory: 127.0.0.1 on a free port, plain-text login allowed on
loopback, any user name with the shared password, one maildir per user. Each test takes a fresh
user, so mailboxes never leak between tests while one server serves the whole session.
"""

from __future__ import annotations

import contextlib
import email.policy
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller

PASSWORD = "clerk-test-password"  # noqa: S105 - a throwaway loopback server's password
DOVECOT_BIN = shutil.which("dovecot") or "/usr/sbin/dovecot"

# Dovecot 2.3 (Debian 12) and 2.4 (Debian 13) spell the same configuration differently.
CONFIG_HEAD_23 = """\
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
{ssl_files}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
"""
SSL_FILES_23 = "ssl_cert = <{cert}\nssl_key = <{key}"
CONFIG_HEAD_24 = """\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
auth_allow_cleartext = yes
mail_driver = maildir
mail_path = ~/Maildir
{ssl_files}
passdb static {{
  password = {password}
}}
userdb static {{
  fields {{
    uid = {uid}
    gid = {gid}
    home = {root}/home/%{{user}}
  }}
}}
"""
SSL_FILES_24 = "ssl_server_cert_file = {cert}\nssl_server_key_file = {key}"
CONFIG_BODY = """\
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
auth_mechanisms = plain login
first_valid_uid = {uid}
last_valid_uid = {uid}
default_login_user = dovenull
default_internal_user = dovecot
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
"""


def dovecot_is_24() -> bool:
    """Whether the installed Dovecot reads the 2.4 configuration syntax."""
    out = subprocess.run(  # noqa: S603 - fixed binary
        [DOVECOT_BIN, "--version"], capture_output=True, text=True, check=True
    ).stdout
    major, minor = (int(x) for x in out.split()[0].split(".")[:2])
    return (major, minor) >= (2, 4)


def dovecot_config(**values) -> str:
    """The throwaway configuration, in the syntax of the installed Dovecot."""
    head, ssl_files = (
        (CONFIG_HEAD_24, SSL_FILES_24) if dovecot_is_24() else (CONFIG_HEAD_23, SSL_FILES_23)
    )
    cert, key = values.pop("cert"), values.pop("key")
    files = ssl_files.format(cert=cert, key=key) if cert else ""
    # 2.4 wants its version settings first; the rest may come in any order
    return head.format(ssl_files=files, **values) + CONFIG_BODY.format(**values)


def free_port() -> int:
    """A port nothing listens on now (Dovecot cannot report a port chosen by the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (it is its own CA) and its key, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        [  # noqa: S607 - openssl from PATH, as scripts/test-services installs it
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Dovecot:
    """One Dovecot instance (`dovecot -F -c conf`) with its configuration and mail in root."""

    def __init__(self, root: Path, tls: bool = False):
        self.root = root
        self.imap_port = free_port()
        self.imaps_port = free_port() if tls else 0
        self.cert: Path | None = None
        self.process: subprocess.Popen | None = None
        mail_user = pwd.getpwnam("dovecot")
        key = None
        if tls:
            self.cert, key = make_self_signed(root)
        for sub in ("run", "state", "home"):
            (root / sub).mkdir(exist_ok=True)
        os.chown(root / "home", mail_user.pw_uid, mail_user.pw_gid)
        self.config = root / "dovecot.conf"
        self.config.write_text(
            dovecot_config(
                instance=f"clerk-test-{uuid.uuid4().hex[:8]}",
                root=root,
                ssl="yes" if tls else "no",
                cert=self.cert,
                key=key,
                uid=mail_user.pw_uid,
                gid=mail_user.pw_gid,
                password=PASSWORD,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
            )
        )

    def start(self) -> None:
        """Start in the foreground as a child process and wait until it accepts connections."""
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, our own config
            [DOVECOT_BIN, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so stop() can end every session
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.imap_port), 0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start; log: {self.log()}")

    def stop(self) -> None:
        """Stop the server like a restart would: the master, then its client sessions (which
        otherwise outlive a master stopped in the foreground); wait until the port is closed."""
        if self.process is None:
            return
        group = os.getpgid(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)  # only the group started above
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # child processes close their sockets shortly after
            try:
                socket.create_connection(("127.0.0.1", self.imap_port), 0.2).close()
                time.sleep(0.05)
            except OSError:
                return

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def new_user(self) -> str:
        """A fresh user name: its mailbox is empty until something is appended."""
        return f"clerk{uuid.uuid4().hex[:10]}"

    def connect(self, user: str) -> imaplib.IMAP4:
        """A logged-in plain IMAP connection, for delivering and inspecting test mail."""
        imap = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        imap.login(user, PASSWORD)
        return imap

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver a message with IMAP APPEND."""
        imap = self.connect(user)
        try:
            status, data = imap.append(folder, "", None, raw)
            assert status == "OK", data
        finally:
            imap.logout()

    def folder_state(self, user: str, folder: str = "INBOX") -> list[tuple[str, set[str]]]:
        """(Message-ID, flags) of every message in a folder, in order."""
        imap = self.connect(user)
        try:
            status, _ = imap.select(_quote(folder), readonly=True)
            if status != "OK":
                return []
            _, data = imap.uid("SEARCH", None, "ALL")
            result = []
            for uid in data[0].split():
                _, parts = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                flags = set(imaplib.ParseFlags(parts[0][0]))
                header = parts[0][1].decode().split(":", 1)[-1].strip()
                result.append((header, {f.decode() for f in flags}))
            return result
        finally:
            imap.logout()

    def folders(self, user: str) -> list[str]:
        imap = self.connect(user)
        try:
            _, data = imap.list()
            return [line.decode().rsplit(' "/" ', 1)[-1].strip('"') for line in data if line]
        finally:
            imap.logout()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def start_dovecot(tls: bool = False) -> Dovecot:
    """A started Dovecot in a fresh world-traversable temporary directory (mail runs as dovecot)."""
    root = Path(tempfile.mkdtemp(prefix="clerk-dovecot-"))
    root.chmod(0o755)  # the unprivileged login and mail processes must reach their files
    server = Dovecot(root, tls=tls)
    server.start()
    return server


def remove_dovecot(server: Dovecot) -> None:
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


def nested_question(depth: int, message_id: str = "<deep-1@mail.kent.gov.uk>") -> bytes:
    """A councillor's question whose text sits inside `depth` nested multipart/mixed parts."""
    part = b"Content-Type: text/plain\r\n\r\nWhat was agreed?\r\n"
    for level in range(depth):
        boundary = b"level%d" % level
        part = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
            + boundary + b"\r\n" + part + b"--" + boundary + b"--\r\n"
        )  # fmt: skip
    head = (
        "From: Cllr Jane Smith <jane.smith@kent.gov.uk>\r\nTo: ask@clerk.example\r\n"
        f"Subject: Budget\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
    )
    return head.encode() + part


class ImapFaults:
    """A loopback proxy in front of a real Dovecot that answers chosen commands about one
    message (UID FETCH, STORE, MOVE...) with NO or BAD itself, as a server does when one message
    cannot be read or flagged; everything else passes through unchanged. It also counts the
    bytes the server sent, so a test can tell whether a message was downloaded."""

    _COMMAND = re.compile(rb"^(\S+) UID (\S+) (\S+)", re.IGNORECASE)
    _LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.refusals: dict[tuple[str, str], str] = {}  # (command, uid) -> NO or BAD
        self.refused = 0  # how many commands were answered by the proxy
        self.bytes_from_server = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]

    def start(self) -> ImapFaults:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def refuse(self, command: str, uid: int, status: str = "NO") -> None:
        """Answer every `UID <command> <uid>` with status until allowed again."""
        with self._lock:
            self.refusals[(command.upper(), str(uid))] = status

    def allow_all(self) -> None:
        with self._lock:
            self.refusals.clear()

    def stop(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream_port), 10)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, server]
            sending = threading.Lock()  # the proxy's own replies and the server's never interleave
            threading.Thread(target=self._down, args=(server, client, sending), daemon=True).start()
            threading.Thread(target=self._up, args=(client, server, sending), daemon=True).start()

    def _down(self, server: socket.socket, client: socket.socket, sending: threading.Lock) -> None:
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                with sending:
                    client.sendall(chunk)
                with self._lock:
                    self.bytes_from_server += len(chunk)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def _up(self, client: socket.socket, server: socket.socket, sending: threading.Lock) -> None:
        reader = client.makefile("rb")
        with contextlib.suppress(OSError, ValueError):
            while line := reader.readline():
                refusal = self._refusal(line)
                if refusal:
                    with sending:
                        client.sendall(refusal)
                    continue
                server.sendall(line)
                literal = self._LITERAL.search(line)
                if literal:  # the client's literal follows its line (after the server's "+")
                    server.sendall(reader.read(int(literal.group(1))))
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)

    def _refusal(self, line: bytes) -> bytes | None:
        found = self._COMMAND.match(line)
        if not found:
            return None
        tag, command, uid = (part.decode() for part in found.groups())
        with self._lock:
            status = self.refusals.get((command.upper(), uid))
            if status is None:
                return None
            self.refused += 1
        text = "[SERVERBUG] Refused by the test proxy" if status == "NO" else "Refused by the proxy"
        return f"{tag} {status} {text}\r\n".encode()


@dataclass
class Captured:
    """What the SMTP server received: envelope and parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class CaptureHandler:
    """aiosmtpd handler that keeps every message it receives."""

    messages: list[Captured] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        with self.lock:
            self.messages.append(
                Captured(envelope.mail_from, list(envelope.rcpt_tos), message, raw)
            )
        return "250 OK"


class LoopbackController(Controller):
    """aiosmtpd's Controller, able to listen on port 0 (it reads back the port it was given)."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpCapture:
    """A real SMTP server on 127.0.0.1 that records what Clerk sends."""

    def __init__(self):
        self.handler = CaptureHandler()
        self.controller = LoopbackController(self.handler, hostname="127.0.0.1", port=0)

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def messages(self) -> list[Captured]:
        with self.handler.lock:
            return list(self.handler.messages)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()

    def start(self) -> SmtpCapture:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

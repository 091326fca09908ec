"""A real, throwaway PostgreSQL server for the request-store tests.

`shared_server()` starts one server per test process on first use: initdb and pg_ctl from
/usr/lib/postgresql/*/bin, as the unprivileged user `nobody` when the tests run as root (initdb
refuses root), in a temporary directory, listening on 127.0.0.1 on a free port, trust auth for
the local test role only, fsync off. It is stopped and deleted when the process exits. Each store
test gets a fresh database from `fresh_database()`, so ids start at 1 as they do on a new SQLite
file. A missing PostgreSQL is a clear failure, never a skip.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROLE = "clerk"


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run "
                    "scripts/test-services")  # fmt: skip
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory."""

    def __init__(self) -> None:
        self.bin = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="clerk-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as_user = ["runuser", "-u", "nobody", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 - fixed PostgreSQL binaries, our own arguments
            [*self._as_user, *args], cwd=self.root, capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"{args[0]} failed: {result.stderr or result.stdout}\n{log}")

    def start(self) -> PostgresServer:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", ROLE,
                  "--auth=trust", "-E", "UTF8", "--locale=C", "-N")  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        return self

    def restart(self) -> None:
        """Restart the server (fast shutdown: every connection is cut, as in production)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-m", "fast", "-w", "-t", "60", "restart")  # fmt: skip

    def stop(self) -> None:
        subprocess.run(  # noqa: S603 - fixed binary
            [*self._as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
             "-w", "stop"],
            cwd=self.root, capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def fresh_database(self) -> str:
        """A new empty database; its connection URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


_SERVER: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The test process's PostgreSQL server, started on first use, stopped at exit."""
    global _SERVER
    if _SERVER is None:
        _SERVER = PostgresServer().start()
        atexit.register(_SERVER.stop)
    return _SERVER


def fresh_database() -> str:
    return shared_server().fresh_database()


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return shared_server()

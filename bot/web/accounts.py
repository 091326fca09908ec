"""Local officer accounts for small deployments: names and scrypt password hashes in one file.

    <home>/officers.json  {"officers": {"<name>": {"hash": "scrypt$<n>$<r>$<p>$<salt>$<key>",
                                                   "added_at": "<ISO 8601 UTC>"}}}

Passwords are never stored or logged; the file is written atomically, readable by its owner
only. Councils with single sign-on use the trusted proxy header instead (`bot.web.auth`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path

from bot.errors import SignInError
from bot.requests.model import iso, utc_now
from bot.settings import Settings
from indexer.files import exclusive_lock, write_atomic

ACCOUNTS_FILE = "officers.json"
MIN_PASSWORD_CHARS = 12
# scrypt cost: 16 MiB and about 50 ms per check, the interactive-login figures of RFC 7914.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def hash_password(password: str) -> str:
    """A salted scrypt hash with its parameters, for storing."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """Whether the password matches the stored hash (in constant time)."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key)
        return hmac.compare_digest(
            _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p)), expected
        )
    except ValueError:
        return False


@functools.cache
def _decoy() -> str:
    """Checked against when the name is unknown, so a wrong name costs as long as a wrong
    password (no telling which names exist by timing)."""
    return hash_password(secrets.token_hex(16))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class OfficerAccounts:
    """The officers who may sign in with a password."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def from_settings(cls, settings: Settings) -> OfficerAccounts:
        return cls(settings.home / ACCOUNTS_FILE)

    def names(self) -> list[str]:
        return sorted(self._read())

    def add(self, name: str, password: str) -> bool:
        """Add an officer, or set a new password; True when the account is new."""
        name = check_name(name)
        if len(password) < MIN_PASSWORD_CHARS:
            raise SignInError(f"the password must be at least {MIN_PASSWORD_CHARS} characters")
        with exclusive_lock(self.path.with_name(self.path.name + ".lock"), "account change"):
            officers = self._read()
            created = name not in officers
            officers[name] = {"hash": hash_password(password), "added_at": iso(utc_now())}
            write_atomic(self.path, json.dumps({"officers": officers}, indent=2) + "\n")
            os.chmod(self.path, 0o600)
        return created

    def verify(self, name: str, password: str) -> bool:
        """Whether this officer exists and the password is theirs."""
        account = self._read().get(name.strip())
        ok = verify_password(password, account["hash"] if account else _decoy())
        return bool(account) and ok

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SignInError(f"cannot read the officer accounts {self.path}: {exc}") from exc
        return dict(data.get("officers", {}))


def check_name(name: str) -> str:
    """An officer's user name: letters, digits and . _ @ -, as audit events record it."""
    name = (name or "").strip()
    if not NAME.match(name):
        raise SignInError(
            "an officer name is 1-100 letters, digits, dots, dashes, underscores or @"
        )
    return name

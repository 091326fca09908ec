"""Who may act on requests, who people are, and which Slack events were already handled."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.settings import Settings

log = logging.getLogger(__name__)


class Officers:
    """Configured officer ids plus the members of the officers' user group (cached)."""

    def __init__(self, settings: Settings, client: WebClient, ttl: float = 300.0) -> None:
        self._ids = frozenset(settings.slack.officer_ids)
        self._group = settings.slack.officer_group.strip()
        self._client = client
        self._ttl = ttl
        self._members: frozenset[str] = frozenset()
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def __contains__(self, user_id: object) -> bool:
        if not isinstance(user_id, str) or not user_id:
            return False
        return user_id in self._ids or user_id in self._group_members()

    def _group_members(self) -> frozenset[str]:
        if not self._group:
            return frozenset()
        with self._lock:
            if time.monotonic() - self._fetched > self._ttl:
                try:
                    reply = self._client.usergroups_users_list(usergroup=self._group)
                    self._members = frozenset(reply.get("users") or ())
                    self._fetched = time.monotonic()
                except SlackApiError as exc:
                    # keep the last known members; an outage must not make everyone an officer
                    log.warning("usergroups.users.list failed: %s", exc.response.get("error"))
            return self._members


class People:
    """Display names for Slack user ids (users.info, cached); falls back to the id."""

    def __init__(self, client: WebClient, size: int = 2000) -> None:
        self._client = client
        self._names: OrderedDict[str, str] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def name(self, user_id: str) -> str:
        with self._lock:
            if user_id in self._names:
                return self._names[user_id]
        try:
            user = self._client.users_info(user=user_id)["user"]
            profile = user.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or user.get("name")
        except SlackApiError as exc:
            log.info("users.info failed for a user: %s", exc.response.get("error"))
            return ""
        with self._lock:
            self._names[user_id] = name or ""
            if len(self._names) > self._size:
                self._names.popitem(last=False)
        return name or ""


class SeenEvents:
    """Event ids already taken in, so a retried delivery is never answered twice, even when the
    retry arrives after a restart: the ids live in a small SQLite file in the data directory."""

    KEEP_SECONDS = 24 * 3600  # Slack retries within minutes; a day is plenty

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at REAL)")
        self._lock = threading.Lock()
        self._offers = 0

    def first_time(self, event_id: str) -> bool:
        """True the first time an id is offered, False on every later offer."""
        with self._lock:
            now = time.time()
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen (event_id, at) VALUES (?, ?)", (event_id, now)
            )
            self._offers += 1
            if self._offers % 1000 == 0:
                self._db.execute("DELETE FROM seen WHERE at < ?", (now - self.KEEP_SECONDS,))
            return cursor.rowcount == 1

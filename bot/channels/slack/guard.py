"""Who may act on requests, and who people are (their display names)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

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

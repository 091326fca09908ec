"""How Clerk talks to ModernGov sites: which ones, how politely, how patiently."""

from __future__ import annotations

from dataclasses import dataclass

from indexer.settings import SettingsGroup, setting


@dataclass(frozen=True)
class SyncSettings(SettingsGroup):
    """ModernGov web-service sync."""

    user_agent: str = setting(
        "Clerk/0.1 (committee papers assistant; +https://github.com/clerk)",
        "CLERK_USER_AGENT",
        "User-Agent sent to ModernGov sites; name a contact.",
    )
    delay: float = setting(
        1.0, "CLERK_SYNC_DELAY", "Seconds between requests to one ModernGov site."
    )
    sites: tuple[str, ...] = setting(
        (), "CLERK_MODERNGOV_SITES", "Comma-separated ModernGov site URLs `clerk nightly` syncs."
    )
    timeout: float = setting(
        60.0, "CLERK_SYNC_TIMEOUT", "Seconds to wait for one ModernGov response (some take 90)."
    )
    retries: int = setting(
        3, "CLERK_SYNC_RETRIES", "Tries per request on a timeout or server error (pauses double)."
    )
    allowed_hosts: tuple[str, ...] = setting(
        (),
        "CLERK_SYNC_ALLOWED_HOSTS",
        "Other hosts (`host` or `host:port`) a site may redirect to; by default redirects stay on "
        "the site's own scheme, host and port, never go from https to http or leave http(s).",
    )
    max_mb: float = setting(
        100.0, "CLERK_SYNC_MAX_MB", "Largest ModernGov response or document accepted, in MB."
    )

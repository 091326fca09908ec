"""Heartbeats: each long-running service records when it last did its job, so a container health
check can tell a live service from a process that is merely running.

<home>/health/<service>.json holds {"ok": bool, "at": ISO time, "detail": str}; `clerk health
SERVICE --max-age SECONDS` exits 0 when the last beat is ok and recent enough, 1 otherwise.
No personal data goes in a beat: counts and states only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from indexer.files import write_atomic

HEALTH_DIR = "health"


def beat(home: Path, service: str, ok: bool, detail: str = "") -> None:
    """Record that `service` just did (ok) or failed to do (not ok) its job."""
    record = {"ok": ok, "at": datetime.now(UTC).isoformat(timespec="seconds"), "detail": detail}
    write_atomic(home / HEALTH_DIR / f"{service}.json", json.dumps(record) + "\n")


def check(home: Path, service: str, max_age_seconds: float) -> tuple[bool, str]:
    """(healthy, why) from the service's last beat."""
    path = home / HEALTH_DIR / f"{service}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        at = datetime.fromisoformat(record["at"])
    except (OSError, ValueError, KeyError) as exc:
        return False, f"no heartbeat from {service} ({type(exc).__name__})"
    age = (datetime.now(UTC) - at).total_seconds()
    if not record.get("ok"):
        return False, f"{service} last failed {age:.0f} s ago: {record.get('detail', '')}"
    if age > max_age_seconds:
        return False, f"{service} last did its job {age:.0f} s ago (limit {max_age_seconds:.0f})"
    return True, f"{service} did its job {age:.0f} s ago"

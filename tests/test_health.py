"""`clerk health`: a container is healthy only while its service keeps doing its job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.cli.main import main
from bot.health import HEALTH_DIR, beat


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLERK_HOME", str(tmp_path))
    return tmp_path


def test_a_recent_good_heartbeat_is_healthy(home, capsys):
    beat(home, "email", True, "3 messages")
    assert main(["health", "email", "--max-age", "60"]) == 0
    assert "email did its job" in capsys.readouterr().out


def test_no_heartbeat_a_failure_or_a_stale_one_is_unhealthy(home, capsys):
    assert main(["health", "slack"]) == 1  # never beat: the service never got going
    beat(home, "slack", False, "ConnectionError")
    assert main(["health", "slack"]) == 1
    assert "ConnectionError" in capsys.readouterr().out
    stale = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    (home / HEALTH_DIR / "slack.json").write_text(json.dumps({"ok": True, "at": stale}))
    assert main(["health", "slack", "--max-age", "600"]) == 1

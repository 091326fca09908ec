"""Fixtures shared by the ModernGov sync tests: a loopback ModernGov site, and settings whose
home and corpus sit in the test's temporary directory, with fast, polite sync options.

A test module imports the fixture functions (`site_fixture`, `settings_fixture`); pytest knows
them by the names `site` and `settings`."""

from __future__ import annotations

import pytest
from moderngov_server import ModernGovServer

from bot.settings import Settings


@pytest.fixture(name="site")
def site_fixture():
    with ModernGovServer() as server:
        yield server


@pytest.fixture(name="settings")
def settings_fixture(tmp_path) -> Settings:
    return Settings.from_env(
        {},
        CLERK_HOME=tmp_path / "home",
        CLERK_CORPUS=tmp_path / "corpus",
        CLERK_SYNC_DELAY=0,
        CLERK_SYNC_TIMEOUT=2,
        CLERK_SYNC_RETRIES=2,
        CLERK_USER_AGENT="Clerk-test/1.0 (+mailto:clerk@example.org)",
    )

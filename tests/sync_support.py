"""Fixtures shared by the ModernGov sync tests: a loopback ModernGov site, and settings whose
home and corpus sit in the test's temporary directory, with fast, polite sync options.

A test module imports the fixture functions (`site_fixture`, `settings_fixture`); pytest knows
them by the names `site` and `settings`."""

from __future__ import annotations

import pytest
from moderngov_server import ModernGovServer

from indexer.settings import Settings


@pytest.fixture(name="site")
def site_fixture():
    with ModernGovServer() as server:
        yield server


@pytest.fixture(name="settings")
def settings_fixture(tmp_path) -> Settings:
    return Settings(
        home=tmp_path / "home", corpus=tmp_path / "corpus", sync_delay=0, sync_timeout=2,
        sync_retries=2, user_agent="Clerk-test/1.0 (+mailto:clerk@example.org)",
    )  # fmt: skip

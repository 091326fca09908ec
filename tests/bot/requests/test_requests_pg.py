"""What only the PostgreSQL request store has to show; the shared store tests
(tests/test_requests_store.py) run against it too, through requests_support.STORE_KINDS."""

from __future__ import annotations

import psycopg
import pytest
from pg_server import PostgresServer, fresh_database, postgres_server  # noqa: F401 - fixture
from requests_support import ALICE, BOB, Clock

from bot.requests.service import open_store
from bot.requests.stores.postgres import PostgresRequestStore
from bot.requests.stores.schema import MIGRATIONS
from bot.settings import Settings
from indexer.errors import ConfigError


def test_open_store_chooses_postgres_from_the_database_url(tmp_path):
    url = fresh_database()
    with open_store(Settings.from_env({}, CLERK_HOME=tmp_path, CLERK_DATABASE_URL=url)) as store:
        assert isinstance(store, PostgresRequestStore)
        store.log("Which roads are resurfaced in Ashford this year?", ALICE)
    assert not (tmp_path / "requests.sqlite3").exists()


def test_migrations_are_recorded_and_run_once():
    url = fresh_database()
    PostgresRequestStore(url).close_store()
    with PostgresRequestStore(url) as again:
        again.log("Still works?", BOB)
    with psycopg.connect(url) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY applied_at, name")]
    assert names == [name for name, _ in MIGRATIONS]


def test_purge_leaves_no_personal_data_in_any_table():
    clock = Clock()
    url = fresh_database()
    with PostgresRequestStore(url, clock=clock) as store:
        rid = store.log("Purge me about Canterbury?", ALICE).request.request_id
        store.answer(rid, "jo", "Answer.")
        store.close(rid, "jo")
        clock.advance(days=400)
        assert store.purge(clock.now, "dpo") == [rid]
    with psycopg.connect(url) as db:
        dump = "\n".join(
            str(row)
            for table in ("requests", "askers", "audit", "deliveries")
            for row in db.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
        )
    assert "U0ALICE" not in dump and "Purge me" not in dump and "C1" not in dump


def test_a_server_that_cannot_be_reached_is_a_config_error_without_the_password(
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
):
    url = f"postgresql://clerk:s3cret-pw@127.0.0.1:{postgres_server.port}/no_such_database"
    with pytest.raises(ConfigError) as caught:
        PostgresRequestStore(url)
    assert "no_such_database" in str(caught.value) and "s3cret-pw" not in str(caught.value)


def test_the_store_reconnects_after_a_server_restart_and_an_idle_reaper():
    server = PostgresServer().start()
    try:
        url = server.fresh_database()
        with PostgresRequestStore(url) as store:
            store.log("Which libraries in Dover open on Sundays?", ALICE)

            server.restart()  # every connection is cut
            logged = store.log("How many potholes were filled in Swale?", BOB)
            assert logged.created and len(store.list()) == 2

            with psycopg.connect(url, autocommit=True) as reaper:  # an idle-connection reaper
                reaper.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            assert [r.request_id for r in store.list()] == [1, 2]
    finally:
        server.stop()

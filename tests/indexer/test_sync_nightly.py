"""`clerk sync` and `clerk nightly`: exit statuses, the lock, incremental indexing, live reload."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import pytest
from moderngov_server import ModernGovServer
from sync_support import settings_fixture, site_fixture  # noqa: F401 - fixtures

from bot.cli.main import main
from bot.engine.answer import Answerer
from bot.requests.service import index_roots
from indexer.errors import IndexDamagedError, LockedError
from indexer.nightly import EXIT_LOCKED, nightly, nightly_lock
from indexer.search import Searcher
from tests.conftest import copy_sample

VAPES = "How many disposable vapes are thrown away each week in the UK?"
NEW_PAPER = "Green Independents Group - MTLD - 13 March.pdf"
HUBS = "Scrutiny Committee - call-in Family Hubs Report to Cabinet - FINAL.pdf"
HUBS_PASSAGE = "Commissioned Services at Seashells and Millmead Family Hubs"


@pytest.fixture
def env(monkeypatch, settings):
    monkeypatch.setenv("CLERK_HOME", str(settings.home))
    monkeypatch.setenv("CLERK_CORPUS", str(settings.index.corpus))
    monkeypatch.setenv("CLERK_SYNC_DELAY", "0")
    monkeypatch.setenv("CLERK_SYNC_RETRIES", "1")
    monkeypatch.setenv("CLERK_USER_AGENT", settings.sync.user_agent)


def cli_sync(site, *extra) -> list[str]:
    return ["sync", "moderngov", "--site", site.base_url, "--since", "2025-01-01", *extra]


def test_cli_sync_all_good_is_0_with_a_json_summary(env, site, capsys):
    assert main(cli_sync(site, "--council", "Kent County Council", "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == 0 and report["downloaded"] == 7 and report["failures"] == []
    assert report["council"] == "Kent County Council"


def test_cli_sync_committee_option_limits_the_sync(env, site, capsys):
    assert main(cli_sync(site, "--committee", "112")) == 0
    assert "1 committees" in capsys.readouterr().out
    assert {r.query.get("lcommitteeid") for r in site.requests_to("GetMeetings")} == {"112"}
    assert site.requests_to("GetCommittees") == []


def test_cli_sync_some_documents_failed_is_1(env, site, capsys):
    site.quirks.truncated.add(50012)
    assert main(cli_sync(site)) == 1
    out = capsys.readouterr().out
    assert "6 documents downloaded" in out and "truncated PDF" in out and "ID=50012" in out


def test_cli_sync_site_unusable_is_2(env, site, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_USER_AGENT", "python-requests/2.32")
    assert main(cli_sync(site)) == 2
    assert "could not sync" in capsys.readouterr().out


def test_nightly_json_reports_a_refused_redirect_and_nothing_it_would_have_fetched(
    env, site, capsys
):
    with ModernGovServer() as other:
        other.quirks.pages["/case"] = b"<html><head><title>Jane Doe casework</title></head></html>"
        site.quirks.redirects["GetCommittees"] = f"{other.base_url}/case?ref=Jane"
        status = main(["nightly", "--site", site.base_url, "--json"])
        assert other.log == []
    out = capsys.readouterr().out
    report = json.loads(out)  # what docker/nightly-loop.sh keeps as nightly-last.json
    assert status == report["status"] == 2
    [summary] = report["sites"]
    assert summary["error"].startswith(f"{site.base_url}/mgWebService.asmx/GetCommittees: ")
    assert "redirect refused: to another site (127.0.0.1:" in summary["error"]
    assert "Jane" not in out and "/case" not in out


def test_nightly_without_sites_is_2(env, capsys):
    assert main(["nightly"]) == 2
    assert "CLERK_MODERNGOV_SITES" in capsys.readouterr().err


def test_a_second_run_is_refused_while_the_lock_is_held(env, settings, site, capsys):
    with nightly_lock(settings.index):
        assert main(["nightly", "--site", site.base_url]) == EXIT_LOCKED
        assert main(cli_sync(site)) == EXIT_LOCKED
    err = capsys.readouterr().err
    assert "another nightly or sync run is in progress" in err
    assert site.log == []  # the refused runs asked the site nothing
    with nightly_lock(settings.index):  # released: the next run gets it
        pass


@pytest.mark.slow
def test_nightly_indexes_only_the_new_meeting_and_the_running_bot_answers_from_it(
    settings, site, embedder, monkeypatch, capsys
):
    # 1. first night: everything published so far is synced and indexed
    first = nightly(
        settings.index,
        settings.sync,
        [site.base_url],
        index_roots(settings),
        embedder,
        today=date(2025, 3, 10),
    )
    assert first.status == 0, first.to_dict()
    assert first.index.published and first.index.added == 14 and not first.index.failed

    # 2. the bot is running; the vapes motion is not published yet
    answerer = Answerer.from_settings(settings, embedder=embedder)
    before = answerer.answer(VAPES)
    assert not any(c.source.endswith(NEW_PAPER) for c in before.citations + before.nearest)
    assert not before.answered

    # 3. a second nightly run starts; while it syncs (slowly) another one is refused
    site.publish_meeting(9902)
    site.quirks.slow.add("GetCommittees")
    site.quirks.slow_seconds = 0.5
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(
            report=nightly(
                settings.index,
                settings.sync,
                [site.base_url],
                index_roots(settings),
                embedder,
                today=date(2025, 3, 20),
            )
        )
    )
    runner.start()
    deadline = time.monotonic() + 5
    while not (settings.home / "nightly.lock").read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(LockedError):
        nightly(settings.index, settings.sync, [site.base_url], index_roots(settings), embedder)
    runner.join(60)
    second = result["report"]

    # only the new meeting was fetched and indexed
    [summary] = second.sites
    assert (summary.new_meetings, summary.downloaded, summary.items_written) == (1, 2, 1)
    assert second.index.added == 3 and second.index.unchanged == 14
    assert second.status == 0

    # 4. the same Answerer, never rebuilt, answers from the new paper with its published URL
    after = answerer.answer(VAPES)
    assert after.answered, after.to_dict()
    top = after.citations[0]
    assert top.source.endswith(NEW_PAPER) and top.meeting_date == "2025-03-13"
    assert top.url.startswith(f"{site.base_url}/mgConvert2PDF.aspx?ID=50041")  # + #page=N
    assert "8 million" in top.quote

    # 5. a third night finds nothing new and publishes nothing
    third = nightly(
        settings.index,
        settings.sync,
        [site.base_url],
        index_roots(settings),
        embedder,
        today=date(2025, 3, 21),
    )
    assert third.sites[0].downloaded == 0 and not third.index.published


@pytest.mark.slow
def test_nightly_keeps_officers_answers_in_the_index(settings, site, embedder):
    from bot.requests.model import Asker
    from bot.requests.service import answer_request, open_store

    night = date(2025, 3, 10)
    first = nightly(settings.index, settings.sync, [site.base_url], index_roots(settings),
                    embedder, today=night)  # fmt: skip
    assert first.status == 0, first.to_dict()
    with open_store(settings) as store:
        logged = store.log("When does the Ramsgate lido reopen?", Asker("cli", "alice"))
        answer_request(
            settings, store, logged.request.request_id, "Jo Officer",
            "The Ramsgate lido reopens on 1 May 2025.", notifiers={}, embedder=embedder,
        )  # fmt: skip

    again = nightly(settings.index, settings.sync, [site.base_url], index_roots(settings),
                    embedder, today=night)  # fmt: skip

    assert again.status == 0 and again.index.removed == 0, again.to_dict()
    answerer = Answerer.from_settings(settings, embedder)
    found = answerer.searcher.search("When does the Ramsgate lido reopen?", k=3)
    assert found[0].title.startswith("Officer response to request #1")


@pytest.mark.slow
def test_a_damaged_index_is_rebuilt_from_the_papers_not_failed_forever(settings, site, embedder):
    night = date(2025, 3, 10)
    roots = index_roots(settings)
    nightly(settings.index, settings.sync, [site.base_url], roots, embedder, today=night)
    build = settings.index.index_dir.resolve()
    (build / "meta.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(IndexDamagedError, match="rebuilds it"):
        Answerer.from_settings(settings, embedder).answer("What is the MRP policy?")

    report = nightly(settings.index, settings.sync, [site.base_url], roots, embedder, today=night)

    assert report.status == 0 and report.index.published, report.to_dict()
    assert Answerer.from_settings(settings, embedder).searcher.search("MRP policy", k=1)


def test_an_unexpected_failure_still_exits_2_with_a_report(settings, tmp_path):
    """A full disk while publishing: the run says so (status 2) instead of looking healthy."""
    copy_sample(settings.index.corpus)
    env = {
        **os.environ,
        "CLERK_HOME": str(settings.home),
        "CLERK_CORPUS": str(settings.index.corpus),
        "CLERK_MODERNGOV_SITES": "http://127.0.0.1:9",  # nothing listens: a sync failure too
        "CLERK_SYNC_RETRIES": "1",
        "HF_HUB_OFFLINE": "1",
    }

    def small_disk():  # writes past 64 KB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    run = subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "bot.cli.main", "nightly", "--json"],
        env=env, capture_output=True, text=True, timeout=300, preexec_fn=small_disk,
    )  # fmt: skip

    assert run.returncode == 2, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["status"] == 2 and "unexpected failure" in report["index_error"]


def test_a_withdrawn_paper_is_gone_from_search_after_the_next_nightly(settings, site, embedder):
    def night(today: date):
        return nightly(
            settings.index, settings.sync, [site.base_url], index_roots(settings), embedder, today
        )

    assert night(date(2025, 3, 10)).status == 0
    searcher = Searcher(settings.index.index_dir, embedder)
    found = searcher.search(HUBS_PASSAGE, k=5)
    assert found[0].source.endswith(HUBS)
    assert any(h.source.endswith(HUBS) and "Seashells" in h.text for h in found)

    # the council takes the report down (published in error, with an officer's name in it)
    site.quirks.withdrawn.add(50022)
    second = night(date(2025, 3, 11))

    # the running search, never rebuilt, no longer has it in any form
    for mode in ("hybrid", "bm25", "dense"):
        hits = searcher.search(HUBS_PASSAGE, k=15, mode=mode)
        assert not any(h.source.endswith(HUBS) or "Seashells" in h.text for h in hits)
        assert any(h.source.endswith("52. Call-in Family Hubs.html") for h in hits)  # still there
    assert second.status == 0 and second.sites[0].withdrawn == 1
    assert second.index.removed == 1 and second.index.published
    assert (settings.home / "withdrawn" / "withdrawn.jsonl").is_file()

"""`clerk requests ...` driven through the real entry point with a temporary CLERK_HOME."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from requests_support import ALICE, BOB, CAROL, Clock

from bot.cli.main import main
from bot.requests.model import Asker, utc_now
from bot.requests.stores.sqlite import SqliteRequestStore
from bot.settings import Settings


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLERK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("getpass.getuser", lambda: "officer.ann")
    return tmp_path / "home"


@pytest.fixture
def seeded(home):
    """Three requests: an old one from Alice (Cabinet), Bob's and Carol's from today."""
    clock = Clock(utc_now() - timedelta(days=30))
    with SqliteRequestStore(
        Settings.from_env({}, CLERK_HOME=home).requests_db, clock=clock
    ) as store:
        store.log("What is the Dover bypass cost?", ALICE, committee="Cabinet")
        clock.now = utc_now()
        store.log(
            '=HYPERLINK("http://x") How many libraries closed?', BOB, committee="County Council"
        )
        store.log("Who chairs the Cabinet?", CAROL, committee="Cabinet")
    return home


def run(capsys, *argv) -> tuple[int, str, str]:
    status = main(["requests", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def stored(home):
    with SqliteRequestStore(Settings.from_env({}, CLERK_HOME=home).requests_db) as store:
        return store.list()


def test_list_and_filters_as_json(seeded, capsys):
    status, out, _ = run(capsys, "list", "--json")
    assert status == 0 and [r["request_id"] for r in json.loads(out)] == [1, 2, 3]
    assert json.loads(out)[0]["askers"][0]["reply_to"] == ALICE.reply_to
    _, out, _ = run(capsys, "list", "--json", "--committee", "cabinet")
    assert [r["request_id"] for r in json.loads(out)] == [1, 3]
    _, out, _ = run(capsys, "list", "--json", "--older-than", "7")
    assert [r["request_id"] for r in json.loads(out)] == [1]
    _, out, _ = run(capsys, "list", "--json", "--asker", "bob")
    assert [r["request_id"] for r in json.loads(out)] == [2]
    _, out, _ = run(capsys, "list", "--json", "--state", "answered")
    assert json.loads(out) == []
    status, out, _ = run(capsys, "list")
    assert status == 0 and "#1" in out and "Dover bypass" in out


def test_officer_works_a_request_through(seeded, capsys, monkeypatch):
    assert run(capsys, "assign", "3")[1] == "Request #3 assigned to officer.ann.\n"
    assert run(capsys, "assign", "3", "--to", "Ben Brown")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("The Leader of the Council.\n"))
    status, out, _ = run(capsys, "answer", "3", "--officer", "Ben Brown")
    assert (
        status == 0 and "Request #3 answered." in out and "Delivered request #3 to cli:carol" in out
    )
    inbox = (seeded / "inbox" / "carol.txt").read_text()
    assert "answered by Ben Brown" in inbox and "The Leader of the Council." in inbox
    (doc,) = (seeded / "responses" / "request-3").glob("*.txt")
    assert doc.name.startswith("Officer response to request #3 (")
    assert run(capsys, "close", "3")[1] == "Request #3 is now closed.\n"

    status, out, _ = run(capsys, "show", "3", "--json")
    shown = json.loads(out)
    assert shown["state"] == "closed" and shown["answered_by"] == "Ben Brown"
    assert [d["state"] for d in shown["deliveries"]] == ["sent"]
    status, out, _ = run(capsys, "history", "3", "--json")
    assert [e["action"] for e in json.loads(out)] == [
        "logged",
        "assigned",
        "assigned",
        "answered",
        "deliveries queued",
        "delivered",
        "closed",
    ]
    assert json.loads(out)[-1]["actor"] == "officer.ann"


def test_bad_input_is_refused_with_clear_errors(seeded, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("   \n"))
    status, _, err = run(capsys, "answer", "1")
    assert status == 2 and "the answer is empty" in err
    status, _, err = run(capsys, "answer", "1", "--text", "")
    assert status == 2 and "the answer is empty" in err
    status, _, err = run(capsys, "show", "42")
    assert status == 2 and "there is no request #42" in err
    status, _, err = run(capsys, "close", "1")
    assert status == 2 and "request #1 is open; it cannot become closed" in err
    assert run(capsys, "answer", "1", "--text", "£4m.", "--no-deliver")[0] == 0
    status, _, err = run(capsys, "answer", "1", "--text", "£5m.")
    assert status == 2 and "already answered by officer.ann" in err
    assert [r.state for r in stored(seeded)] == ["answered", "open", "open"]
    assert stored(seeded)[0].answer == "£4m."


def test_decline_reopen_and_duplicate(seeded, capsys):
    assert run(capsys, "decline", "2", "--reason", "Not a council matter")[0] == 0
    assert run(capsys, "reopen", "2", "--reason", "It is")[1] == "Request #2 is now open.\n"
    assert run(capsys, "duplicate", "3", "--of", "1")[1] == "Request #3 is now duplicate.\n"
    assert run(capsys, "answer", "1", "--text", "£120m.")[0] == 0
    # the duplicate's asker (cli:carol) was told; Alice is on Slack, not configured here
    assert "£120m." in (seeded / "inbox" / "carol.txt").read_text()
    status, out, _ = run(capsys, "deliver", "--json")
    assert status == 0 and json.loads(out) == {"sent": [], "failed": []}


def test_export_csv_and_json(seeded, capsys, tmp_path):
    target = tmp_path / "requests.csv"
    assert run(capsys, "export", "--csv", "--output", str(target))[0] == 0
    with target.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["request_id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["askers"] == "slack:U0ALICE (Cllr Alice)" and rows[0]["committee"] == "Cabinet"
    assert rows[1]["question"].startswith("'=HYPERLINK")  # a spreadsheet will not run it
    status, out, _ = run(capsys, "export", "--csv", "--state", "open", "--committee", "council")
    assert [r["request_id"] for r in csv.DictReader(io.StringIO(out))] == ["2"]
    status, out, _ = run(capsys, "export", "--json", "--older-than", "7")
    assert [r["question"] for r in json.loads(out)] == ["What is the Dover bypass cost?"]


def test_overdue_uses_working_days(seeded, capsys, monkeypatch):
    _, out, _ = run(capsys, "overdue", "--json")
    assert [r["request_id"] for r in json.loads(out)] == [1]  # 30 days > 10 working days
    monkeypatch.setenv("CLERK_OVERDUE_DAYS", "25")
    _, out, _ = run(capsys, "overdue", "--json")
    assert json.loads(out) == []  # 30 calendar days are 21 or 22 working days
    _, out, _ = run(capsys, "overdue", "--days", "5")
    assert "more than 5 working days" in out and "#1" in out and "#2" not in out


def test_purge_keeps_a_record_that_it_happened(home, capsys):
    clock = Clock(utc_now() - timedelta(days=100))
    with SqliteRequestStore(
        Settings.from_env({}, CLERK_HOME=home).requests_db, clock=clock
    ) as store:
        store.log("Old closed question about Thanet?", ALICE)
        store.answer(1, "jo", "Yes.")
        store.close(1, "jo")
        store.log("Old open question about Swale?", BOB)
    _, out, _ = run(capsys, "purge", "--older-than", "90", "--dry-run")
    assert "Would purge 1 request(s)." in out and len(stored(home)) == 2
    status, out, _ = run(capsys, "purge", "--older-than", "90", "--officer", "dpo")
    assert status == 0 and "Purged 1 request(s)" in out
    assert [r.request_id for r in stored(home)] == [2]
    _, out, _ = run(capsys, "history", "--json")
    events = json.loads(out)
    assert events[-1]["action"] == "purge" and events[-1]["actor"] == "dpo"
    assert "purged 1 finished request(s)" in events[-1]["detail"]
    assert not any("Thanet" in e["detail"] for e in events)
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "purge")  # --older-than is required
    assert exit_.value.code == 2 and "--older-than" in capsys.readouterr().err


def test_purge_reaches_everything_kept_about_the_askers(home, capsys):
    import sqlite3

    from bot.channels.email.app import STATE_FILE
    from bot.channels.email.state import SENT, EmailState
    from bot.channels.terminal.notify import CliNotifier
    from bot.requests.service import deliver_answers, publish_response

    settings = Settings.from_env({}, CLERK_HOME=home)
    clock = Clock(utc_now() - timedelta(days=100))
    with SqliteRequestStore(settings.requests_db, clock=clock) as store:
        asker = Asker("cli", "alice", "Cllr Alice")
        store.log("Is the Thanet library staying open?", asker)
        answered = store.answer(1, "jo", "Yes, until 2026.")
        published = publish_response(settings, answered)  # quotes the question: searchable
        deliver_answers(store, {"cli": CliNotifier.from_settings(settings)}, now=clock.now)
        store.close(1, "jo")
    inbox = CliNotifier.from_settings(settings).path_for("alice")
    assert "Thanet" in inbox.read_text()
    long_ago = (utc_now() - timedelta(days=100)).isoformat()
    feedback = home / "slack-feedback.jsonl"
    feedback.write_text(
        json.dumps({"at": long_ago, "user": "U0ALICE", "question": "Thanet library?"}) + "\n"
        + json.dumps({"at": utc_now().isoformat(), "user": "U0BOB", "question": "Swale?"}) + "\n"
    )  # fmt: skip
    mail = EmailState(home / STATE_FILE)
    mail.record("<m1@kent.gov.uk>", "alice@kent.gov.uk", "Thanet library", SENT)
    mail.close()
    with sqlite3.connect(home / STATE_FILE) as db:
        db.execute("UPDATE messages SET updated_at = ?", (long_ago,))

    status, out, _ = run(capsys, "purge", "--older-than", "90")

    assert status == 0 and "Purged 1 request(s)" in out
    assert not published.exists()  # the response document that quoted the question
    assert not inbox.exists()  # the terminal inbox entry
    assert "U0ALICE" not in feedback.read_text() and "U0BOB" in feedback.read_text()
    with sqlite3.connect(home / STATE_FILE) as db:
        assert db.execute("SELECT sender, subject FROM messages").fetchall() == [("", "")]


def test_answered_requests_close_themselves_after_the_configured_days(home, capsys):
    clock = Clock(utc_now() - timedelta(days=20))
    settings = Settings.from_env({}, CLERK_HOME=home)
    with SqliteRequestStore(settings.requests_db, clock=clock) as store:
        store.log("When does the Margate lido open?", ALICE)
        store.answer(1, "jo", "In May.")
        clock.now = utc_now()
        store.log("When does the Deal pier reopen?", BOB)
        store.answer(2, "jo", "In June.")

    status, out, _ = run(capsys, "purge", "--older-than", "365")

    assert status == 0 and "Closed 1 request(s)" in out
    assert [(r.request_id, r.state) for r in stored(home)] == [(1, "closed"), (2, "answered")]

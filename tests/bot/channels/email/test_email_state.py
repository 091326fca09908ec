"""The processed-messages table that makes email replies exactly-once."""

from __future__ import annotations

from bot.channels.email.state import ANSWERING, SENT, UNKNOWN_SENDER, EmailState


def test_a_message_is_claimed_once(tmp_path):
    state = EmailState(tmp_path / "state.sqlite3")
    assert state.claim("<m1@x>", "a@kent.gov.uk", "Budget")
    # a second process (or pass) must not answer it while the first is on it
    assert not EmailState(tmp_path / "state.sqlite3").claim("<m1@x>", "a@kent.gov.uk", "Budget")
    state.release("<m1@x>")
    assert state.claim("<m1@x>", "a@kent.gov.uk", "Budget")
    assert state.get("<m1@x>").state == ANSWERING


def test_sending_and_sent_are_final(tmp_path):
    state = EmailState(tmp_path / "state.sqlite3")
    state.claim("<m1@x>", "a@kent.gov.uk", "Budget")
    state.sending("<m1@x>", "<reply@clerk>", 7)
    assert not state.claim("<m1@x>", "a@kent.gov.uk", "Budget")
    state.release("<m1@x>")  # only an unsent claim can be released
    assert not state.record("<m1@x>", "a@kent.gov.uk", "Budget", UNKNOWN_SENDER)
    record = state.get("<m1@x>")
    assert (record.state, record.reply_id, record.request_id) == ("sending", "<reply@clerk>", 7)
    state.finish("<m1@x>", SENT)
    assert state.counts() == {"sent": 1}


def test_state_survives_reopening(tmp_path):
    EmailState(tmp_path / "s.sqlite3").record("<m2@x>", "b@x", "Hi", UNKNOWN_SENDER, "not allowed")
    record = EmailState(tmp_path / "s.sqlite3").get("<m2@x>")
    assert (record.state, record.reason) == (UNKNOWN_SENDER, "not allowed")

"""Promises in the indexed papers become requests officers see, each logged once."""

from __future__ import annotations

import logging
import re
import sqlite3
from datetime import UTC, datetime

from bot.promises.log import PROMISE_CHANNEL, REGISTRY_FILE, log_published_promises
from bot.requests.service import open_store
from bot.web.queue import QueueQuery, select


def test_a_promise_in_the_papers_is_logged_once_with_its_meeting_and_sentence(engine_settings):
    first = log_published_promises(engine_settings)

    assert first, "the Bradford agenda item promises further information to Members"
    with open_store(engine_settings) as store:
        requests = store.list()
        bradford = [r for r in requests if "Further information" in r.question]
        assert bradford and bradford[0].askers[0].channel == PROMISE_CHANNEL
        assert bradford[0].nearest[0].source.startswith("bradford/")  # cites where it was made
        assert "Area Committee" in bradford[0].question

    again = log_published_promises(engine_settings)  # the next index run: nothing new

    assert again == []
    with open_store(engine_settings) as store:
        assert len(store.list()) == len(requests)


def test_the_desk_can_show_only_promises(engine_settings):
    from bot.requests.model import Asker

    log_published_promises(engine_settings)
    with open_store(engine_settings) as store:
        store.log("When will the Keighley bus station reopen?", Asker("cli", "alice"))
        everything = store.list()
    now = datetime.now(UTC)
    only = select(everything, QueueQuery(promises=True), "jo", now, 10)
    assert only and len(only) < len(everything)
    assert all(any(a.channel == PROMISE_CHANNEL for a in r.request.askers) for r in only)


def _passages_read(caplog) -> tuple[int, int]:
    found = re.findall(r"promises: (\d+) passages read, (\d+) read before", caplog.text)
    caplog.clear()
    return int(found[-1][0]), int(found[-1][1])


def test_each_passage_is_read_once_per_classifier(engine_settings, caplog):
    caplog.set_level(logging.INFO, logger="bot.promises.log")
    first = log_published_promises(engine_settings)
    read, before = _passages_read(caplog)
    assert first and read > 100 and before == 0

    assert log_published_promises(engine_settings) == []  # the next night: nothing new to read
    assert _passages_read(caplog) == (0, read)

    # a retrained classifier reads every passage again, and logs nothing twice
    with sqlite3.connect(engine_settings.home / REGISTRY_FILE) as registry:
        registry.execute("UPDATE passages_read SET classifier = 'the one before'")
    assert log_published_promises(engine_settings) == []
    assert _passages_read(caplog) == (read, 0)

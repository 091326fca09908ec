"""Promises in the indexed papers become requests officers see, each logged once."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.promises.log import PROMISE_CHANNEL, log_published_promises
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

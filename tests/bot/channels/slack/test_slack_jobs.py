"""The durable queue of acknowledged Slack work: a retried event is refused for a day, and
across the upgrade from the file that held only the event ids seen."""

from __future__ import annotations

import sqlite3

from bot.channels.slack.jobs import JOBS_FILE, JobQueue

HOUR = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_retried_event_is_refused_for_a_day_then_forgotten(tmp_path):
    clock = Clock()
    queue = JobQueue(tmp_path / JOBS_FILE, clock)
    assert queue.put("mention", {"event": {}}, "Ev0001")
    assert not queue.put("mention", {"event": {}}, "Ev0001")  # still waiting: not queued twice
    job = queue.claim("me")
    assert job is not None and job.attempts == 1
    queue.done(job.job_id)
    assert not queue.put("mention", {"event": {}}, "Ev0001")  # answered: not queued again

    clock.now += 23 * HOUR
    assert queue.prune() == 0 and not queue.put("mention", {"event": {}}, "Ev0001")
    clock.now += 2 * HOUR
    assert queue.prune() == 1  # a day after it was done, its row (and the question) is gone
    assert queue.counts()["done"] == 0
    queue.close()


def test_event_ids_taken_in_before_the_queue_existed_stay_refused(tmp_path):
    path = tmp_path / JOBS_FILE  # the file as earlier versions left it: only the ids seen
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY, at REAL)")
        db.execute("INSERT INTO seen VALUES ('Ev0OLD', strftime('%s', 'now'))")
    db.close()
    queue = JobQueue(path)
    assert not queue.put("mention", {"event": {}}, "Ev0OLD")
    assert queue.put("mention", {"event": {}}, "Ev0NEW")
    queue.close()

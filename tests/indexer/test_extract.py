"""Papers read in worker processes beside the embedder: the same index as reading them in one
process, and a paper that hangs or kills its worker costs only itself."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import paths
import pypdf
import pytest
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject

from bot.settings import Settings
from indexer.refresh import refresh
from indexer.store import read_build
from tests.conftest import copy_sample

LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
BRADFORD = "bradford/area-committee"
JANUARY = "kent/full_council/2025-01-09"  # six papers, one of them four times the others' size
STUCK = "test/cabinet/stuck.pdf"


def write_stuck_pdf(path: Path) -> None:
    """A small PDF that keeps pypdf busy for hours: each page draws one form 5,000 times (pypdf's
    cap on form invocations), and the form holds 20,000 operators that are parsed every time."""
    writer = pypdf.PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    form = DecodedStreamObject()
    form.set_data(b"BT /F1 1 Tf (x) Tj ET\n" + b"q Q\n" * 20_000)
    form.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Form"),
            NameObject("/BBox"): ArrayObject([pypdf.generic.NumberObject(n) for n in (0, 0, 9, 9)]),
            NameObject("/Resources"): DictionaryObject(
                {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
            ),
        }
    )
    form_ref = writer._add_object(form)
    for _ in range(20):
        page = writer.add_blank_page(612, 792)
        content = DecodedStreamObject()
        content.set_data(b"/Fm Do\n" * 5_000)
        page[NameObject("/Contents")] = writer._add_object(content)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/XObject"): DictionaryObject({NameObject("/Fm"): form_ref})}
        )
    for page in writer.pages:
        page.compress_content_streams()
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "meeting.json").write_text(
        json.dumps(
            {"council": "Test Council", "committee": "Cabinet", "meeting_date": "2025-01-01"}
        )
    )
    with open(path, "wb") as f:
        writer.write(f)


def test_papers_read_by_workers_make_the_same_index_as_one_process(tmp_path, embedder, caplog):
    corpus = copy_sample(tmp_path / "corpus", (JANUARY, LEVI, BRADFORD))
    # The LEVI amendment saved again (same text, other bytes) ahead of it in reading order: the
    # copy read first is the one kept, whichever worker finishes first.
    levi = corpus / LEVI
    resaved = corpus / "kent/full_council/2025-02-12/Amendment as circulated.pdf"
    resaved.parent.mkdir()
    (resaved.parent / "meeting.json").write_bytes((levi.parent / "meeting.json").read_bytes())
    writer = pypdf.PdfWriter(clone_from=levi)
    writer.add_metadata({"/Title": "Re-published"})
    writer.write(resaved)

    builds = {}
    for workers in (0, 3):
        settings = Settings.from_env(
            {},
            CLERK_HOME=tmp_path / f"home-{workers}",
            CLERK_CORPUS=corpus,
            CLERK_INDEX_WORKERS=workers,
        )
        with caplog.at_level(logging.INFO, logger="indexer.extract"):
            summary = refresh(settings.index, [corpus], embedder)
        assert (summary.added, summary.duplicates, summary.failed) == (8, 1, ())
        builds[workers] = read_build(settings.index.index_dir)

    assert "read 9 papers in 3 worker processes" in caplog.text  # the pool did the reading
    alone, pooled = builds[0], builds[3]
    assert pooled.chunks == alone.chunks  # the same passages, in the same order
    assert pooled.documents == alone.documents and pooled.files == alone.files
    assert pooled.places(pooled.doc_of(LEVI) or "") == [
        "kent/full_council/2025-02-12/Amendment as circulated.pdf",
        LEVI,
    ]
    np.testing.assert_array_equal(pooled.vectors, alone.vectors)


def _index_with_a_stuck_paper(tmp_path, embedder, extra_env, while_running=None):
    """`clerk index --json` on LEVI, the Bradford page and a paper pypdf is stuck in."""
    corpus = copy_sample(tmp_path / "corpus", (LEVI, BRADFORD))
    write_stuck_pdf(corpus / STUCK)
    embedder.embed(["the int8 encoder is built before the run"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "SLACK_"))}
    env.update(
        PYTHONPATH=str(paths.REPO),
        HF_HUB_OFFLINE="1",
        CLERK_HOME=str(tmp_path / "home"),
        CLERK_ENCODER_DIR=os.environ["CLERK_ENCODER_DIR"],
        CLERK_INDEX_WORKERS="2",
        **extra_env,
    )
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        run = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "bot.cli.main", "index", str(corpus), "--json"],
            env=env, cwd=tmp_path, stdout=stdout, stderr=stderr,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 300  # without a pool, the stuck paper takes hours
            while run.poll() is None and time.monotonic() < deadline:
                if while_running is not None:
                    while_running(run.pid)
                time.sleep(0.2)
            assert run.poll() is not None, "clerk index is still reading after 300 s"
        finally:
            run.kill()
            run.wait()
    return run.returncode, out.read_text(), err.read_text(), tmp_path / "home"


def test_a_paper_that_hangs_its_worker_is_skipped_and_the_rest_indexed(tmp_path, embedder):
    status, out, log, home = _index_with_a_stuck_paper(
        tmp_path, embedder, {"CLERK_PAPER_TIMEOUT": "5"}
    )
    summary = json.loads(out)

    assert status == 1  # something failed, and the exit status says so
    assert summary["added"] == 2 and summary["published"]
    [failure] = summary["failed"]
    assert failure["source"] == STUCK and "longer than 5 s" in failure["reason"]
    assert f"skipped {STUCK}: reading took longer than 5 s" in log
    titles = {d.title for d in read_build(home / "index").documents.values()}
    assert titles == {
        "3 - Amendment - Liberal Democrats - LEVI capital funding",
        "Protecting vulnerable children and adults at risk of exploitation - agenda item",
    }


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # gone already
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_a_paper_whose_worker_is_killed_is_skipped_and_the_rest_indexed(tmp_path, embedder):
    killed: list[int] = []

    def out_of_memory_killer(clerk: int) -> None:
        # As the kernel would: SIGKILL the worker that has been busy far longer than any of
        # these papers needs (the one stuck in the pathological paper), every time it appears.
        for pid in _children(clerk):
            try:
                if _cpu_seconds(pid) > 8:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            except (OSError, ValueError):
                continue

    status, out, log, home = _index_with_a_stuck_paper(
        tmp_path, embedder, {"CLERK_PAPER_TIMEOUT": "3600"}, while_running=out_of_memory_killer
    )
    summary = json.loads(out)

    assert killed  # a worker did die under the run
    assert status == 1 and summary["added"] == 2 and summary["published"]
    [failure] = summary["failed"]
    assert failure["source"] == STUCK and "stopped abruptly" in failure["reason"]
    assert f"skipped {STUCK}: its reading process stopped abruptly" in log
    assert len(read_build(home / "index").documents) == 2


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_no_worker_outlives_a_killed_index_run(tmp_path, embedder):
    stuck: list[int] = []

    def kill_the_run(clerk: int) -> None:
        # As `docker stop` past its grace period would, once a worker is stuck in the paper.
        busy = [pid for pid in _children(clerk) if _cpu_seconds(pid) > 3]
        if busy and not stuck:
            stuck.extend(busy)
            os.kill(clerk, signal.SIGKILL)

    status, *_ = _index_with_a_stuck_paper(
        tmp_path, embedder, {"CLERK_PAPER_TIMEOUT": "3600"}, while_running=kill_the_run
    )

    assert status == -signal.SIGKILL and stuck
    try:
        for _ in range(100):
            if not any(_running(pid) for pid in stuck):
                break
            time.sleep(0.2)
        assert not any(_running(pid) for pid in stuck)  # not left spinning on its own
    finally:
        for pid in filter(_running, stuck):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("variable", "value"), [("CLERK_INDEX_WORKERS", "-1"), ("CLERK_PAPER_TIMEOUT", "0")]
)
def test_bad_worker_settings_are_refused_at_start_up(variable, value):
    from indexer.errors import ConfigError

    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})

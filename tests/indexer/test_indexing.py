"""Indexing real papers: incremental runs, duplicates, atomic publishing and bad input."""

from __future__ import annotations

import json
import os
import shutil

import pypdf
import pytest

from bot.cli.main import main
from bot.settings import Settings
from indexer.errors import IndexMissingError
from indexer.refresh import refresh
from indexer.store import build_dir_of, read_build
from tests.conftest import copy_sample

LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
BRADFORD = "bradford/area-committee"


@pytest.fixture
def corpus(tmp_path):
    return copy_sample(tmp_path / "corpus", (LEVI, BRADFORD))


@pytest.fixture
def settings(tmp_path, corpus):
    return Settings.from_env({}, CLERK_HOME=tmp_path / "home", CLERK_CORPUS=corpus)


def test_unchanged_papers_are_not_read_again(settings, corpus, embedder):
    first = refresh(settings.index, [corpus], embedder)
    assert (first.added, first.failed, first.published) == (2, (), True)
    build = build_dir_of(settings.index.index_dir)

    second = refresh(settings.index, [corpus], embedder)

    assert (second.added, second.unchanged, second.published) == (0, 2, False)
    assert build_dir_of(settings.index.index_dir) == build  # nothing republished


def test_changed_deleted_and_copied_files(settings, corpus, embedder):
    refresh(settings.index, [corpus], embedder)
    levi = corpus / LEVI
    txt = next((corpus / BRADFORD).glob("*.txt"))
    txt.write_text(txt.read_text(encoding="utf-8") + "\nResolved - a further report on 1 May.\n")
    shutil.copy2(levi, levi.with_name("LEVI copy_1.pdf"))  # same bytes, another name

    summary = refresh(settings.index, [corpus], embedder)
    assert (summary.updated, summary.duplicates, summary.unchanged) == (1, 1, 1)
    contents = read_build(settings.index.index_dir)
    assert len(contents.documents) == 2  # the copy is not indexed twice
    assert any("1 May" in c.text for c in contents.chunks)

    levi.unlink()
    summary = refresh(settings.index, [corpus], embedder)
    # the copy now carries the document; nothing is lost and nothing is re-embedded twice
    assert read_build(settings.index.index_dir).documents.keys() == contents.documents.keys()
    levi.with_name("LEVI copy_1.pdf").unlink()
    summary = refresh(settings.index, [corpus], embedder)
    assert summary.removed == 1
    assert len(read_build(settings.index.index_dir).documents) == 1


def test_a_paper_saved_again_with_other_bytes_is_one_source(settings, corpus, embedder):
    levi = corpus / LEVI
    resaved = levi.parent.parent / "2025-03-13" / "Minutes of Previous Meeting.pdf"
    resaved.parent.mkdir()
    shutil.copy2(levi.parent / "meeting.json", resaved.parent / "meeting.json")
    writer = pypdf.PdfWriter(clone_from=levi)
    writer.add_metadata({"/Title": "Re-published"})
    writer.write(resaved)
    assert resaved.read_bytes() != levi.read_bytes()

    first = refresh(settings.index, [corpus], embedder)
    assert (first.added, first.duplicates) == (2, 1)
    contents = read_build(settings.index.index_dir)
    assert len(contents.documents) == 2  # the LEVI amendment once, and the Bradford page
    places = set(contents.places(contents.doc_of(LEVI) or ""))
    assert places == {LEVI, resaved.relative_to(corpus).as_posix()}  # both places are known

    again = refresh(settings.index, [corpus], embedder)
    assert (again.duplicates, again.published) == (1, False)  # the copy is not read again


def test_a_copy_set_aside_and_brought_back_is_still_one_source(settings, corpus, embedder):
    levi = corpus / LEVI
    copy = levi.parent.parent / "2025-03-13" / "Minutes of Previous Meeting.pdf"
    copy.parent.mkdir()
    shutil.copy2(levi.parent / "meeting.json", copy.parent / "meeting.json")
    pypdf.PdfWriter(clone_from=levi).write(copy)  # same text, other bytes
    first = refresh(settings.index, [corpus], embedder)
    passages = len(read_build(settings.index.index_dir).chunks)
    aside = levi.rename(levi.with_suffix(".aside"))  # the original is taken away...
    refresh(settings.index, [corpus], embedder)
    aside.rename(levi)  # ...and comes back

    refresh(settings.index, [corpus], embedder)

    contents = read_build(settings.index.index_dir)
    assert len(contents.chunks) == passages  # not indexed twice
    assert first.duplicates == 1 and len(contents.documents) == 2


def _write_bad_papers(folder):
    folder.mkdir(parents=True)
    (folder / "meeting.json").write_text(
        json.dumps(
            {"council": "Test Council", "committee": "Cabinet", "meeting_date": "2025-01-01"}
        )
    )
    real = (copy_sample(folder.parent / "src", (LEVI,)) / LEVI).read_bytes()
    (folder / "truncated.pdf").write_bytes(real[: len(real) // 3])
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    (folder / "error-page.pdf").write_bytes(b"<!DOCTYPE html><html><body>Error 500</body></html>")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "notes.docx").write_bytes(b"PK\x03\x04")
    (folder / "latin1.txt").write_bytes(
        "Minutes: the caf\xe9 lease at \xa3250 a month was agreed by members.".encode("latin-1")
    )
    blank = pypdf.PdfWriter()
    blank.add_blank_page(612, 792)
    with open(folder / "scanned.pdf", "wb") as f:
        blank.write(f)
    locked = pypdf.PdfWriter(clone_from=pypdf.PdfReader(folder.parent / "src" / LEVI))
    locked.encrypt(user_password="secret", owner_password="owner")  # noqa: S106 - a test fixture
    with open(folder / "encrypted.pdf", "wb") as f:
        locked.write(f)
    bad_meeting = folder.parent / "broken-meeting"
    bad_meeting.mkdir()
    (bad_meeting / "meeting.json").write_text("{not json")
    (bad_meeting / "paper.txt").write_text("A paper whose meeting.json is broken. " * 5)


def test_bad_papers_are_reported_and_the_rest_indexed(settings, corpus, embedder):
    _write_bad_papers(corpus / "test" / "cabinet")

    summary = refresh(settings.index, [corpus], embedder)

    reasons = {f["source"].rsplit("/", 1)[-1]: f["reason"] for f in summary.failed}
    assert (
        "corrupt or truncated" in reasons["truncated.pdf"]
        or "unreadable" in reasons["truncated.pdf"]
    )
    assert "not a PDF" in reasons["error-page.pdf"]
    assert reasons["empty.txt"] == "empty file"
    assert "unknown file type" in reasons["notes.docx"]
    assert "scanned or image-only" in reasons["scanned.pdf"]
    assert "encrypted" in reasons["encrypted.pdf"]
    assert "not valid JSON" in reasons["paper.txt"]
    assert "corrupt.pdf" in reasons
    contents = read_build(settings.index.index_dir)
    titles = {d.title for d in contents.documents.values()}
    assert "latin1" in titles  # non-UTF-8 text is read, not dropped
    assert any("café lease at £250" in c.text for c in contents.chunks)
    assert len(contents.documents) == 3  # LEVI, Bradford, latin1


def test_failed_build_leaves_the_previous_index_serving(settings, corpus, embedder):
    refresh(settings.index, [corpus], embedder)
    before = build_dir_of(settings.index.index_dir)

    class BrokenEmbedder:
        name, dimension = embedder.name, embedder.dimension

        def embed(self, texts):
            raise RuntimeError("out of memory")

    (corpus / BRADFORD / "new.txt").write_text("Resolved - that the new report be noted. " * 5)
    with pytest.raises(RuntimeError):
        refresh(settings.index, [corpus], BrokenEmbedder())

    assert build_dir_of(settings.index.index_dir) == before
    assert len(read_build(settings.index.index_dir).documents) == 2


def test_changing_the_chunking_rebuilds(settings, corpus, embedder):
    refresh(settings.index, [corpus], embedder)
    smaller = Settings.from_env(
        {}, CLERK_HOME=settings.home, CLERK_CORPUS=corpus, CLERK_CHUNK_WORDS=60
    )

    summary = refresh(smaller.index, [corpus], embedder)

    assert summary.added == 2 and summary.published
    assert read_build(smaller.index.index_dir).params.chunk_words == 60


def test_an_index_cut_by_an_older_chunker_is_rebuilt_and_served_meanwhile(
    settings, corpus, embedder
):
    from bot.engine.answer import Answerer
    from indexer.chunk import CHUNKER_VERSION

    refresh(settings.index, [corpus], embedder)
    build = build_dir_of(settings.index.index_dir)
    params = json.loads((build / "params.json").read_text())
    del params["chunker"]  # as builds made before the chunker was recorded
    (build / "params.json").write_text(json.dumps(params))

    # until the next run, the older cut is still served
    assert Answerer.from_settings(settings, embedder).answer("LEVI amendment amount?").citations
    summary = refresh(settings.index, [corpus], embedder)

    assert summary.added == 2 and summary.published
    assert read_build(settings.index.index_dir).params.chunker == CHUNKER_VERSION
    assert not refresh(settings.index, [corpus], embedder).published  # and then incremental


def test_chunks_fit_the_model_window(shared_index, embedder):
    contents = read_build(shared_index.index.index_dir)
    longest = max(embedder.count_tokens(f"{c.heading}\n{c.text}") for c in contents.chunks)
    assert longest <= embedder.max_tokens


def test_cli_index_json_and_status(settings, corpus, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(settings.home))
    (corpus / "junk.xyz").write_text("?")
    (corpus / "README.md").write_text("# Sample papers\nOpen Government Licence v3.0.\n")

    status = main(["index", str(corpus), "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert status == 1  # something failed, and the exit status says so
    # the folder's README is neither a paper nor a failure
    assert summary["added"] == 2 and [f["source"] for f in summary["failed"]] == ["junk.xyz"]
    assert main(["status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["documents"] == 2 and shown["newest_meeting"] == "2025-02-13"
    assert shown["failed"] == [{"source": "junk.xyz", "reason": "unknown file type '.xyz'"}]


def test_asking_before_any_index_is_a_clear_error(tmp_path, embedder):
    from bot.engine.answer import Answerer

    answerer = Answerer.from_settings(
        Settings.from_env({}, CLERK_HOME=tmp_path / "empty"), embedder
    )
    with pytest.raises(IndexMissingError, match="clerk index"):
        answerer.answer("What is the budget?")


def test_a_missing_papers_folder_never_empties_the_index(settings, corpus, embedder, tmp_path):
    from indexer.errors import ConfigError

    refresh(settings.index, [corpus], embedder)

    with pytest.raises(ConfigError, match="papers folder not found"):
        refresh(settings.index, [tmp_path / "no-such-folder"], embedder)

    assert len(read_build(settings.index.index_dir).documents) == 2


def test_status_lists_settings_but_never_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret-token")

    assert main(["status", "--settings"]) == 0

    shown = capsys.readouterr().out
    assert "no index published" in shown and "run `clerk index`" in shown
    assert "SLACK_BOT_TOKEN=set" in shown and "CLERK_ANSWER_THRESHOLD=" in shown
    assert "xoxb-very-secret-token" not in shown


def test_a_build_killed_half_way_leaves_no_staging_behind(settings, corpus, embedder):
    refresh(settings.index, [corpus], embedder)
    builds = settings.index.home / "builds"
    # what `kill -9` during publish leaves: a staging directory with part of a build in it
    abandoned = builds / ".20261130T120000-deadbeef.tmp"
    abandoned.mkdir()
    (abandoned / "vectors.npy").write_bytes(b"\0" * 4096)

    summary = refresh(settings.index, [corpus], embedder)  # nothing changed in the papers

    assert not summary.published
    assert not abandoned.exists()
    assert read_build(settings.index.index_dir).documents  # the published index still serves

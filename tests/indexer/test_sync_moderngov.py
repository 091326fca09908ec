"""Syncing a loopback ModernGov site into corpus folders: first run, re-runs, bad responses."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from moderngov_server import FIXTURES, ModernGovServer
from sync_support import settings_fixture, site_fixture  # noqa: F401 - fixtures

from bot.settings import Settings
from indexer.moderngov.client import ModernGovClient
from indexer.moderngov.sync import STATE_FILE, council_for, safe_name, slug, sync_moderngov
from indexer.sources import discover, read_meeting

TODAY = date(2025, 3, 10)
SINCE = date(2025, 1, 1)
COUNCIL = "Kent County Council"
CABINET_0130 = "kent-county-council/cabinet/2025-01-30"
CABINET_0304 = "kent-county-council/cabinet/2025-03-04"
COUNCIL_0213 = "kent-county-council/county-council/2025-02-13"
COUNCIL_0313 = "kent-county-council/county-council/2025-03-13"
FIRST_PDFS = 7  # public PDFs in the three published meetings


def sync(settings: Settings, site: ModernGovServer, **kw):
    options = dict(since=SINCE, council=COUNCIL, today=TODAY) | kw
    return sync_moderngov(settings.index, settings.sync, site.base_url, **options)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_first_sync_files_each_meeting_like_the_corpus(settings, site):
    summary = sync(settings, site)
    assert summary.ok, summary.failures
    assert (summary.committees, summary.meetings, summary.new_meetings) == (2, 3, 3)
    assert summary.downloaded == FIRST_PDFS
    assert set(summary.folders) == {CABINET_0130, CABINET_0304, COUNCIL_0213}
    meta = json.loads((settings.index.corpus / CABINET_0130 / "meeting.json").read_text())
    assert meta["council"] == COUNCIL and meta["committee"] == "Cabinet"
    assert meta["meeting_date"] == "2025-01-30" and meta["site"] == site.base_url
    doc = meta["documents"]["Appendix O - MRP.pdf"]
    assert doc == {
        "url": f"{site.base_url}/mgConvert2PDF.aspx?ID=50012",
        "attachment_id": 50012,
        "agenda_item": "3. Cabinet Members' Questions & Updates",
    }
    assert meta["documents"]["1. Apologies and Substitutes.html"]["url"].endswith(
        "/mgAi.aspx?ID=70001"
    )
    # the lead's indexer reads the same file: titles and document URLs reach citations
    meeting = read_meeting(settings.index.corpus / CABINET_0130 / "meeting.json")
    assert meeting.meeting_date == "2025-01-30"
    assert meeting.document_urls["Appendix O - MRP.pdf"] == doc["url"]


def test_every_recorded_url_opens_the_published_paper(settings, site):
    sync(settings, site)
    client = ModernGovClient(site.base_url, user_agent="Clerk-test/1.0", delay=0)
    for meta_path in settings.index.corpus.rglob("meeting.json"):
        for name, info in json.loads(meta_path.read_text())["documents"].items():
            body = client.get(info["url"]).body
            assert body.startswith(b"%PDF-" if name.endswith(".pdf") else b"<!DOCTYPE html>")


def test_restricted_cancelled_and_out_of_range_are_never_fetched(settings, site):
    summary = sync(settings, site)
    fetched_docs = {r.query.get("id") for r in site.requests_to("mgConvert2PDF")}
    assert fetched_docs == {"50011", "50012", "50013", "50015", "50021", "50022", "50031"}
    meetings = {r.query["lmeetingid"] for r in site.log if r.path.endswith("/GetMeeting")}
    assert meetings == {"9801", "9802", "9901"}  # not 9700 (2024), 9803 (cancelled), 9902
    committees = {r.query["lcommitteeid"] for r in site.requests_to("GetMeetings")}
    assert committees == {"144", "112"}  # deleted 999 and expired 500 are not asked about
    assert summary.skipped == 4  # restricted item, restricted doc, hidden item, external link
    assert not any("Exempt" in p for p in files(settings.index.corpus))


def test_agenda_items_are_written_as_inert_moderngov_html(settings, site):
    sync(settings, site)
    page = settings.index.corpus / CABINET_0130 / "3. Cabinet Members' Questions & Updates.html"
    text = page.read_text()
    assert '<h2 class="mgSubTitleTxt">3. Cabinet Members&#x27; Questions &amp; Updates</h2>' in text
    assert "Cabinet Member’s update" in text  # &rsquo; reached the file as a character
    assert "<script" not in text and "onclick" not in text and "alert" not in text
    decision = (settings.index.corpus / CABINET_0130).glob("5. *.html")
    assert "Decision:" in next(decision).read_text()


def test_second_sync_downloads_nothing(settings, site):
    sync(settings, site)
    before = files(settings.index.corpus)
    site.log.clear()
    summary = sync(settings, site)
    assert summary.ok and summary.downloaded == 0 and summary.items_written == 0
    assert summary.unchanged == FIRST_PDFS and summary.folders == () and summary.new_meetings == 0
    assert site.document_requests() == []  # only the web service was asked
    assert files(settings.index.corpus) == before


def test_a_new_meeting_is_found_and_only_it_is_fetched(settings, site):
    sync(settings, site)
    site.publish_meeting(9902)
    site.log.clear()
    summary = sync(settings, site, today=date(2025, 3, 20))
    assert summary.ok
    assert (summary.new_meetings, summary.downloaded, summary.folders) == (1, 2, (COUNCIL_0313,))
    fetched = {r.query.get("id") for r in site.document_requests()}
    assert fetched == {"50041", "50042"}
    meta = json.loads((settings.index.corpus / COUNCIL_0313 / "meeting.json").read_text())
    assert meta["committee"] == "County Council" and len(meta["documents"]) == 3


def test_a_changed_publication_date_asks_conditionally_and_304_downloads_nothing(settings, site):
    sync(settings, site)
    changed = (FIXTURES / "GetMeeting_9802.xml").read_bytes().replace(b"24/02/2025", b"26/02/2025")
    site.extra["GetMeeting_9802.xml"] = changed
    site.log.clear()
    summary = sync(settings, site)
    assert (summary.not_modified, summary.downloaded) == (2, 0)
    asked = site.document_requests()
    assert len(asked) == 2 and all(r.conditional and r.status == 304 for r in asked)


def test_a_deleted_file_is_fetched_again(settings, site):
    sync(settings, site)
    (settings.index.corpus / CABINET_0304 / "Cabinet QPR Q3 Cover.pdf").unlink()
    summary = sync(settings, site)
    assert summary.downloaded == 1 and summary.folders == (CABINET_0304,)


BAD_RESPONSES = {
    "timeout": (lambda q: (q.slow.add("doc:50021"), setattr(q, "slow_seconds", 1.0)), "timed out"),
    "500": (lambda q: q.fail_500.add("doc:50021"), "HTTP 500"),
    "truncated PDF": (lambda q: q.truncated.add(50021), "truncated PDF"),
    "HTML as PDF": (lambda q: q.html_as_pdf.add(50021), "served as a PDF but is not one"),
}


@pytest.mark.parametrize("name", BAD_RESPONSES)
def test_a_bad_document_is_reported_and_the_rest_continues(settings, site, name):
    break_it, reason = BAD_RESPONSES[name]
    break_it(site.quirks)
    settings = settings.replaced(CLERK_SYNC_TIMEOUT=0.3)
    summary = sync(settings, site)
    assert summary.error is None and summary.downloaded == FIRST_PDFS - 1
    [failure] = summary.failures
    assert failure.kind == "document" and failure.ref.endswith("ID=50021")
    assert reason in failure.reason and failure.meeting == CABINET_0304
    assert not (settings.index.corpus / CABINET_0304 / "Cabinet QPR Q3 Cover.pdf").exists()
    meta = json.loads((settings.index.corpus / CABINET_0304 / "meeting.json").read_text())
    assert "Cabinet QPR Q3 Cover.pdf" not in meta["documents"]
    # the next run, with the site fixed, fetches only what failed
    site.quirks.__init__()
    site.log.clear()
    again = sync(settings, site)
    assert again.ok and again.downloaded == 1
    assert [r.query["id"] for r in site.document_requests()] == ["50021"]


@pytest.mark.parametrize(
    "key, quirk, reason",
    [
        ("GetMeeting:9802", "html_ok", "an HTML page"),
        ("GetMeeting:9802", "billion", "unsafe XML"),
        ("GetMeetings:112", "xxe", "unsafe XML"),
        ("GetMeetings:112", "fail_500", "HTTP 500"),
    ],
)
def test_bad_xml_is_reported_and_the_rest_continues(settings, site, key, quirk, reason):
    if quirk in ("billion", "xxe"):
        site.quirks.evil[key] = quirk
    else:
        getattr(site.quirks, quirk).add(key)
    summary = sync(settings, site)
    [failure] = summary.failures
    assert reason in failure.reason and failure.ref == key.split(":")[1]
    assert summary.error is None and summary.downloaded > 0
    assert (settings.index.corpus / CABINET_0130 / "meeting.json").is_file()


PERSONAL_PAGE = (
    b"<!DOCTYPE html><html><head><title>Casework: Jane Doe, 1 High Street</title></head>"
    b"<body>Jane Doe's housing case</body></html>"
)


def test_a_redirect_off_the_site_is_a_clear_failure_with_nothing_fetched(settings, site):
    with ModernGovServer() as other:
        other.quirks.pages["/case"] = PERSONAL_PAGE
        site.quirks.redirects["GetMeeting:9802"] = f"{other.base_url}/case"
        site.quirks.redirects["doc:50012"] = "ftp://127.0.0.1:9/Appendix.pdf"
        summary = sync(settings, site)
        assert other.log == []
    assert summary.error is None
    meeting, document = sorted(summary.failures, key=lambda f: f.kind, reverse=True)
    assert meeting.kind == "meeting" and meeting.ref == "9802"
    assert "redirect refused: to another site (127.0.0.1:" in meeting.reason
    assert document.kind == "document" and document.ref.endswith("ID=50012")
    assert "redirect refused: to a ftp: address" in document.reason
    shown = json.dumps(summary.to_dict())
    assert "Jane" not in shown and "/case" not in shown and "Appendix.pdf" not in shown
    # the rest of the site synced as usual
    assert summary.downloaded == FIRST_PDFS - 3  # 50012 and 9802's two
    assert (settings.index.corpus / COUNCIL_0213 / "meeting.json").is_file()


def test_a_site_that_refuses_us_is_an_error_not_an_exception(settings, site):
    refused = settings.replaced(CLERK_USER_AGENT="python-requests/2.32")
    summary = sync(refused, site)
    assert summary.error and "403" in summary.error and not summary.ok
    assert not settings.index.corpus.exists()


def test_titles_cannot_escape_the_meeting_folder(settings, site):
    sync(settings, site)
    written = [p.resolve() for p in settings.index.corpus.parent.rglob("*") if p.is_file()]
    corpus = settings.index.corpus.resolve()
    assert all(corpus in p.parents or p.parent.name == "home" for p in written)
    assert (settings.index.corpus / CABINET_0130 / "etc passwd.pdf").is_file()


@pytest.mark.parametrize(
    "title, expected",
    [
        ("../../../../etc/passwd", "etc passwd"),
        ("..", "fallback"),
        ("a\x00b\x1fc\u202ed", "a b c d"),
        ("Budget: 2025/26 *final*?", "Budget 2025 26 final"),
        ("CON", "fallback"),
        (".hidden", "hidden"),
        ("C:\\Windows\\system32", "C Windows system32"),
    ],
)
def test_safe_name(title, expected):
    assert safe_name(title, "fallback") == expected


def test_safe_name_caps_length_in_bytes_and_is_stable():
    long = "Représentation " * 40
    name = safe_name(long, "x")
    assert len(name.encode()) <= 150 and name == safe_name(long, "x")


def test_folder_names_and_councils():
    assert slug("Governance & Audit Committee") == "governance-audit-committee"
    assert slug("../..") == "unnamed"
    assert council_for("https://democracy.kent.gov.uk") == ("Kent County Council", "kent")
    assert council_for("https://bradford.moderngov.co.uk", "Bradford")[1] == "bradford"
    assert council_for("https://democracy.example.gov.uk") == (
        "democracy.example.gov.uk",
        "democracy",
    )


def test_quirky_and_tidy_installs_give_the_same_corpus(tmp_path, settings, site):
    sync(settings, site)
    site.quirks.tidy = True
    tidy = settings.replaced(CLERK_HOME=tmp_path / "h2", CLERK_CORPUS=tmp_path / "c2")
    sync(tidy, site)
    assert files(settings.index.corpus) == files(tidy.index.corpus)


def test_missing_linkeddocuments_still_files_the_item_text(settings, site):
    site.quirks.strip_links.add(9802)
    summary = sync(settings, site)
    assert summary.ok and summary.downloaded == FIRST_PDFS - 2
    assert sorted(p.name for p in (settings.index.corpus / CABINET_0304).iterdir()) == [
        "51. Quarterly Performance Report, Quarter 3 2024 25.html",
        "52. Call-in Family Hubs.html",
        "meeting.json",
    ]


def test_state_and_no_temp_files_are_left(settings, site):
    sync(settings, site)
    state = json.loads((settings.home / STATE_FILE).read_text())
    meetings = state["sites"][site.base_url]["meetings"]
    assert meetings["9801"]["folder"] == CABINET_0130
    assert meetings["9801"]["documents"]["50012"]["etag"]
    assert not [p for p in settings.index.corpus.rglob(".*")]


def test_synced_folders_are_what_the_indexer_discovers(settings, site):
    sync(settings, site)
    papers = [p for p in discover(settings.index.corpus) if hasattr(p, "meeting")]
    assert len(papers) == FIRST_PDFS + 7  # PDFs and agenda-item pages
    mrp = next(p for p in papers if p.path.name == "Appendix O - MRP.pdf")
    assert mrp.url == f"{site.base_url}/mgConvert2PDF.aspx?ID=50012"
    assert mrp.meeting.council == COUNCIL and mrp.kind == "pdf"
    assert {p.kind for p in papers} == {"pdf", "html"}


# ------------------------------------------------------------ papers the council withdraws

HUBS = "Scrutiny Committee - call-in Family Hubs Report to Cabinet - FINAL.pdf"
HUBS_ITEM = "52. Call-in Family Hubs.html"


def withdrawn_records(settings: Settings) -> list[dict]:
    log = settings.home / "withdrawn" / "withdrawn.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_withdrawn_document_leaves_the_corpus_with_a_record(settings, site):
    sync(settings, site)
    original = (settings.index.corpus / CABINET_0304 / HUBS).read_bytes()
    site.quirks.withdrawn.add(50022)
    summary = sync(settings, site)
    assert not (settings.index.corpus / CABINET_0304 / HUBS).exists()
    assert summary.ok and summary.withdrawn == 1 and summary.folders == (CABINET_0304,)
    moved = settings.home / "withdrawn" / CABINET_0304 / HUBS
    assert moved.read_bytes() == original  # kept for the record, out of the index's reach
    [record] = withdrawn_records(settings)
    assert record["site"] == site.base_url and record["meeting"] == 9802
    assert record["file"] == f"{CABINET_0304}/{HUBS}" and record["attachment_id"] == 50022
    assert record["moved_to"] == f"withdrawn/{CABINET_0304}/{HUBS}"
    assert record["why"] == "no longer published with the meeting" and record["when"]
    meta = json.loads((settings.index.corpus / CABINET_0304 / "meeting.json").read_text())
    assert HUBS not in meta["documents"] and HUBS_ITEM in meta["documents"]
    # the next run has nothing more to withdraw and records nothing twice
    again = sync(settings, site)
    assert again.ok and again.withdrawn == 0 and len(withdrawn_records(settings)) == 1
    # published again (corrected): fetched again like a new paper
    site.quirks.withdrawn.clear()
    site.log.clear()
    back = sync(settings, site)
    assert back.downloaded == 1 and (settings.index.corpus / CABINET_0304 / HUBS).is_file()
    assert [r.query["id"] for r in site.document_requests()] == ["50022"]


def test_a_withdrawn_agenda_item_takes_its_page_and_papers_out(settings, site):
    sync(settings, site)
    site.quirks.withdrawn_items.add(70012)
    summary = sync(settings, site)
    assert sorted(p.name for p in (settings.index.corpus / CABINET_0304).iterdir()) == [
        "51. Quarterly Performance Report, Quarter 3 2024 25.html",
        "Cabinet QPR Q3 Cover.pdf",
        "meeting.json",
    ]
    assert summary.withdrawn == 2
    records = withdrawn_records(settings)
    assert {r["file"].rsplit("/", 1)[1] for r in records} == {HUBS, HUBS_ITEM}
    assert {r.get("agenda_item_id") for r in records} == {70012, None}


def test_a_meeting_that_now_publishes_nothing_is_emptied(settings, site):
    sync(settings, site)
    site.quirks.withdrawn_items.update({70011, 70012})
    summary = sync(settings, site)
    assert [p.name for p in (settings.index.corpus / CABINET_0304).iterdir()] == ["meeting.json"]
    meta = json.loads((settings.index.corpus / CABINET_0304 / "meeting.json").read_text())
    assert meta["documents"] == {} and summary.withdrawn == 4


def _cancel_9802(site: ModernGovServer) -> None:
    listing = (FIXTURES / "GetMeetings_144.xml").read_text()
    confirmed = "<meetingdate>04/03/2025</meetingdate>\n        <meetingstatus>Confirmed"
    assert confirmed in listing
    cancelled = confirmed.replace("Confirmed", "Cancelled")
    site.extra["GetMeetings_144.xml"] = listing.replace(confirmed, cancelled).encode()


BROKEN_MEETING = {
    "500": lambda site: site.quirks.fail_500.add("GetMeeting:9802"),
    "HTML page": lambda site: site.quirks.html_ok.add("GetMeeting:9802"),
    "entity bomb": lambda site: site.quirks.evil.update({"GetMeeting:9802": "billion"}),
    "redirected off the site": lambda site: site.quirks.redirects.update(
        {"GetMeeting:9802": "http://localhost:9/"}
    ),
    "committee list failed": lambda site: site.quirks.fail_500.add("GetMeetings:144"),
    "meeting left the list": lambda site: site.quirks.hidden_meetings.add(9802),
    "meeting cancelled": _cancel_9802,
}


@pytest.mark.parametrize("name", BROKEN_MEETING)
def test_nothing_is_withdrawn_when_the_meeting_was_not_read(settings, site, name):
    sync(settings, site)
    before = files(settings.index.corpus)
    site.quirks.withdrawn.update({50021, 50022})
    BROKEN_MEETING[name](site)
    summary = sync(settings, site)
    assert files(settings.index.corpus) == before
    assert summary.withdrawn == 0 and withdrawn_records(settings) == []


def test_nothing_is_withdrawn_for_meetings_outside_the_window(settings, site):
    sync(settings, site)
    site.quirks.withdrawn.update({50012, 50021})  # 30 January and 4 March
    summary = sync(settings, site, since=date(2025, 2, 1))
    assert (settings.index.corpus / CABINET_0130 / "Appendix O - MRP.pdf").is_file()
    assert not (settings.index.corpus / CABINET_0304 / "Cabinet QPR Q3 Cover.pdf").exists()
    assert summary.withdrawn == 1
    assert [r["attachment_id"] for r in withdrawn_records(settings)] == [50021]


def test_a_second_withdrawal_under_the_same_name_keeps_both(settings, site):
    sync(settings, site)
    site.quirks.withdrawn.add(50022)
    sync(settings, site)
    site.quirks.withdrawn.clear()
    site.attachments[50022] = site.attachments[50021]  # re-published with other bytes
    sync(settings, site)
    site.quirks.withdrawn.add(50022)
    sync(settings, site)
    kept = sorted(p.name for p in (settings.home / "withdrawn" / CABINET_0304).iterdir())
    assert len(kept) == 2 and kept[1] == HUBS
    assert [r["moved_to"].rsplit("/", 1)[1] for r in withdrawn_records(settings)] == [HUBS, kept[0]]


def test_a_withdrawal_that_cannot_be_written_keeps_the_file_and_is_tried_again(settings, site):
    sync(settings, site)
    (settings.home / "withdrawn").write_text("in the way")  # the folder cannot be made
    site.quirks.withdrawn.add(50022)
    summary = sync(settings, site)
    assert (settings.index.corpus / CABINET_0304 / HUBS).is_file()
    [failure] = summary.failures
    assert failure.kind == "withdrawal" and failure.ref == "50022"
    assert failure.meeting == CABINET_0304 and "could not withdraw" in failure.reason
    (settings.home / "withdrawn").unlink()
    again = sync(settings, site)
    assert again.ok and again.withdrawn == 1
    assert not (settings.index.corpus / CABINET_0304 / HUBS).exists()

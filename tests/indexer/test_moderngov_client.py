"""The ModernGov client: parsing the real response shapes, and talking to a loopback site."""

from __future__ import annotations

from datetime import date

import pytest
from moderngov_server import FIXTURES, ModernGovServer

from bot.settings import Settings
from indexer.errors import SyncError
from indexer.moderngov.client import (
    Fetched,
    MeetingSummary,
    ModernGovClient,
    check_pdf,
    html_text,
    normalise_site,
    parse_committees,
    parse_meeting,
    parse_meetings,
    parse_xml,
    same_site,
    sanitise_html,
)

UA = "Clerk-test/1.0 (+mailto:clerk@example.org)"
CABINET = MeetingSummary(9801, 144, "Cabinet", date(2025, 1, 30))


@pytest.fixture
def site():
    with ModernGovServer() as server:
        yield server


def client_for(site: ModernGovServer, **kw) -> ModernGovClient:
    options = dict(user_agent=UA, timeout=2.0, retries=2, delay=0.0) | kw
    return ModernGovClient(site.base_url, **options)


def fixture_xml(name: str, base: str = "https://democracy.kent.gov.uk") -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"{{BASE}}", base.encode())


# ------------------------------------------------------------ parsing the real shapes


def test_committees_parse_flags_and_optional_category():
    committees = parse_committees(parse_xml(fixture_xml("GetCommittees.xml"), "committees"))
    by_id = {c.committee_id: c for c in committees}
    assert set(by_id) == {144, 112, 999, 500}
    assert by_id[144].title == "Cabinet" and not by_id[144].deleted
    assert by_id[999].deleted and by_id[999].category == ""
    assert by_id[500].expired


def test_meetings_carry_their_committee_and_parse_dd_mm_yyyy():
    meetings = parse_meetings(parse_xml(fixture_xml("GetMeetings_144.xml"), "getmeetings"))
    assert [m.meeting_id for m in meetings] == [9700, 9801, 9802, 9803]
    assert {m.committee_id for m in meetings} == {144}
    assert meetings[1].meeting_date == date(2025, 1, 30)
    assert meetings[3].cancelled and not meetings[1].cancelled


def test_meeting_items_are_public_unescaped_and_keyed_on_ids():
    detail = parse_meeting(parse_xml(fixture_xml("GetMeeting_9801.xml"), "meeting"), CABINET)
    assert detail.committee_id == 144 and detail.committee_title == "Cabinet"
    items = {i.item_id: i for i in detail.items}
    # 70004 is restricted, 70006 not displayable; doc 50014 is restricted
    assert set(items) == {70001, 70002, 70003, 70005}
    assert detail.skipped_restricted == 3
    assert items[70003].title == "Cabinet Members' Questions & Updates"  # escaped twice
    assert items[70003].number == "3."
    assert "Member’s update" in html_text(items[70003].agenda_html)  # &rsquo; resolved
    assert "\xa0" not in html_text(items[70001].agenda_html)
    assert [d.attachment_id for d in items[70005].documents] == [50013, 50015]
    assert items[70001].documents == ()  # no <linkeddocuments> at all
    assert items[70002].minutes_html.startswith('<div class="WordSection1">')
    assert items[70005].decision_html


def test_whitespace_only_elements_read_as_empty():
    detail = parse_meeting(parse_xml(fixture_xml("GetMeeting_9801.xml"), "meeting"), CABINET)
    item = next(i for i in detail.items if i.item_id == 70002)
    assert item.agenda_html == ""  # <agendatext>\n      </agendatext>


def test_sanitised_html_keeps_text_and_drops_scripts_and_attributes():
    fragment = '<p onclick="steal()">Hello&nbsp;<b>there</b></p><script>alert(1)</script>'
    clean = sanitise_html(fragment)
    assert clean == "<p>Hello\xa0<b>there</b></p>"
    assert "script" not in clean and "onclick" not in clean


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<!DOCTYPE html><html><body>Runtime Error</body></html>", "an HTML page"),
        (b"  <html><head><title>Just a moment...</title></head></html>", "Just a moment"),
        (b"<!DOCTYPE meeting [<!ENTITY e 'x'>]><meeting>&e;</meeting>", "unsafe XML"),
        (b"window.location='https://x'", "not XML"),
        (b"", "not XML"),
        (b"<wards></wards>", "expected <meeting>"),
    ],
)
def test_anything_but_the_expected_root_is_a_failure(body, message):
    with pytest.raises(SyncError, match=message):
        parse_xml(body, "meeting")


def test_pdf_needs_both_the_content_type_and_the_magic_bytes():
    pdf = b"%PDF-1.7\n..."
    check_pdf(Fetched("u", 200, pdf, content_type="application/pdf"))
    with pytest.raises(SyncError, match="expected application/pdf"):
        check_pdf(Fetched("u", 200, pdf, content_type="text/html"))
    with pytest.raises(SyncError, match="not one"):
        check_pdf(Fetched("u", 200, b"<html>error</html>", content_type="application/pdf"))


def test_site_urls_are_normalised_and_compared_loosely():
    assert normalise_site("https://x.gov.uk/moderngov/mgWebService.asmx/") == (
        "https://x.gov.uk/moderngov"
    )
    assert same_site("http://Democracy.Gloucester.gov.uk/a", "https://democracy.gloucester.gov.uk")
    assert not same_site("file:///etc/passwd", "https://democracy.gloucester.gov.uk")
    with pytest.raises(SyncError):
        normalise_site("file:///etc")


# ------------------------------------------------------------ against the loopback site


def test_named_user_agent_and_dd_mm_yyyy_dates_are_sent(site):
    client = client_for(site)
    meetings = client.meetings(144, date(2025, 1, 1), date(2025, 3, 31))
    assert [m.meeting_id for m in meetings] == [9801, 9802, 9803]
    sent = site.log[-1]
    assert sent.user_agent == UA
    assert sent.query == {"lcommitteeid": "144", "sfromdate": "01/01/2025", "stodate": "31/03/2025"}


def test_range_is_also_applied_client_side(site):
    site.quirks.ignore_range = True
    meetings = client_for(site).meetings(144, date(2025, 1, 1), date(2025, 3, 31))
    assert 9700 not in [m.meeting_id for m in meetings]  # 12/12/2024 came back anyway


def test_from_settings_uses_the_configured_user_agent(site):
    settings = Settings.from_env({}, CLERK_USER_AGENT=UA, CLERK_SYNC_DELAY=0)
    assert [
        c.title for c in ModernGovClient.from_settings(settings.sync, site.base_url).committees()
    ]
    assert site.log[-1].user_agent == UA


def test_python_requests_user_agent_gets_403_with_a_hint(site):
    client = client_for(site, user_agent="python-requests/2.32")
    with pytest.raises(SyncError, match="403.*CLERK_USER_AGENT"):
        client.committees()


def test_empty_user_agent_is_refused_before_any_request(site):
    with pytest.raises(SyncError, match="User-Agent"):
        client_for(site, user_agent=" ")
    assert site.log == []


def test_html_error_page_with_200_is_a_failure(site):
    site.quirks.html_ok.add("GetCommittees")
    with pytest.raises(SyncError, match="GetCommittees: not XML"):
        client_for(site).committees()


@pytest.mark.parametrize("kind", ["billion", "xxe"])
def test_entity_bombs_and_external_entities_are_refused(site, kind):
    site.quirks.evil["GetMeeting:9801"] = kind
    with pytest.raises(SyncError, match="unsafe XML"):
        client_for(site).meeting(CABINET)


def test_a_500_is_retried_then_succeeds(site):
    site.quirks.flaky_500["GetCommittees"] = 1
    assert client_for(site).committees()
    assert [r.status for r in site.requests_to("GetCommittees")] == [500, 200]


def test_persistent_500_fails_after_the_retries(site):
    site.quirks.fail_500.add("GetCommittees")
    with pytest.raises(SyncError, match="HTTP 500.*after 3 tries"):
        client_for(site, retries=3).committees()
    assert len(site.requests_to("GetCommittees")) == 3


def test_a_slow_site_times_out_and_is_retried(site):
    site.quirks.slow.add("GetCommittees")
    site.quirks.slow_seconds = 1.0
    with pytest.raises(SyncError, match="timed out"):
        client_for(site, timeout=0.2, retries=2).committees()


def test_retries_back_off_and_calls_are_spaced(site):
    pauses: list[float] = []
    site.quirks.flaky_500["GetCommittees"] = 2
    client = client_for(site, delay=0.5, retries=3, sleep=pauses.append, clock=lambda: 0.0)
    client.committees()
    client.committees()
    # backoff of 1 s then 2 s, and the polite gap before every call but the very first
    assert pauses == [1.0, 0.5, 2.0, 0.5, 0.5]


def test_downloads_are_capped(site):
    client = client_for(site, max_bytes=10_000)
    with pytest.raises(SyncError, match="cap"):
        client.download_pdf(f"{site.base_url}/mgConvert2PDF.aspx?ID=50012")


def test_conditional_get_answers_304(site):
    client = client_for(site)
    url = f"{site.base_url}/mgConvert2PDF.aspx?ID=50012"
    first = client.download_pdf(url)
    assert first.body.startswith(b"%PDF-") and first.etag and first.last_modified
    again = client.download_pdf(url, etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.body == b""


def test_html_error_page_served_as_pdf_is_rejected(site):
    site.quirks.html_as_pdf.add(50012)
    with pytest.raises(SyncError, match="not one"):
        client_for(site).download_pdf(f"{site.base_url}/mgConvert2PDF.aspx?ID=50012")


def test_get_attachment_and_published_urls(site):
    client = client_for(site)
    doc = client.attachment(50012)
    assert doc.title == "Appendix O - MRP" and doc.attachment_id == 50012
    assert client.published_url(doc) == f"{site.base_url}/mgConvert2PDF.aspx?ID=50012"
    assert client.get(client.published_url(doc)).body.startswith(b"%PDF-")

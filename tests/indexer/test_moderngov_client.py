"""The ModernGov client: parsing the real response shapes, and talking to a loopback site."""

from __future__ import annotations

import ssl
import urllib.request
from datetime import date

import pytest
from mailservers import make_self_signed
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
    redirect_refusal,
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


# ------------------------------------------------------------ redirects stay inside the site

COMMITTEES_PATH = "/mgWebService.asmx/GetCommittees"


@pytest.fixture
def other():
    """Another web site, which a redirect must not reach."""
    with ModernGovServer() as server:
        yield server


def test_a_redirect_within_the_site_is_still_followed(site):
    site.quirks.redirect_once = True
    site.quirks.redirects["doc:50012"] = "/documents/s50012/Appendix%20O%20-%20MRP.pdf"
    site.quirks.redirects["GetCommittees"] = "{{BASE}}/mgwebservice.asmx/GetCommittees?lDummy=0"
    client = client_for(site)
    assert client.committees()
    url = f"{site.base_url}/mgConvert2PDF.aspx?ID=50012"
    assert client.download_pdf(url).body.startswith(b"%PDF-")
    assert [r.status for r in site.log] == [302, 200, 302, 200]


def test_a_redirect_to_another_host_is_refused_and_it_is_never_asked(site, other):
    elsewhere = other.base_url.replace("127.0.0.1", "localhost")
    site.quirks.redirects["GetCommittees"] = elsewhere + "/people/jane-doe?token=s3cret"
    with pytest.raises(SyncError) as refused:
        client_for(site).committees()
    message = str(refused.value)
    assert "redirect refused" in message and "another site" in message
    assert f"localhost:{other.base_url.rsplit(':', 1)[1]}" in message  # where, to allow-list it
    assert "jane" not in message and "s3cret" not in message  # nothing of the path or query
    assert other.log == []
    assert len(site.log) == 1  # a refusal is not retried


def test_another_port_on_the_same_host_is_another_site(site, other):
    site.quirks.redirects["GetCommittees"] = other.base_url + COMMITTEES_PATH
    with pytest.raises(SyncError, match="redirect refused: to another site"):
        client_for(site).committees()
    assert other.log == []


def test_an_allow_listed_host_is_followed(site, other):
    target = other.base_url.replace("127.0.0.1", "LocalHost") + COMMITTEES_PATH
    site.quirks.redirects["GetCommittees"] = target
    assert client_for(site, allowed_hosts=("localhost",)).committees()
    assert [r.path for r in other.log] == [COMMITTEES_PATH]


def test_settings_name_the_allowed_hosts(site, other):
    target = other.base_url.replace("127.0.0.1", "localhost") + COMMITTEES_PATH
    site.quirks.redirects["GetCommittees"] = target
    settings = Settings.from_env(
        {}, CLERK_USER_AGENT=UA, CLERK_SYNC_DELAY=0, CLERK_SYNC_ALLOWED_HOSTS="x.org, localhost"
    )
    assert settings.sync.allowed_hosts == ("x.org", "localhost")
    assert ModernGovClient.from_settings(settings.sync, site.base_url).committees()
    assert [r.path for r in other.log] == [COMMITTEES_PATH]


@pytest.mark.parametrize(
    "location, shown",
    [
        ("ftp://127.0.0.1:9/pub/report.pdf", "ftp"),
        ("file:///etc/passwd", "file"),
        ("data:text/html,<title>hello</title>", "data"),
        ("javascript:alert(1)", "javascript"),
    ],
)
def test_a_redirect_to_a_non_http_scheme_is_refused(site, location, shown):
    site.quirks.redirects["doc:50012"] = location
    with pytest.raises(SyncError, match=f"redirect refused: to a {shown}: address, not http") as e:
        client_for(site).download_pdf(f"{site.base_url}/mgConvert2PDF.aspx?ID=50012")
    assert not any(word in str(e.value) for word in ("passwd", "hello", "alert", "pub"))
    assert len(site.log) == 1


@pytest.fixture
def tls_site(tmp_path):
    cert, key = make_self_signed(tmp_path)
    with ModernGovServer(tls=(cert, key)) as server:
        context = ssl.create_default_context(cafile=str(cert))
        server.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        yield server


@pytest.mark.parametrize("allowed", [(), ("127.0.0.1",)])
def test_https_is_never_downgraded_to_http_even_to_an_allowed_host(tls_site, other, allowed):
    client = client_for(tls_site, opener=tls_site.opener, allowed_hosts=allowed)
    assert client.committees()  # the site itself answers over TLS
    tls_site.quirks.redirects["GetCommittees"] = other.base_url + COMMITTEES_PATH
    with pytest.raises(SyncError, match="redirect refused: from https to http"):
        client.committees()
    assert other.log == []


def test_a_redirect_loop_inside_the_site_ends(site):
    site.quirks.redirects["GetCommittees"] = "{{BASE}}/mgWebService.asmx/GetCommittees?again=1"
    with pytest.raises(SyncError, match="more than 5 redirects"):
        client_for(site).committees()
    assert len(site.log) == 6


@pytest.mark.parametrize(
    "source, target, allowed, refused",
    [
        ("https://mg.kent.gov.uk/a", "https://MG.Kent.gov.uk/b", (), None),
        ("https://mg.kent.gov.uk/a", "https://mg.kent.gov.uk:443/b", (), None),
        ("http://mg.kent.gov.uk/a", "https://mg.kent.gov.uk/b", (), None),  # an upgrade
        ("https://mg.kent.gov.uk/a", "http://mg.kent.gov.uk/b", (), "from https to http"),
        ("https://mg.kent.gov.uk/a", "https://mg.kent.gov.uk:8443/b", (), "another site"),
        ("https://mg.kent.gov.uk/a", "https://docs.kent.gov.uk/b", (), "another site"),
        ("https://mg.kent.gov.uk/a", "https://docs.kent.gov.uk/b", ("docs.kent.gov.uk",), None),
        ("https://mg.kent.gov.uk/a", "https://docs.kent.gov.uk:8443/b", ("docs.kent.gov.uk:443",),
         "another site"),
        ("https://mg.kent.gov.uk/a", "https://evil.example@mg.kent.gov.uk/b", (), "credentials"),
        ("https://mg.kent.gov.uk/a", "ftp://mg.kent.gov.uk/b", ("mg.kent.gov.uk",), "ftp:"),
        ("https://mg.kent.gov.uk/a", "//evil.example/b", (), "another site (evil.example)"),
    ],
)  # fmt: skip
def test_redirect_rules(source, target, allowed, refused):
    reason = redirect_refusal(source, target, "https://mg.kent.gov.uk", allowed)
    assert reason == refused if refused is None else refused in reason

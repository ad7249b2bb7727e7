"""Issue 14 in a real browser: the whale page's map draws its track (a line through its sightings in time order,
popups with date, place and photo) on the offline base layer; the upload form's map fills latitude and
longitude on a click, says so when a typed position is off the map, and shows the photo's EXIF GPS; the
sightings map clusters. Screenshots at 1280 and 390 px (``BROWSER_SHOTS`` keeps them)."""

import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from submissions.models import Photo
from tests.browser.conftest import login, upload_ready
from tests.factories import IndividualFactory, PhotoFactory, SpeciesFactory, UserFactory, jpeg_bytes
from tests.web.helpers import gallery_photo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRACK = [(64.1, -21.9, "Faxaflói"), (66.0, -17.3, "Skjálfandi"), (62.0, -7.0, "Faroe Islands"), (18.5, -66.0, "")]


def whale_with_track():
    whale = IndividualFactory(catalogue_id="HW-0031", nickname="Comet")
    now = timezone.now()
    for i, (lat, lon, place) in enumerate(TRACK):
        gallery_photo(
            whale,
            sighting__latitude=lat,
            sighting__longitude=lon,
            sighting__place_name=place,
            sighting__observer_name=("Ana Lima", "Bo Berg")[i % 2],
            sighting__observed_at=now - timedelta(days=400 - 100 * i),
            box_confidence=0.5 + i / 10,
        )
    return whale


def map_ready(page, selector):
    expect(page.locator(f"{selector}[data-ready=true]")).to_have_count(1, timeout=20_000)  # a busy CI machine
    expect(page.locator(f"{selector}[data-base-layer=offline]")).to_have_count(1, timeout=20_000)


def open_upload_map(page):
    """Open /submit/ once its scripts and map are ready; returns ``click(dx, dy)``, a click ``dx``/``dy`` pixels
    from the picker's centre (the map opens centred on 20°N 0°E)."""
    page.goto("/submit/")
    upload_ready(page)
    map_ready(page, "#picker-map")
    picker = page.locator("#picker-map")
    picker.scroll_into_view_if_needed()
    box = picker.bounding_box()
    return lambda dx=0, dy=0: picker.click(position={"x": box["width"] / 2 + dx, "y": box["height"] / 2 + dy})


def test_individual_page_map_shows_its_track(new_page, shots):
    whale = whale_with_track()
    page = new_page()
    page.goto(f"/individuals/{whale.catalogue_id}/")
    map_ready(page, "#track-map")
    track = page.locator("#track-map")
    assert track.get_attribute("data-track-points") == str(len(TRACK))
    expect(track.locator("path.track-line")).to_have_count(1)
    expect(track.locator("path.leaflet-interactive")).to_have_count(len(TRACK))  # the points; the line is not clickable
    # the line is drawn: its SVG path has a vertex per sighting ("M x y L x y L ...")
    d = track.locator("path.track-line").get_attribute("d")
    assert d.count("L") == len(TRACK) - 1, d
    expect(track.locator("path.leaflet-interactive").first).to_be_visible()
    expect(page.locator("meta[property='og:image']")).to_have_count(1)
    expect(page.locator(".timeline-photos figcaption").first).to_contain_text("Photo: Bo Berg")  # the newest first
    shots(page, "individual-1280")

    page.evaluate("document.getElementById('track-map').scrollIntoView()")
    # the second sighting in time order is the second point drawn
    track.locator("path.leaflet-interactive").nth(1).click(force=True)
    popup = page.locator(".leaflet-popup-content")
    expect(popup).to_contain_text("#2 ·")
    expect(popup).to_contain_text("Skjálfandi")
    expect(popup.locator("img.map-popup-photo")).to_have_count(1)
    popup.locator("img").evaluate("img => img.decode()")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/individuals/{whale.catalogue_id}/")
    map_ready(page, "#track-map")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots(page, "individual-390")


def gps_jpeg(lat=(33.0, 51.0, 54.0), lon=(151.0, 12.0, 36.0)) -> bytes:
    """A photo whose EXIF GPS says 33°51'54"S 151°12'36"E (Sydney Harbour)."""
    im = Image.open(io.BytesIO(jpeg_bytes((640, 400), seed=3)))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2019:08:14 16:42:07"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", lat, "E", lon
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_upload_map_click_fills_the_fields_and_shows_exif_gps(new_page, shots):
    SpeciesFactory()
    UserFactory(email="watcher@example.org", role="watcher")
    page = new_page()
    login(page, "watcher@example.org")
    click = open_upload_map(page)
    picker = page.locator("#picker-map")
    click()  # the map opens centred on 20°N 0°E: a click at its centre is there
    lat = float(page.locator("[name=latitude]").input_value())
    lon = float(page.locator("[name=longitude]").input_value())
    assert abs(lat - 20) < 2 and abs(lon) < 2, (lat, lon)
    expect(page.locator("#picker-status")).to_contain_text("Position set to")
    # a click further east gives a larger longitude
    click(60)
    assert float(page.locator("[name=longitude]").input_value()) > lon + 10

    page.locator("[name=latitude]").fill("95")
    page.locator("[name=latitude]").dispatch_event("change")
    expect(page.locator("#picker-status")).to_contain_text("Latitude 95 is off the map")
    shots(page, "upload-map-1280")

    page.locator("[name=latitude]").fill("")
    page.locator("[name=longitude]").fill("")
    page.locator("input[type=file][name=photos]").set_input_files(
        [{"name": "sydney.jpg", "mimeType": "image/jpeg", "buffer": gps_jpeg()}]
    )
    expect(picker).to_have_attribute("data-exif", "shown")
    expect(page.locator("[name=latitude]")).not_to_have_value("")
    assert float(page.locator("[name=latitude]").input_value()) == pytest.approx(-33.865, abs=0.001)
    assert float(page.locator("[name=longitude]").input_value()) == pytest.approx(151.21, abs=0.001)
    expect(page.locator("#picker-status")).to_contain_text("photo's GPS")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/submit/")
    map_ready(page, "#picker-map")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots(page, "upload-map-390")


def test_sightings_map_clusters_and_filters(new_page, shots):
    whale = whale_with_track()
    other = IndividualFactory(catalogue_id="HW-0032")
    for i in range(12):  # a dozen sightings in one bay cluster into one marker
        gallery_photo(other, sighting__latitude=65.0 + i / 100, sighting__longitude=-18.0, sighting__place_name="Bay")
    PhotoFactory(status=Photo.Status.AWAITING_REVIEW, sighting__latitude=-33.86, sighting__longitude=151.2)  # grey
    page = new_page()
    page.goto("/sightings/")
    map_ready(page, "#sightings-map")
    assert page.locator("#sightings-map").get_attribute("data-points") == str(len(TRACK) + 13)
    expect(page.locator("#sightings-map .marker-cluster").first).to_be_visible()
    shots(page, "sightings-1280")

    page.locator("[name=individual]").fill(whale.catalogue_id)
    page.get_by_role("button", name="Filter").click()
    map_ready(page, "#sightings-map")
    assert page.locator("#sightings-map").get_attribute("data-points") == str(len(TRACK))
    expect(page.locator("#map-status")).to_have_text(f"{len(TRACK)} sightings on the map.")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/sightings/")
    map_ready(page, "#sightings-map")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots(page, "sightings-390")


def test_sightings_map_of_many_draws_cells_with_their_counts(new_page, shots, settings):
    """Past ``MAP_POINT_LIMIT`` the map gets one feature per 0.1° cell: the clusters' numbers still add up to
    every sighting, zooming in splits them down to the cells, and a cell's popup links to the list narrowed to
    that cell, whose map has points again."""
    settings.MAP_POINT_LIMIT = 10  # 17 sightings: cells; one cell's 6: points
    whale_with_track()
    other = IndividualFactory(catalogue_id="HW-0032")
    for i in range(12):  # six in the cell 65.0 -18.0, six in 65.3 -18.0
        lat = 65.02 if i < 6 else 65.32
        gallery_photo(other, sighting__latitude=lat, sighting__longitude=-18.0, sighting__place_name="Bay")
    PhotoFactory(status=Photo.Status.AWAITING_REVIEW, sighting__latitude=-33.86, sighting__longitude=151.2)
    page = new_page()
    page.goto("/sightings/")
    map_ready(page, "#sightings-map")
    node = page.locator("#sightings-map")
    assert node.get_attribute("data-points") == str(len(TRACK) + 13)
    assert node.get_attribute("data-cells") == str(len(TRACK) + 2 + 1)  # the track's 4, the bay's 2, Sydney
    expect(page.locator("#map-status")).to_contain_text("17 sightings on the map, counted by area")
    node.scroll_into_view_if_needed()
    labels = node.locator(".marker-cluster span").all_inner_texts()
    assert sum(int(t) for t in labels) == 17, labels
    shots(page, "sightings-cells-1280")

    for _ in range(6):  # a cluster's click zooms to it: down to the bay's two cells of six
        labels = node.locator(".marker-cluster span").all_inner_texts()
        if labels.count("6") == 2:
            break
        biggest = max(labels, key=int)
        node.locator(".marker-cluster", has_text=re.compile(rf"^{biggest}$")).first.click()
        page.wait_for_timeout(800)  # the zoom animation
    assert labels.count("6") == 2, labels
    node.locator(".marker-cluster", has_text=re.compile(r"^6$")).first.click()
    popup = page.locator(".leaflet-popup-content")
    expect(popup).to_contain_text("6 sightings around here")
    expect(popup).to_contain_text("6 confirmed (1 whale)")
    popup.get_by_role("link", name="Show these sightings").click()
    page.wait_for_url(re.compile(r"lat_min=.*lon_max="))
    map_ready(page, "#sightings-map")
    assert node.get_attribute("data-points") == "6" and node.get_attribute("data-cells") == ""
    expect(page.locator("table.table tbody tr")).to_have_count(6)
    shots(page, "sightings-one-cell-1280")


def test_whale_page_timeline_pages_keep_the_whole_track(new_page, shots):
    """A whale seen 45 times: its track has every sighting, its timeline 20 a page with links between them."""
    whale = IndividualFactory(catalogue_id="HW-0045")
    now = timezone.now()
    for i in range(45):
        PhotoFactory(
            status=Photo.Status.CONFIRMED,
            individual=whale,
            sighting__species=whale.species,
            sighting__latitude=60 + i / 5,
            sighting__longitude=-20 + i / 5,
            sighting__place_name=f"Bay {i:02d}",
            sighting__observed_at=now - timedelta(days=i + 1),
        )
    page = new_page()
    page.goto(f"/individuals/{whale.catalogue_id}/")
    map_ready(page, "#track-map")
    assert page.locator("#track-map").get_attribute("data-track-points") == "45"
    expect(page.locator(".timeline-entry")).to_have_count(20)
    expect(page.locator("#timeline-range")).to_have_text("Sightings 1–20 of 45, newest first.")
    nav = page.get_by_role("navigation", name="Timeline pages")
    nav.get_by_role("link", name="Oldest sightings, page 3").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".timeline-entry")).to_have_count(5)
    assert page.url.endswith("?page=3#timeline")
    expect(page.locator(".timeline-entry").last).to_contain_text("Bay 44")
    nav.get_by_role("link", name="← Newer").click()
    expect(page.locator("#timeline-range")).to_have_text("Sightings 21–40 of 45, newest first.")
    map_ready(page, "#track-map")
    page.wait_for_timeout(500)  # the map's fit-to-track zoom animation
    shots(page, "whale-timeline-page-2-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    nav.scroll_into_view_if_needed()
    shots(page, "whale-timeline-page-2-390")

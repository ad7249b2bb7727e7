"""Research exports (identification.research) on a small known catalogue: the Darwin Core Archive
read back with python-dwca-reader, capture histories computed by hand, the sightings CSV, the page,
the management command and who may download."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from dwca.read import DwCAReader

from identification.models import Decision
from identification.research import capture_history, darwin_core
from identification.research.common import ExportOptions
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, SpeciesFactory, UserFactory

pytestmark = pytest.mark.django_db

DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
OBIS_REQUIRED = [
    "eventDate",
    "decimalLatitude",
    "decimalLongitude",
    "scientificName",
    "scientificNameID",
    "occurrenceStatus",
    "basisOfRecord",
]
LSID = "urn:lsid:marinespecies.org:taxname:137092"


def _when(y, m, d):
    return datetime(y, m, d, 10, 0, tzinfo=UTC)


@pytest.fixture
def catalogue():
    """Three whales over five sightings (by hand: A Dec 2024, Dec 2025, Jan 2026; B Dec 2025 (CC BY-NC),
    Feb 2026; C Jan 2026 (named new), Jun 2026), plus photos that must never be exported."""
    species = SpeciesFactory()
    watcher = UserFactory(email="ann@example.org", first_name="Ann", last_name="Watcher", role="watcher")
    moderator = UserFactory(email="maya@example.org", first_name="Maya", last_name="Moderator", role="moderator")
    a = IndividualFactory(species=species, catalogue_id="HW-0001", nickname="Moby")
    b = IndividualFactory(species=species, catalogue_id="HW-0002")
    c = IndividualFactory(species=species, catalogue_id="HW-0003")
    sightings = {
        key: SightingFactory(
            species=species,
            observed_at=_when(*day),
            latitude=-25.123456,
            longitude=152.987654,
            place_name="Hervey Bay",
            submitted_by=watcher,
            observer_name=observer,
        )
        for key, day, observer in [
            ("s5", (2024, 12, 20), ""),
            ("s1", (2025, 12, 10), ""),
            ("s2", (2026, 1, 5), "someone@example.org"),
            ("s3", (2026, 2, 20), ""),
            ("s4", (2026, 6, 15), "Jo Photographer"),
        ]
    }

    def photo(sighting, whale, licence="CC-BY", status=Photo.Status.CONFIRMED, confirm=True):
        p = PhotoFactory(sighting=sightings[sighting], individual=whale, licence=licence, status=status)
        if confirm:
            named_new = status == Photo.Status.NEW_INDIVIDUAL
            action = Decision.Action.NEW_INDIVIDUAL if named_new else Decision.Action.CONFIRM
            Decision.objects.create(photo=p, moderator=moderator, action=action, individual=whale)
        return p

    photos = {
        "a5": photo("s5", a),
        "a1": photo("s1", a),
        "a1_cc0": photo("s1", a, licence="CC0"),
        "b1_nc": photo("s1", b, licence="CC-BY-NC"),
        "a2": photo("s2", a),
        "c2": photo("s2", c, status=Photo.Status.NEW_INDIVIDUAL),
        "b3": photo("s3", b, licence="CC0"),
        "c4": photo("s4", c),
        # never exported: not confirmed, rejected
        "pending": photo("s3", None, status=Photo.Status.AWAITING_REVIEW, confirm=False),
        "pending_b": photo("s4", b, status=Photo.Status.AWAITING_REVIEW, confirm=False),
        "rejected": photo("s3", None, status=Photo.Status.REJECTED, confirm=False),
    }
    return {"photos": photos, "sightings": sightings, "a": a, "b": b, "c": c}


def _content(response) -> bytes:
    assert response.status_code == 200
    assert response.streaming, "exports must stream"
    return b"".join(response.streaming_content)


def _read_archive(tmp_path, data: bytes):
    path = tmp_path / "dwca.zip"
    path.write_bytes(data)
    with DwCAReader(str(path)) as archive:
        rows = [(dict(row.data), [dict(ext.data) for ext in row.extensions]) for row in archive]
        metadata = archive.metadata
    return rows, metadata


def _by_id(rows):
    return {core[DWC + "occurrenceID"]: (core, media) for core, media in rows}


def test_dwca_has_every_obis_field_and_only_confirmed_exportable_photos(client, moderator, catalogue, tmp_path):
    data = _content(client.get(reverse("identification:export_dwca")))
    rows, metadata = _read_archive(tmp_path, data)
    occ = _by_id(rows)
    s = catalogue["sightings"]
    assert sorted(occ) == sorted(
        [
            f"127.0.0.1:occ:{s['s5'].pk}-HW-0001",
            f"127.0.0.1:occ:{s['s1'].pk}-HW-0001",
            f"127.0.0.1:occ:{s['s2'].pk}-HW-0001",
            f"127.0.0.1:occ:{s['s2'].pk}-HW-0003",
            f"127.0.0.1:occ:{s['s3'].pk}-HW-0002",
            f"127.0.0.1:occ:{s['s4'].pk}-HW-0003",
        ]
    )  # B's CC BY-NC photo of s1 is not exportable by default
    for core, _ in occ.values():
        for term in OBIS_REQUIRED + ["organismID"]:
            assert core[DWC + term], term
        assert core[DWC + "basisOfRecord"] == "HumanObservation"
        assert core[DWC + "occurrenceStatus"] == "present"
        assert core[DWC + "scientificName"] == "Megaptera novaeangliae"
        assert core[DWC + "scientificNameID"] == LSID
        assert core[DWC + "identifiedBy"] == "Maya Moderator"
        assert core[DWC + "identificationVerificationStatus"] == "verified by expert"
        assert core[DWC + "organismID"] in {"HW-0001", "HW-0002", "HW-0003"}
    core, media = occ[f"127.0.0.1:occ:{s['s1'].pk}-HW-0001"]
    assert core[DWC + "organismName"] == "Moby"
    assert core[DWC + "eventDate"] == "2025-12-10T10:00:00+00:00"
    assert core[DWC + "recordedBy"] == "Ann Watcher" == core[DC + "rightsHolder"]
    assert core[DC + "license"] == "http://creativecommons.org/licenses/by/4.0/legalcode"  # CC BY and CC0: CC BY
    # a moderator sees coordinates at MODERATOR_COORDINATE_DECIMALS (3): the rounding's radius is 79 m
    assert (core[DWC + "decimalLatitude"], core[DWC + "decimalLongitude"]) == ("-25.123", "152.988")
    assert core[DWC + "coordinateUncertaintyInMeters"] == "79"
    photos = catalogue["photos"]
    urls = {f"http://127.0.0.1:8000{photos[k].image.url}" for k in ("a1", "a1_cc0")}
    assert {m[DC + "identifier"] for m in media} == urls
    assert set(core[DWC + "associatedMedia"].split(" | ")) == urls
    assert {(m[DC + "type"], m[DC + "format"], m[DC + "creator"]) for m in media} == {
        ("StillImage", "image/jpeg", "Ann Watcher")
    }
    assert {m[DC + "license"] for m in media} == {
        "http://creativecommons.org/licenses/by/4.0/legalcode",
        "http://creativecommons.org/publicdomain/zero/1.0/legalcode",
    }
    # an e-mail typed as the observer's name is dropped: the uploader's name stands in
    assert occ[f"127.0.0.1:occ:{s['s2'].pk}-HW-0001"][0][DWC + "recordedBy"] == "Ann Watcher"
    assert occ[f"127.0.0.1:occ:{s['s4'].pk}-HW-0003"][0][DWC + "recordedBy"] == "Jo Photographer"
    for key in ("b1_nc", "pending", "pending_b", "rejected"):
        assert photos[key].image.url.encode() not in data
    assert b"example.org" not in data
    assert "Whalesite humpback whale photo-identification catalogue" in metadata.find("dataset/title").text


@override_settings(EXPORT_NONCOMMERCIAL_PHOTOS=True)
def test_dwca_includes_noncommercial_photos_when_the_setting_allows(client, admin, catalogue, tmp_path):
    rows, _ = _read_archive(tmp_path, _content(client.get(reverse("identification:export_dwca"))))
    occ = _by_id(rows)
    core, media = occ[f"127.0.0.1:occ:{catalogue['sightings']['s1'].pk}-HW-0002"]
    assert core[DC + "license"] == "http://creativecommons.org/licenses/by-nc/4.0/legalcode"
    assert len(occ) == 7 and len(media) == 1
    # an administrator gets coordinates as recorded, with no invented uncertainty
    assert (core[DWC + "decimalLatitude"], core[DWC + "coordinateUncertaintyInMeters"]) == ("-25.123456", "")


def test_capture_history_by_month_is_exact(catalogue):
    options = ExportOptions()
    assert capture_history.occasions(options, "month") == ["2024-12", "2025-12", "2026-01", "2026-02", "2026-06"]
    inp = b"".join(capture_history.mark_inp_stream(options, "month")).decode()
    assert inp == "/* HW-0001 Moby */ 11100 1;\n/* HW-0002 */ 01010 1;\n/* HW-0003 */ 00101 1;\n"


def test_capture_history_by_day_csv(client, moderator, catalogue):
    text = _content(client.get(reverse("identification:export_capture"), {"occasion": "day", "format": "csv"}))
    assert text.decode() == (
        "catalogue_id,nickname,2024-12-20,2025-12-10,2026-01-05,2026-02-20,2026-06-15\n"
        "HW-0001,Moby,1,1,1,0,0\nHW-0002,,0,1,0,1,0\nHW-0003,,0,0,1,0,1\n"
    )


def test_capture_history_by_season(catalogue):
    """Dec-Mar seasons span New Year; June belongs to none. A non-wrapping season is one year."""
    options = ExportOptions()
    inp = b"".join(capture_history.mark_inp_stream(options, "season", [12, 1, 2, 3])).decode()
    assert capture_history.occasions(options, "season", [12, 1, 2, 3]) == ["2024/25", "2025/26"]
    assert inp == "/* HW-0001 Moby */ 11 1;\n/* HW-0002 */ 01 1;\n/* HW-0003 */ 01 1;\n"
    summer = b"".join(capture_history.mark_inp_stream(options, "season", [6, 7, 8])).decode()
    assert summer == "/* HW-0003 */ 1 1;\n"


def test_capture_history_respects_the_date_range(client, moderator, catalogue):
    text = _content(
        client.get(
            reverse("identification:export_capture"), {"occasion": "month", "start": "2025-12-01", "end": "2026-02-28"}
        )
    )
    assert text.decode() == "/* HW-0001 Moby */ 110 1;\n/* HW-0002 */ 101 1;\n/* HW-0003 */ 010 1;\n"


def test_sightings_csv_has_every_photo_with_photographer_and_whale(client, moderator, catalogue):
    data = _content(client.get(reverse("identification:export_sightings")))
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    photos = catalogue["photos"]
    assert sorted(int(r["photo_id"]) for r in rows) == sorted(p.pk for p in photos.values())
    by_photo = {int(r["photo_id"]): r for r in rows}
    a1 = by_photo[photos["a1"].pk]
    assert (a1["catalogue_id"], a1["nickname"], a1["species"], a1["photographer"], a1["submitted_by"]) == (
        "HW-0001",
        "Moby",
        "Humpback whale",
        "Ann Watcher",
        "Ann Watcher",
    )
    assert (a1["latitude"], a1["longitude"], a1["status"], a1["identified_by"]) == (
        "-25.123",
        "152.988",
        "confirmed",
        "Maya Moderator",
    )
    assert by_photo[photos["c4"].pk]["photographer"] == "Jo Photographer"
    assert by_photo[photos["rejected"].pk]["status"] == "rejected"
    assert by_photo[photos["rejected"].pk]["catalogue_id"] == ""
    assert by_photo[photos["b1_nc"].pk]["licence"] == "CC-BY-NC"
    assert b"example.org" not in data


def test_command_writes_the_same_capture_history_as_the_page(client, moderator, catalogue, tmp_path):
    out = tmp_path / "history.inp"
    call_command("export_research", "capture", "--out", str(out), "--occasion", "month", stdout=io.StringIO())
    page = _content(client.get(reverse("identification:export_capture"), {"occasion": "month"}))
    assert out.read_bytes() == page
    assert out.read_text().startswith("/* HW-0001 Moby */ 11100 1;")


def test_command_writes_a_readable_archive(catalogue, tmp_path):
    out = tmp_path / "dwca.zip"
    call_command("export_research", "dwca", "--out", str(out), "--species", "HW", stdout=io.StringIO())
    rows, _ = _read_archive(tmp_path, out.read_bytes())
    assert len(rows) == 6
    assert {core[DWC + "decimalLatitude"] for core, _ in rows} == {"-25.123456"}  # operator: as recorded


def test_research_page_links_every_export(client, moderator):
    body = client.get(reverse("identification:research_exports")).content.decode()
    for name in ("export_dwca", "export_capture", "export_sightings"):
        assert reverse(f"identification:{name}") in body


@pytest.mark.parametrize("name", ["research_exports", "export_dwca", "export_capture", "export_sightings"])
def test_watchers_are_refused(client, watcher, name):
    assert client.get(reverse(f"identification:{name}")).status_code == 403


def test_bad_options_are_a_clear_400(client, moderator):
    assert client.get(reverse("identification:export_capture"), {"occasion": "week"}).status_code == 400


@override_settings(DEFAULT_PHOTO_LICENCE="CC0")
def test_photo_licence_defaults_to_the_setting_and_the_form_offers_it(client, watcher):
    SpeciesFactory()
    assert PhotoFactory().licence == "CC0"
    body = client.get(reverse("submissions:submit")).content.decode()
    assert 'name="licence"' in body and "CC BY-NC" in body


def test_upload_saves_the_chosen_licence(client, watcher):
    from tests.factories import jpeg_bytes, upload

    species = SpeciesFactory()
    data = {
        "species": species.pk,
        "observed_date": "2024-07-01",
        "observed_time": "14:30",
        "latitude": "66.05",
        "longitude": "-17.35",
        "licence": "CC-BY-NC",
        "photos": [upload("a.jpg", jpeg_bytes(seed=7))],
    }
    assert client.post(reverse("submissions:submit"), data).status_code == 302
    assert list(Photo.objects.values_list("licence", flat=True)) == ["CC-BY-NC"]


def test_demo_catalogue_archive_reads_back_with_every_required_field(tmp_path):
    """The demo's gallery (``seed_demo.build_gallery``, species as seed_demo makes them) exports to an
    archive python-dwca-reader reads, each row with every field OBIS requires."""
    from identification.management.commands.seed_demo import build_gallery, seed_species

    seed_species()
    build_gallery(tmp_path / "synth", individuals=3, photos=2, seed=0, user=UserFactory(email="demo@example.org"))
    out = tmp_path / "demo-dwca.zip"
    call_command("export_research", "dwca", "--out", str(out), stdout=io.StringIO())
    rows, _ = _read_archive(tmp_path, out.read_bytes())
    assert len(rows) == Photo.objects.in_gallery().count() == 6  # one photo per sighting in the demo
    for core, media in rows:
        assert all(core[DWC + term] for term in OBIS_REQUIRED + ["organismID", "recordedBy"])
        assert core[DWC + "recordedBy"] == "Demo data" and len(media) == 1


def test_sightings_csv_streams_in_pieces():
    """1,200 photos come out in several chunks (500 rows each), not as one document."""
    from identification.research import sightings_csv

    sighting = SightingFactory(latitude=1.5, longitude=2.5)
    Photo.objects.bulk_create(
        Photo(sighting=sighting, image=f"photos/bulk/{n}.jpg", width=320, height=200, sha256=f"{n:064x}", licence="CC0")
        for n in range(1200)
    )
    chunks = list(sightings_csv.csv_stream(ExportOptions()))
    assert len(chunks) == 3
    assert max(len(c) for c in chunks) < sum(len(c) for c in chunks) / 2
    assert b"".join(chunks).count(b"\n") == 1201


def test_migration_fills_the_worms_lsid_of_existing_humpbacks():
    import importlib

    from django.apps import apps

    from identification.models import Species

    migration = importlib.import_module("identification.migrations.0008_species_scientific_name_id")
    humpback = Species.objects.create(code="HX", common_name="Humpback", scientific_name="Megaptera novaeangliae")
    other = Species.objects.create(code="SW", common_name="Sperm whale", scientific_name="Physeter macrocephalus")
    migration.fill_lsids(apps, None)
    humpback.refresh_from_db()
    other.refresh_from_db()
    assert (humpback.scientific_name_id, other.scientific_name_id) == (LSID, "")


def test_nav_links_the_research_page(client, admin):
    page = reverse("identification:research_exports")
    assert page in client.get(reverse("identification:review_queue")).content.decode()
    assert page in client.get(reverse("identification:training_data")).content.decode()


def _fluke_and_fin(moderator):
    """One sighting filed as a humpback holding a confirmed humpback fluke (HW-0001) and a confirmed dolphin's
    fin (TT-0001). Returns (dolphin species, fluke photo, fin photo)."""
    humpback = SpeciesFactory()
    dolphin = SpeciesFactory(
        code="TT",
        common_name="Bottlenose dolphin",
        scientific_name="Tursiops truncatus",
        scientific_name_id="urn:lsid:marinespecies.org:taxname:137111",
        profile="dolphin_fin",
    )
    sighting = SightingFactory(species=humpback, observed_at=_when(2026, 3, 1), latitude=-25.1, longitude=152.9)
    whale = IndividualFactory(species=humpback, catalogue_id="HW-0001")
    fin = IndividualFactory(species=dolphin, catalogue_id="TT-0001")
    fluke_photo = PhotoFactory(sighting=sighting, individual=whale, status=Photo.Status.CONFIRMED, licence="CC0")
    fin_photo = PhotoFactory(
        sighting=sighting, species=dolphin, individual=fin, status=Photo.Status.CONFIRMED, licence="CC0"
    )
    for photo, individual in ((fluke_photo, whale), (fin_photo, fin)):
        Decision.objects.create(photo=photo, moderator=moderator, action=Decision.Action.CONFIRM, individual=individual)

    return dolphin, fluke_photo, fin_photo


def test_a_sighting_with_a_fluke_and_a_fin_gives_two_occurrences_each_with_its_own_species(client, moderator, tmp_path):
    """Issue 16: each occurrence carries its own whale's species, never the sighting's: one sighting filed as a
    humpback holds a humpback fluke and a dolphin's fin, and the archive says so (the sightings CSV too, and the
    species filter keeps only that species' photos)."""
    dolphin, fluke_photo, fin_photo = _fluke_and_fin(moderator)
    rows, _ = _read_archive(tmp_path, _content(client.get(reverse("identification:export_dwca"))))
    occ = _by_id(rows)
    names = {
        core[DWC + "organismID"]: (
            core[DWC + "scientificName"],
            core[DWC + "scientificNameID"],
            core[DWC + "vernacularName"],
        )
        for core, _ in occ.values()
    }
    assert names == {
        "HW-0001": ("Megaptera novaeangliae", LSID, "Humpback whale"),
        "TT-0001": ("Tursiops truncatus", "urn:lsid:marinespecies.org:taxname:137111", "Bottlenose dolphin"),
    }

    csv_rows = list(
        csv.DictReader(io.StringIO(_content(client.get(reverse("identification:export_sightings"))).decode()))
    )
    assert {int(r["photo_id"]): r["scientific_name"] for r in csv_rows} == {
        fluke_photo.pk: "Megaptera novaeangliae",
        fin_photo.pk: "Tursiops truncatus",
    }
    only_dolphins = list(darwin_core.occurrences(ExportOptions(start=None, end=None, species=dolphin, decimals=None)))
    assert [row["organismID"] for row, _ in only_dolphins] == ["TT-0001"]


def test_a_capture_history_is_of_one_species(client, moderator, tmp_path):
    """Issue 16: humpbacks and dolphins are two populations. "All species" over a catalogue of both is a clear
    400 naming them (and a command error); choosing a species gives that species' whales only."""
    dolphin, _, _ = _fluke_and_fin(moderator)
    url = reverse("identification:export_capture")
    refused = client.get(url, {"occasion": "month"})
    assert refused.status_code == 400 and "choose a species (HW, TT" in refused.content.decode()
    dolphins = _content(client.get(url, {"occasion": "month", "species": dolphin.pk})).decode()
    assert dolphins == "/* TT-0001 */ 1 1;\n"
    with pytest.raises(CommandError, match="Use --species"):
        call_command("export_research", "capture", "--out", str(tmp_path / "c.inp"))
    call_command("export_research", "capture", "--species", "TT", "--out", str(tmp_path / "c.inp"))
    assert (tmp_path / "c.inp").read_text() == dolphins

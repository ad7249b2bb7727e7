"""Issue 13: every kind in the bad-input corpus (``corpus.KINDS``), alone and beside a good photo, through the
real upload form (test client, the real view, PostgreSQL, the real storage and the real broker on commit).

For every case: no 500; the watcher reads a message that names the problem (and the file); a good photo
beside a bad one is saved and queued; storage holds exactly the files of the photos saved (nothing left
behind, nothing missing); a form error saves nothing half-way and says which photos to choose again."""

from __future__ import annotations

import html
import os

import pytest
from django.urls import reverse

from submissions.models import Photo, Sighting
from tests.factories import SpeciesFactory, sighting_form, upload

from .corpus import KINDS, Kind, good_photo

pytestmark = pytest.mark.django_db(transaction=True)  # the upload commits and queues, as in production


def modes(kind: Kind) -> tuple[str, ...]:
    """A kind made of form values only has no "alone" with files; for a form error, alone = no photo at all."""
    if kind.files is list and kind.expect != "form":
        return ("with_good",)
    return ("alone", "with_good")


CASES = [pytest.param(kind, mode, id=f"{kind.name}-{mode}") for kind in KINDS for mode in modes(kind)]


def shown_name(name: str) -> str:
    """The name Django's multipart parser gives the upload (path parts and unprintable characters dropped)."""
    name = "".join(c for c in name.rsplit("/")[-1].rsplit("\\")[-1] if c.isprintable())
    if len(name) > 255:  # cut to 255 keeping the extension, as UploadedFile does
        stem, ext = os.path.splitext(name)
        name = stem[: 255 - len(ext)] + ext
    return name


def stored(media_root) -> set[str]:
    return {str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file()}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.parametrize("kind,mode", CASES)
def test_bad_input_is_named_and_loses_nothing(kind, mode, client, settings, media_root):
    from tests.factories import UserFactory

    client.force_login(UserFactory(email="watcher@example.org", role="watcher"))
    for name, value in kind.settings.items():
        setattr(settings, name, value)
    species = SpeciesFactory()
    files = [upload(*f) for f in kind.files()]
    good = [upload(*good_photo())] if mode == "with_good" else []
    data = sighting_form(species, **kind.fields, photos=good + files)
    before = stored(media_root)

    response = client.post(reverse("submissions:submit"), data, follow=True)

    assert response.status_code != 500
    page = html.unescape(response.content.decode())
    photos = list(Photo.objects.all())
    assert stored(media_root) - before == {p.image.name for p in photos}, "storage holds a file no photo owns"
    CHECKS[kind.expect](kind, mode, response, page, photos)


def _saved_and_queued(photos, names):
    assert sorted(p.original_filename for p in photos) == sorted(names)
    for photo in photos:
        assert photo.status == Photo.Status.UPLOADED and photo.queued_at is not None, photo.original_filename
    assert Sighting.objects.count() == 1


def check_refused(kind, mode, response, page, photos):
    (name, _, _) = kind.files()[0]
    shown = shown_name(name)
    if mode == "alone":
        assert response.status_code == 200 and response.redirect_chain == []
        assert "None of the photos could be added" in page
        assert shown in page and kind.needle in page
        assert photos == [] and not Sighting.objects.exists()
        return
    assert response.redirect_chain[-1][0] == reverse("submissions:my_sightings")
    said = messages_of(response)
    assert "Thank you! 1 photo received and queued for identification." in said
    assert any(m.startswith(f"{shown}: ") and kind.needle in m for m in said), said
    _saved_and_queued(photos, [good_photo()[0]])


def check_accepted(kind, mode, response, page, photos):
    sent = [shown_name(name) for name, _, _ in kind.files()][: kind.saved]
    if mode == "with_good" or not sent:
        sent.append(good_photo()[0])
    assert response.redirect_chain[-1][0] == reverse("submissions:my_sightings"), page[:3000]
    said = messages_of(response)
    n = len(sent)
    assert f"Thank you! {n} photo{'s' if n != 1 else ''} received and queued for identification." in said, said
    assert not any(m for m in said if "not an image" in m or "damaged" in m)
    if kind.needle:
        assert any(kind.needle in m for m in said), said
    _saved_and_queued(photos, sent)
    if kind.size:
        (photo,) = [p for p in photos if p.original_filename != good_photo()[0]]
        assert (photo.width, photo.height) == kind.size


def check_form(kind, mode, response, page, photos):
    assert response.status_code == 200 and response.redirect_chain == []
    form = response.context["form"]
    assert any(kind.needle in e for e in form.errors.get(kind.field, [])), form.errors
    assert kind.needle in page
    assert photos == [] and not Sighting.objects.exists()
    sent = len(kind.files()) + (mode == "with_good")
    if sent:  # the page says the photos were not uploaded, and keeps what was typed
        assert f"Your {sent} photo" in page and "Please choose the photo" in page
    else:
        assert "Add at least one photo" in page
    if kind.field != "place_name":
        assert 'value="Skjálfandi"' in page


def check_too_big(kind, mode, response, page, photos):
    assert response.status_code == 413
    assert kind.needle in page and "Nothing was saved" in page
    assert photos == [] and not Sighting.objects.exists()


CHECKS = {"refused": check_refused, "accepted": check_accepted, "form": check_form, "too_big": check_too_big}


def test_the_corpus_has_every_kind_the_issue_tried():
    """Issue 13 tried 45 kinds of bad input; the corpus keeps at least those, each with a distinct name."""
    names = [k.name for k in KINDS]
    assert len(names) == len(set(names)) and len(names) >= 45
    assert all(k.expect in CHECKS for k in KINDS)

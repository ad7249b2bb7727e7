"""A person's own data, to take away (``export``) or to erase (``delete_account``). The photos they gave
the catalogue either stay, credited to "former contributor", or go with the account, as they choose."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from identification.models import Decision
from submissions.models import Photo, Sighting

from .models import FORMER_CONTRIBUTOR, Profile


def export(user) -> dict:
    """Everything the site keeps about ``user``, as JSON-ready data (no password hash, no internal keys
    of other people)."""
    profile = Profile.objects.filter(user=user).first()
    sightings = (
        Sighting.objects.filter(submitted_by=user).select_related("species").prefetch_related("photos__individual")
    )
    return {
        "exported_at": timezone.now().isoformat(),
        "account": {
            "email": user.email,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
            "roles": sorted(user.groups.values_list("name", flat=True)),
            "display_name": profile.display_name if profile else "",
            "credit_line": profile.credit_line if profile else "",
        },
        "sightings": [_sighting(s) for s in sightings],
        "decisions": [_decision(d) for d in Decision.objects.filter(moderator=user).select_related("individual")],
    }


def _sighting(s: Sighting) -> dict:
    return {
        "id": s.pk,
        "observed_at": s.observed_at.isoformat(),
        "species": s.species.common_name,
        "latitude": s.latitude,
        "longitude": s.longitude,
        "place_name": s.place_name,
        "observer_name": s.observer_name,
        "notes": s.notes,
        "submitted_at": s.created_at.isoformat(),
        "photos": [
            {
                "id": p.pk,
                "original_filename": p.original_filename,
                "licence": p.licence,
                "status": p.status,
                "sha256": p.sha256,
                "whale": p.individual.catalogue_id if p.individual else None,
            }
            for p in s.photos.all()
        ],
    }


def _decision(d: Decision) -> dict:
    return {
        "photo_id": d.photo_id,
        "action": d.action,
        "individual": d.individual.catalogue_id if d.individual else None,
        "reject_reason": d.reject_reason,
        "created_at": d.created_at.isoformat(),
        "undone_at": d.undone_at.isoformat() if d.undone_at else None,
    }


def delete_account(user, *, remove_photos: bool) -> int:
    """Delete ``user``. Their sightings stay, credited to "former contributor", or are deleted with their
    photos (files removed once the transaction commits). Decisions they made as a moderator stay, with no
    name (the audit log keeps what was decided, not by whom). Returns the number of photos removed."""
    with transaction.atomic():
        sightings = Sighting.objects.filter(submitted_by=user)
        removed = 0
        if remove_photos:
            photos = list(Photo.objects.filter(sighting__in=sightings))
            names = [f.name for p in photos for f in (p.image, p.crop) if f]
            removed = len(photos)
            sightings.delete()
            transaction.on_commit(lambda: _delete_files(names))
        else:
            sightings.update(observer_name=FORMER_CONTRIBUTOR, submitted_by=None)
        user.delete()
    return removed


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        default_storage.delete(name)

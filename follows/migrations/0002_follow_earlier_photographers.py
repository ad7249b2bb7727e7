"""Watchers whose photos are in the catalogue already follow those whales: before follows existed they
were told when their whale was seen again, and they keep hearing (they may unfollow)."""

from django.db import migrations

GALLERY_STATUSES = ("confirmed", "new_individual")  # submissions.Photo.GALLERY_STATUSES, frozen here


def follow_photographed_whales(apps, schema_editor):
    Photo = apps.get_model("submissions", "Photo")
    Individual = apps.get_model("identification", "Individual")
    Follow = apps.get_model("follows", "Follow")
    merged = dict(Individual.objects.filter(merged_into__isnull=False).values_list("pk", "merged_into_id"))
    pairs = set()
    rows = (
        Photo.objects.filter(status__in=GALLERY_STATUSES, individual__isnull=False, sighting__submitted_by__isnull=False)
        .values_list("sighting__submitted_by_id", "individual_id")
        .distinct()
    )
    for user_id, individual_id in rows.iterator():
        seen = set()
        while individual_id in merged and individual_id not in seen:
            seen.add(individual_id)
            individual_id = merged[individual_id]
        pairs.add((user_id, individual_id))
    Follow.objects.bulk_create(
        [Follow(user_id=u, individual_id=i, automatic=True) for u, i in sorted(pairs)], ignore_conflicts=True
    )


class Migration(migrations.Migration):
    dependencies = [
        ("follows", "0001_follow_and_notification"),
        ("submissions", "0005_photo_licence"),
    ]

    operations = [migrations.RunPython(follow_photographed_whales, migrations.RunPython.noop)]

"""``python manage.py train_species_classifier``: retrain the upload form's species classifier from the
confirmed photos of every species with a profile (``identification.training.species_classifier``)."""

import time

from django.core.management.base import BaseCommand, CommandError

from identification.training.species_classifier import PER_PROFILE, NotEnoughPhotos, train_from_catalogue


class Command(BaseCommand):
    help = "Retrain the species classifier that suggests each uploaded photo's species, from the catalogue."

    def add_arguments(self, parser):
        parser.add_argument("--features", choices=["efficientnet_lite0", "thumbnail"], default="efficientnet_lite0")
        parser.add_argument("--per-profile", type=int, default=PER_PROFILE, help="photos per species at most")
        parser.add_argument(
            "--min-photos", type=int, default=None, help="leave out species with fewer (SPECIES_CLASSIFIER_MIN_PHOTOS)"
        )

    def handle(self, *args, features, per_profile, min_photos, **options):
        t0 = time.monotonic()
        try:
            report = train_from_catalogue(features, per_profile, min_photos)
        except NotEnoughPhotos as exc:
            raise CommandError(str(exc)) from exc
        counts = ", ".join(f"{k} {n}" for k, n in report.photos.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Species classifier in {report.out_dir}: {counts} photos, training accuracy "
                f"{report.train_accuracy:.3f} ({time.monotonic() - t0:.0f} s)."
            )
        )

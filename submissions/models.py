"""Sightings and the photos watchers upload with them.

A photo's ``status`` is its place in the pipeline; the QuerySet methods and ``Photo``'s status
groups name each state so that views and tasks never spell out raw filters.

Dependencies: this app's code imports ``identification`` only to queue the pipeline
(``identification.jobs``). Its models point at identification's (by string) where the data is a
photo's own: the species of a sighting, and the whale and model version a photo was matched with.
Moving those fields onto identification's side would mean a second row per photo, joined on every
review and gallery query, and a migration of both apps for no reader's gain.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.utils import timezone


def photo_upload_to(instance: "Photo", filename: str) -> str:
    """Unguessable storage names; the original name is kept in ``original_filename``."""
    ext = (filename.rsplit(".", 1)[-1] if "." in filename else "jpg").lower()[:5]
    return f"photos/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.{ext}"


def crop_upload_to(instance: "Photo", filename: str) -> str:
    return f"crops/{uuid.uuid4().hex}.png"


def _sees_everything(user) -> bool:
    from identification.permissions import is_moderator

    return user is not None and is_moderator(user)


class SightingQuerySet(models.QuerySet):
    def public(self):
        """Sightings with a photo in the gallery: the ones everyone may see (``/sightings/``)."""
        return self.filter(pk__in=Photo.objects.in_gallery().values("sighting_id"))

    def visible_to(self, user):
        """Moderators and admins see every sighting; a watcher the public ones and their own."""
        if _sees_everything(user):
            return self
        if user is not None and user.is_authenticated:
            return self.filter(Q(pk__in=Photo.objects.in_gallery().values("sighting_id")) | Q(submitted_by=user))
        return self.public()


class Sighting(models.Model):
    species = models.ForeignKey("identification.Species", on_delete=models.PROTECT, related_name="sightings")
    observed_at = models.DateTimeField()
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    place_name = models.CharField(max_length=200, blank=True)
    observer_name = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="sightings"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SightingQuerySet.as_manager()

    class Meta:
        ordering = ["-observed_at"]
        # the public sightings list is newest first: at 100k sightings a sort of the whole table per page
        indexes = [models.Index(fields=["-observed_at"], name="sighting_observed_desc")]

    def __str__(self) -> str:
        return f"Sighting {self.pk} on {self.observed_at:%Y-%m-%d}"


class Licence(models.TextChoices):
    """The licences a photographer may give their photos; the research exports read them."""

    CC0 = "CC0", "CC0 (public domain)"
    CC_BY = "CC-BY", "CC BY 4.0 (credit the photographer)"
    CC_BY_NC = "CC-BY-NC", "CC BY-NC 4.0 (credit, non-commercial only)"


def default_licence() -> str:
    """``DEFAULT_PHOTO_LICENCE`` from the settings: the licence a photo gets when none is chosen."""
    return settings.DEFAULT_PHOTO_LICENCE


class PhotoQuerySet(models.QuerySet):
    def pending(self):
        """Uploaded or being processed: the pipeline has not finished with them."""
        return self.filter(status__in=Photo.PENDING_STATUSES)

    def awaiting_review(self):
        return self.filter(status=Photo.Status.AWAITING_REVIEW)

    def with_rematching(self):
        """Annotate ``rematching``: awaiting review but without an embedding, i.e. a moderator fixed
        the box and the worker is cropping and ranking it again, so the crop and suggestions on file
        are about to change. A photo no model matched (unknown species, or none for its species yet) has no
        version and is not being re-matched. Read in the same query as the crop, so the two always agree."""
        embeddings = self.model._meta.get_field("embeddings").related_model.objects.filter(photo=OuterRef("pk"))
        return self.annotate(
            rematching=ExpressionWrapper(
                Q(status=Photo.Status.AWAITING_REVIEW, model_version__isnull=False) & ~Exists(embeddings),
                output_field=models.BooleanField(),
            )
        )

    def with_familiarity(self):
        """Annotate ``out_of_distribution`` and ``ood_score`` from the embedding of the photo's own model version
        (``ml.ood``; None when that version has no detector): the review page and the photo's detail say in
        words when the photo looks unlike the photos the model was trained on, so its scores are less reliable."""
        embeddings = self.model._meta.get_field("embeddings").related_model.objects.filter(
            photo=OuterRef("pk"), model_version=OuterRef("model_version")
        )
        return self.annotate(
            out_of_distribution=Subquery(embeddings.values("out_of_distribution")[:1]),
            ood_score=Subquery(embeddings.values("ood_score")[:1]),
        )

    def being_rematched(self):
        return self.with_rematching().filter(rematching=True)

    def newest_per_individual(self):
        """Each whale's most recently decided photo among these, once: the home page's "recent" tiles
        were eight photos of one whale decided photo by photo."""
        newest = (
            self.filter(individual=OuterRef("individual"))
            .order_by(F("decided_at").desc(nulls_last=True), "-pk")
            .values("pk")[:1]
        )
        return self.filter(individual__isnull=False, pk=Subquery(newest))

    def in_gallery(self):
        """Photos assigned to an individual: they are matched against every new upload."""
        return self.filter(status__in=Photo.GALLERY_STATUSES, individual__isnull=False)

    def in_catalogue_of(self, species):
        """Gallery photos of ``species``' individuals: the only ones its model ranks a photo against (each species
        has its own gallery). ``species`` None (a model version from before species profiles): all of them."""
        gallery = self.in_gallery()
        return gallery if species is None else gallery.filter(individual__species=species)

    def failed(self):
        return self.filter(status=Photo.Status.FAILED)

    def unqueued(self, older_than: timedelta = timedelta(seconds=10)):
        """Uploaded, but the broker never took its message (it was down): to be sent again. Only rows
        older than ``older_than``, so a send in flight right after the commit is not doubled."""
        cutoff = timezone.now() - older_than
        return self.filter(status=Photo.Status.UPLOADED, queued_at__isnull=True, created_at__lt=cutoff)

    def stuck(self, older_than: timedelta = timedelta(minutes=30)):
        """Queued or processing for too long (the message was lost), or processing under a lease its worker
        stopped renewing (the worker was killed: ``identification.pipeline.process``)."""
        now = timezone.now()
        lapsed = models.Q(status=Photo.Status.PROCESSING, lease_until__lt=now)
        return self.pending().filter(models.Q(updated_at__lt=now - older_than) | lapsed)

    def disputed(self):
        """Awaiting review, but moderators disagreed: an administrator decides."""
        return self.filter(status=Photo.Status.AWAITING_REVIEW, needs_admin=True)

    def with_corrected_boxes(self):
        """Photos whose crop box a moderator drew: training data for the localizer."""
        return self.filter(box_source=Photo.BoxSource.MODERATOR, box_x0__isnull=False)

    def observed_between(self, start=None, end=None):
        qs = self
        if start:
            qs = qs.filter(sighting__observed_at__date__gte=start)
        if end:
            qs = qs.filter(sighting__observed_at__date__lte=end)
        return qs

    def in_region(self, place="", lat_min=None, lat_max=None, lon_min=None, lon_max=None):
        """Place name contains ``place`` and/or the sighting lies in the lat/lon box (bounds optional)."""
        qs = self
        if place:
            qs = qs.filter(sighting__place_name__icontains=place)
        for field, lookup, value in (
            ("latitude", "gte", lat_min),
            ("latitude", "lte", lat_max),
            ("longitude", "gte", lon_min),
            ("longitude", "lte", lon_max),
        ):
            if value is not None:
                qs = qs.filter(**{f"sighting__{field}__{lookup}": value})
        return qs

    def visible_to(self, user):
        """Moderators and admins see every photo; others the gallery's and (signed in) their own."""
        if _sees_everything(user):
            return self
        if user is not None and user.is_authenticated:
            return self.filter(
                Q(status__in=Photo.GALLERY_STATUSES, individual__isnull=False) | Q(sighting__submitted_by=user)
            )
        return self.in_gallery()

    def unclaimed_or_claimed_by(self, user, ttl: timedelta = timedelta(minutes=15)):
        cutoff = timezone.now() - ttl
        return self.filter(
            models.Q(claimed_by__isnull=True) | models.Q(claimed_by=user) | models.Q(claimed_at__lt=cutoff)
        )


class Photo(models.Model):
    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        PROCESSING = "processing", "Processing"
        AWAITING_REVIEW = "awaiting_review", "Awaiting review"
        CONFIRMED = "confirmed", "Confirmed"
        NEW_INDIVIDUAL = "new_individual", "New individual"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    class BoxSource(models.TextChoices):
        LOCALIZER = "localizer", "Localizer"
        DEFAULT = "default", "Default (no localizer)"
        MODERATOR = "moderator", "Corrected by a moderator"
        GIVEN = "given", "Given with the photo"

    # the status groups, named once: in the gallery (matched against every upload), and not processed yet
    GALLERY_STATUSES = (Status.CONFIRMED, Status.NEW_INDIVIDUAL)
    PENDING_STATUSES = (Status.UPLOADED, Status.PROCESSING)

    sighting = models.ForeignKey(Sighting, on_delete=models.CASCADE, related_name="photos")
    # The species this photo is identified within (its profile's gallery and model): chosen per photo by the
    # watcher (prefilled from the species classifier) and correctable at review, so one sighting can hold a
    # fluke and a fin. Null: unknown species, which goes to review and is never matched.
    species = models.ForeignKey(
        "identification.Species", on_delete=models.PROTECT, null=True, blank=True, related_name="photos"
    )
    # what the species classifier (ml.species) said, kept beside the choice so review can show both
    suggested_species = models.ForeignKey(
        "identification.Species", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    species_confidence = models.FloatField(null=True, blank=True)
    image = models.ImageField(upload_to=photo_upload_to, width_field="width", height_field="height")
    crop = models.ImageField(upload_to=crop_upload_to, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    licence = models.CharField(max_length=10, choices=Licence.choices, default=default_licence)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    phash = models.CharField(max_length=16, blank=True, db_index=True)
    duplicate_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="duplicates"
    )

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)

    box_x0 = models.FloatField(null=True, blank=True)
    box_y0 = models.FloatField(null=True, blank=True)
    box_x1 = models.FloatField(null=True, blank=True)
    box_y1 = models.FloatField(null=True, blank=True)
    box_source = models.CharField(max_length=20, choices=BoxSource.choices, blank=True)
    box_confidence = models.FloatField(null=True, blank=True)
    box_flagged = models.BooleanField(default=False)
    upside_down = models.BooleanField(default=False)
    batch_matches = models.JSONField(
        default=list,
        blank=True,
        help_text="Similarity to other photos of the same sighting or bulk import: [{photo_id, score}]",
    )
    bulk_import = models.ForeignKey(
        "BulkImport", on_delete=models.SET_NULL, null=True, blank=True, related_name="photos", editable=False
    )

    # identification state kept on the photo (see the module docstring): the whale, the version that ranked it
    individual = models.ForeignKey(
        "identification.Individual", on_delete=models.SET_NULL, null=True, blank=True, related_name="photos"
    )
    reject_reason = models.CharField(max_length=40, blank=True)
    model_version = models.ForeignKey(
        "identification.ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    needs_admin = models.BooleanField(
        default=False, db_index=True, help_text="Moderators disagreed (consensus review): an administrator decides"
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When the broker took its processing message")
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="Renewed by the processing worker; lapses soon after a kill"
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = PhotoQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]
        permissions = [("review_photo", "Can review photos and decide matches")]

    def __str__(self) -> str:
        return f"Photo {self.pk} ({self.get_status_display()})"

    @property
    def box(self):
        """The stored box as an ``ml.types.Box``, or None."""
        if self.box_x0 is None:
            return None
        from ml.types import Box

        return Box(self.box_x0, self.box_y0, self.box_x1, self.box_y1)

    def set_box(self, box, source: str, confidence: float | None = None, flagged: bool = False) -> None:
        self.box_x0, self.box_y0, self.box_x1, self.box_y1 = box.x0, box.y0, box.x1, box.y1
        self.box_source = source
        self.box_confidence = confidence
        self.box_flagged = flagged


def import_upload_to(instance: "BulkImport", filename: str) -> str:
    return f"imports/{uuid.uuid4().hex}.zip"


class BulkImport(models.Model):
    """A sheet of rows plus a ZIP of their photos (``submissions.imports``). Checked in full when it is
    uploaded (``CHECKED``: nothing but this row and its rows written), then run on Celery in chunks."""

    class Status(models.TextChoices):
        CHECKED = "checked", "Checked, waiting to start"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    sheet_name = models.CharField(max_length=255)
    archive = models.FileField(upload_to=import_upload_to)
    archive_name = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CHECKED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True, help_text="When the worker last finished a row")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.sheet_name})"


class ImportRowQuerySet(models.QuerySet):
    def to_import(self):
        """Valid rows the worker has not finished: what a (re-delivered) chunk still has to do."""
        return self.filter(status=ImportRow.Status.VALID)

    def finished(self):
        return self.filter(status__in=ImportRow.FINISHED_STATUSES)


class ImportRow(models.Model):
    """One row of the sheet with its own state, so that a chunk delivered again skips the rows done."""

    class Status(models.TextChoices):
        INVALID = "invalid", "Not valid"
        VALID = "valid", "Valid"
        SKIPPED = "skipped", "Not imported"
        IMPORTED = "imported", "Imported"
        DUPLICATE = "duplicate", "Duplicate of a photo held"
        FAILED = "failed", "Photo refused"

    FINISHED_STATUSES = (Status.IMPORTED, Status.DUPLICATE, Status.FAILED)

    bulk_import = models.ForeignKey(BulkImport, on_delete=models.CASCADE, related_name="rows")
    number = models.PositiveIntegerField(help_text="The row's line in the sheet (the header is line 1)")
    values = models.JSONField(default=dict, help_text="The cleaned values (ISO date, species id, ...)")
    raw = models.JSONField(default=dict, help_text="The cells as read, shown beside an error")
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    errors = models.JSONField(default=list)
    photo = models.ForeignKey(Photo, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ImportRowQuerySet.as_manager()

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["bulk_import", "number"], name="one_row_per_line")]

"""The catalogue (species, individuals), the model's suggestions, moderators' decisions,
training data, model versions and training runs."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from ml.metrics import DEFAULT_NEW_THRESHOLD  # the new-whale threshold before a run tunes one
from ml.profiles import PROFILES

PROFILE_CHOICES = [(key, profile.label) for key, profile in PROFILES.items()]


class SpeciesQuerySet(models.QuerySet):
    def identifiable(self):
        """Species with a profile: their photos are matched within their own catalogue."""
        return self.exclude(profile="")


class Species(models.Model):
    """A species and the body part it is identified by (``profile``, an ``ml.profiles`` key). Each species with a
    profile has its own catalogue, gallery and model; photos are only ever matched within their species."""

    HUMPBACK_CODE = "HW"

    common_name = models.CharField(max_length=100, unique=True)
    scientific_name = models.CharField(max_length=100, blank=True)
    code = models.CharField(max_length=8, unique=True, help_text="Catalogue id prefix, e.g. HW")
    scientific_name_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="WoRMS LSID, e.g. urn:lsid:marinespecies.org:taxname:137092 (Darwin Core scientificNameID)",
    )
    profile = models.CharField(
        max_length=32,
        blank=True,
        choices=PROFILE_CHOICES,
        help_text="The species profile (crop, flip policy, matchers) its photos are identified with; "
        "empty: photos are kept for review but never matched",
    )

    objects = SpeciesQuerySet.as_manager()

    class Meta:
        ordering = ["common_name"]
        verbose_name_plural = "species"

    def __str__(self) -> str:
        return self.common_name


class IndividualQuerySet(models.QuerySet):
    def active(self):
        """Individuals not merged into another."""
        return self.filter(merged_into__isnull=True)


class Individual(models.Model):
    catalogue_id = models.CharField(max_length=20, unique=True)
    nickname = models.CharField(max_length=100, blank=True)
    species = models.ForeignKey(Species, on_delete=models.PROTECT, related_name="individuals")
    merged_into = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)

    objects = IndividualQuerySet.as_manager()

    class Meta:
        ordering = ["catalogue_id"]

    def __str__(self) -> str:
        return f"{self.catalogue_id} ({self.nickname})" if self.nickname else self.catalogue_id


class ModelVersionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)

    def of_species(self, species):
        """The versions that identify ``species`` (a ``Species`` or its pk); each species has its own models."""
        return self.filter(species=species)

    def active_for(self, species):
        """The one active version of ``species`` (a queryset: ``.first()`` is None when it has no model yet)."""
        return self.filter(is_active=True, species=species)


RECIPE_FIELDS = (
    ("arch", "Network"),
    ("image_size", "Image size (px)"),
    ("embedding_dim", "Embedding size"),
    ("head", "Head"),
    ("epochs", "Epochs"),
    ("batch_size", "Batch size"),
    ("lr", "Learning rate"),
)


class ModelVersion(models.Model):
    """A trained model folder written by ``ml.train`` under ``settings.ML_ROOT``."""

    name = models.CharField(max_length=64, unique=True)
    artifact_dir = models.CharField(max_length=500, help_text="Model folder, relative to ML_ROOT")
    config = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    history = models.JSONField(default=list)
    training_snapshot = models.JSONField(default=dict, help_text="Counts and photo ids it was trained on")
    new_threshold = models.FloatField(default=DEFAULT_NEW_THRESHOLD)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    gallery_ready = models.BooleanField(default=False, help_text="Gallery embeddings exist for this version")
    # the species whose catalogue this version identifies (one active version per species); null only for
    # rows written before species profiles, which migration 0015 gave the humpback
    species = models.ForeignKey(Species, on_delete=models.PROTECT, null=True, blank=True, related_name="model_versions")

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("manage_models", "Can start training runs and promote model versions")]
        constraints = [
            models.UniqueConstraint(
                fields=["species"], condition=models.Q(is_active=True), name="one_active_model_per_species"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """The version number people read ("v3"); ``name`` (a run stamp such as
        ``run-3-20261201-193727-29366c51``) stays the machine's id, shown small beside it."""
        return f"v{self.pk}"

    def recipe(self) -> list[tuple[str, object]]:
        """The few training settings a person compares, in words; the rest stay folded away."""
        c = self.config or {}
        return [(label, c[key]) for key, label in RECIPE_FIELDS if c.get(key) not in (None, "")]


class Embedding(models.Model):
    """A gallery vector: one photo embedded by one model version (float32 bytes), and the RootSIFT features
    of the same crop (``ml.local_features.LocalFeatures.to_bytes``), computed once when the photo is embedded
    so that a query's re-ranking only reads them. They belong to the version: its crop size and box."""

    photo = models.ForeignKey("submissions.Photo", on_delete=models.CASCADE, related_name="embeddings")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="embeddings")
    vector = models.BinaryField()
    features = models.BinaryField(null=True, blank=True, editable=False)  # null: embedded before local features
    # ml.ood.Familiarity of the photo under this version: the k-NN distance to the training embeddings and
    # whether it passed the version's threshold (the photo looks unlike the training photos, so its cosine is
    # not trusted). Null: the version has no detector, or the row was embedded before the flag existed.
    ood_score = models.FloatField(null=True, blank=True, editable=False)
    out_of_distribution = models.BooleanField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["photo", "model_version"], name="one_embedding_per_version")]


class GalleryChange(models.Model):
    """One row per change that may move a photo in or out of a gallery, or change its whale or vector.

    Written by database triggers (migration 0006), not by Python, so that no path is missed:
    ``save()``, ``QuerySet.update()`` (merges), deletes and cascades all fire them. Workers read the
    recent rows to update their in-memory gallery index (``identification.pipeline.gallery_sync.gallery``)
    instead of reading the whole gallery for every photo. ``changed_at`` is the database's clock.
    """

    photo_id = models.BigIntegerField()  # not a foreign key: deleted photos are logged too
    model_version_id = models.BigIntegerField(null=True, blank=True)  # embedding changes: whose; photo changes: null
    changed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["id"]


class Suggestion(models.Model):
    """One ranked candidate for a photo. ``individual`` is null for "new individual"."""

    photo = models.ForeignKey("submissions.Photo", on_delete=models.CASCADE, related_name="suggestions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="suggestions")
    rank = models.PositiveSmallIntegerField()
    individual = models.ForeignKey(Individual, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    score = models.FloatField()  # the raw cosine (for "new individual": the threshold-based score of today)
    # calibrated P(same individual) from ml.fused_ranking (for "new individual": 1 - the best candidate's P);
    # null for model versions without calibration.json (ranked by cosine alone)
    probability = models.FloatField(null=True, blank=True)
    inliers = models.PositiveIntegerField(null=True, blank=True)  # RootSIFT RANSAC inliers with best_photo
    best_photo = models.ForeignKey(
        "submissions.Photo", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    @property
    def probability_words(self) -> str | None:
        """What a moderator reads: '92% same individual' ('70% new individual' for that row); None for
        versions without calibration, whose rows show the labelled cosine instead."""
        from ml.calibration import percent_same

        if self.probability is None:
            return None
        if self.individual_id is None:
            return f"{round(100 * self.probability)}% new individual"
        return percent_same(self.probability)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.UniqueConstraint(fields=["photo", "model_version", "rank"], name="one_suggestion_per_rank")
        ]


class DecisionQuerySet(models.QuerySet):
    def not_undone(self):
        return self.filter(undone_at__isnull=True)

    def open_votes(self):
        """Confirm / new / reject votes waiting for REVIEW_CONSENSUS agreeing moderators."""
        return self.filter(pending=True, undone_at__isnull=True)


class Decision(models.Model):
    """Every moderator action, kept as the audit log (never deleted; undo marks it)."""

    class Action(models.TextChoices):
        CONFIRM = "confirm", "Confirmed a match"
        NEW_INDIVIDUAL = "new_individual", "Named a new individual"
        REJECT = "reject", "Rejected"
        SKIP = "skip", "Skipped"
        RETRY = "retry", "Retried processing"
        BOX = "box", "Corrected the crop box"
        MERGE = "merge", "Merged individuals"
        SPLIT = "split", "Split a photo out"
        SPECIES = "species", "Corrected the species"
        NAME = "name", "Set the nickname"

    class RejectReason(models.TextChoices):
        NOT_A_FLUKE = "not_a_fluke", "Not a fluke"
        POOR_QUALITY = "poor_quality", "Poor quality"
        DUPLICATE = "duplicate", "Duplicate"
        OTHER_SPECIES = "other_species", "Other species"

    photo = models.ForeignKey(
        "submissions.Photo", on_delete=models.CASCADE, null=True, blank=True, related_name="decisions"
    )
    moderator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    individual = models.ForeignKey(
        Individual, on_delete=models.SET_NULL, null=True, blank=True, related_name="decisions"
    )
    reject_reason = models.CharField(max_length=20, choices=RejectReason.choices, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    scores = models.JSONField(default=list, blank=True, help_text="The suggestions shown when deciding")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    pending = models.BooleanField(
        default=False, help_text="A vote that is not final yet (REVIEW_CONSENSUS > 1) or was disputed"
    )

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]


class TrainingExampleQuerySet(models.QuerySet):
    def queued(self):
        return self.filter(status=TrainingExample.Status.QUEUED)

    def usable(self):
        """Everything a new run may train on: queued and already used, not excluded."""
        return self.exclude(status=TrainingExample.Status.EXCLUDED)


class TrainingExample(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        USED = "used", "Used by a run"
        EXCLUDED = "excluded", "Excluded"

    photo = models.OneToOneField("submissions.Photo", on_delete=models.CASCADE, related_name="training_example")
    individual = models.ForeignKey(Individual, on_delete=models.CASCADE, related_name="training_examples")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    used_by = models.ForeignKey(
        "TrainingRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="examples"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TrainingExampleQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]


class TrainingRunQuerySet(models.QuerySet):
    def in_progress(self):
        return self.filter(status__in=TrainingRun.IN_PROGRESS)

    def lost(self, older_than: timedelta):
        """RUNNING, but no heartbeat for ``older_than``: no live worker owns it (killed, node gone)."""
        cutoff = timezone.now() - older_than
        silent = models.Q(heartbeat_at__lt=cutoff) | models.Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        return self.filter(silent, status=TrainingRun.Status.RUNNING)

    def unsent(self):
        """QUEUED, but its message never reached the broker (it was down): to be sent again."""
        return self.filter(status=TrainingRun.Status.QUEUED, sent_at__isnull=True)

    def demo_setup(self):
        """The first run's demo training (``seed_demo``), which ``make run`` starts after the site is up."""
        return self.filter(options__seed_demo=True)


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    IN_PROGRESS = (Status.QUEUED, Status.RUNNING)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    options = models.JSONField(default=dict, help_text="epochs, arch, image_size, fine_tune")
    # the species whose model it trains (null: written before profiles; the humpback's)
    species = models.ForeignKey(Species, on_delete=models.PROTECT, null=True, blank=True, related_name="training_runs")
    progress = models.JSONField(default=dict, help_text="Latest TrainProgress: epoch, step, loss, val_map5, eta")
    log = models.TextField(blank=True)
    metrics = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, help_text="Hostname of the worker running it")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Written by the running worker")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="When its message reached the broker")
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    model_version = models.OneToOneField(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="training_run"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TrainingRunQuerySet.as_manager()

    @property
    def in_progress(self) -> bool:
        return self.status in self.IN_PROGRESS

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="running"), name="one_running_training_run"
            )
        ]


class HoldoutSet(models.Model):
    """The benchmark: gallery photos set aside once, with their truth, and never trained on.

    Created the first time a version is evaluated and frozen afterwards (``items`` is never
    rewritten), so every model version is scored on exactly the same photos. ``items`` is a list
    of ``{"photo_id", "individual_id", "catalogue_id", "new"}``; ``new`` is true when the whale had
    no other gallery photo at freeze time (the correct answer is then "new individual").
    """

    items = models.JSONField(default=list)
    seed = models.IntegerField(default=0)
    # each species' models are scored on its own frozen holdout (null: written before profiles; the humpback's)
    species = models.ForeignKey(Species, on_delete=models.PROTECT, null=True, blank=True, related_name="holdouts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Holdout set {self.pk} ({len(self.items)} photos)"

    @property
    def photo_ids(self) -> list[int]:
        return [int(item["photo_id"]) for item in self.items]


class HoldoutEvaluation(models.Model):
    """One model version scored on the holdout set (map5, top1, top5, new_precision, new_recall, n)."""

    holdout = models.ForeignKey(HoldoutSet, on_delete=models.CASCADE, related_name="evaluations")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="holdout_evaluations")
    metrics = models.JSONField(default=dict)
    gallery_size = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["holdout", "model_version"], name="one_evaluation_per_holdout")]


class WorkerHeartbeat(models.Model):
    """Written by every Celery worker when it starts and then every ``WORKER_HEARTBEAT_S`` seconds
    (``identification.ops.health``): the health page lists workers, their device and queues."""

    hostname = models.CharField(max_length=200, unique=True)
    device = models.CharField(max_length=100, blank=True)
    queues = models.JSONField(default=list)
    pid = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["hostname"]


class StepTiming(models.Model):
    """Seconds per training step of an architecture and image size, measured on a training worker
    (``ml.step_time``, the task ``measure_step_time``): the retrain form multiplies it by the run's
    steps to estimate a run's time before it starts (``training.estimate``). One row per worker,
    architecture, size and batch, replaced by each new measurement."""

    worker = models.CharField(max_length=200)
    device = models.CharField(max_length=100)
    arch = models.CharField(max_length=100)
    image_size = models.PositiveIntegerField()
    batch_size = models.PositiveIntegerField()
    seconds_per_step = models.FloatField()
    steps_measured = models.PositiveIntegerField()
    reason = models.CharField(max_length=100)  # "worker start-up" or "requested by <user>"
    measured_at = models.DateTimeField()

    class Meta:
        ordering = ["-measured_at"]
        constraints = [
            models.UniqueConstraint(fields=["worker", "arch", "image_size", "batch_size"], name="one_step_timing")
        ]

    def __str__(self):
        return f"{self.arch}@{self.image_size}px on {self.worker}: {self.seconds_per_step:.2f} s/step"

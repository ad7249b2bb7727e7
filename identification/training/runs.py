"""Training runs: start and cancel them, the lifecycle every run goes through, and the model run
(``execute_run``: export the species' training set, call ``ml.train.train`` with the species' profile,
register the result as an inactive ``ModelVersion`` of that species). Each species has its own runs,
holdout and models: a run trains one species and is compared only with that species' active version.

Lifecycle (``claim_run`` then ``run_lifecycle``), shared by the model run, the localizer retrain
(``training.localizer``) and ``seed_demo``: re-fetch the run and return quietly when it is gone,
finished or cancelled; mark it RUNNING; give the body a ``RunReporter`` (progress and cancellation,
throttled); and record how it ended: CANCELLED on ``TrainingCancelled``, FAILED with the traceback on
any other error. The body marks success itself (``finish_run``), in the transaction that registers
its model version.

The model folder is written under ``settings.ML_ROOT``/models/run-<run_id>/ by ml.train.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import jobs
from ..heartbeat import Beating
from ..models import HoldoutEvaluation, ModelVersion, TrainingExample, TrainingRun
from ..permissions import MANAGE_MODELS_PERMISSION, require
from ..pipeline import cache
from .dataset import current_holdout, export_dataset, species_or_default
from .progress import merge_progress
from .registry import evaluate_on_holdout

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0


def run_dir(run_id: int) -> Path:
    return Path(settings.ML_ROOT) / "runs" / str(run_id)


# --------------------------------------------------------------------------- starting and cancelling


def trainable_species(species):
    """``species`` (the humpback when None) when it can have a model; a clear error when it has no profile."""
    species = species_or_default(species)
    if species is not None and not species.profile:
        raise ValidationError(
            f"{species} has no species profile: its photos are kept for review but never identified, "
            "so there is no model to train. Give it a profile first."
        )
    return species


def start_training_run(
    *, user, species=None, epochs=None, arch=None, image_size=None, fine_tune: bool = True
) -> TrainingRun:
    """Queue a run that trains ``species``' model (the humpback's when None)."""
    require(user, MANAGE_MODELS_PERMISSION)
    species = trainable_species(species)
    options = {
        "epochs": int(epochs or settings.ML_DEFAULT_EPOCHS),
        "arch": arch or settings.ML_DEFAULT_ARCH,
        "image_size": int(image_size or settings.ML_DEFAULT_IMAGE_SIZE),
        "fine_tune": bool(fine_tune),
    }
    if options["epochs"] < 1 or options["image_size"] < 32:
        raise ValidationError("Epochs must be at least 1 and the image size at least 32 pixels.")
    with transaction.atomic():
        # lock the runs in progress: with none there is nothing to lock, so two simultaneous starts can
        # both get here; execute_run refuses the second one when it finds the first RUNNING
        end_lost_runs()  # a run whose worker died never blocks the next one
        if TrainingRun.objects.select_for_update().in_progress().exists():
            raise ValidationError("A training run is already queued or running.")
        run = TrainingRun.objects.create(options=options, started_by=user, species=species)
        send_run(run.pk)
    run.refresh_from_db()
    return run


def send_run(run_id: int) -> None:
    """Queue the run on commit and stamp ``sent_at`` once the broker took it; a run the broker could not
    take stays QUEUED without ``sent_at`` (``TrainingRun.objects.unsent()``) and is sent again by
    ``check_training_runs`` (beat, and every worker's start-up) or from the dashboard."""
    jobs.enqueue(
        jobs.RUN_TRAINING, run_id, on_sent=lambda: TrainingRun.objects.filter(pk=run_id).update(sent_at=timezone.now())
    )


def resend_training_run(*, run, user) -> TrainingRun:
    """The dashboard's "Send again" for a run the broker could not take."""
    require(user, MANAGE_MODELS_PERMISSION)
    if not TrainingRun.objects.unsent().filter(pk=run.pk).exists():
        raise ValidationError("This training run was sent already.")
    send_run(run.pk)
    run.refresh_from_db()
    return run


def cancel_training_run(*, run, user) -> TrainingRun:
    require(user, MANAGE_MODELS_PERMISSION)
    with transaction.atomic():
        locked = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if locked.status == TrainingRun.Status.QUEUED:
            locked.status = TrainingRun.Status.CANCELLED
            locked.cancel_requested = True
            locked.finished_at = timezone.now()
            locked.save()
        elif TrainingRun.objects.lost(lost_after()).filter(pk=run.pk).exists():
            # no live worker owns it, so nobody would act on the request: it ends now
            _end_lost(locked, TrainingRun.Status.CANCELLED, "Cancelled; its worker was gone.")
        elif locked.status == TrainingRun.Status.RUNNING:
            # cancelled at once, on the page and for the next run: the worker sees the request within
            # about a second (ml.train checks it inside every forward pass) and only tidies up
            locked.status, locked.cancel_requested, locked.finished_at = (
                TrainingRun.Status.CANCELLED,
                True,
                timezone.now(),
            )
            locked.log = "\n".join(filter(None, [locked.log, f"[{timezone.now():%H:%M:%S}] Cancelled by {user}."]))
            locked.save(update_fields=["status", "cancel_requested", "finished_at", "log"])
        else:
            raise ValidationError("This training run has already finished.")
    run.refresh_from_db()
    return run


# --------------------------------------------------------------------------- lost workers

WORKER_LOST = "worker lost"


def lost_after() -> timedelta:
    return timedelta(seconds=settings.TRAINING_RUN_LOST_S)


def _end_lost(run: TrainingRun, status: str, line: str) -> None:
    run.status = status
    run.cancel_requested = run.cancel_requested or status == TrainingRun.Status.CANCELLED
    run.error = WORKER_LOST if status == TrainingRun.Status.FAILED else run.error
    run.log = "\n".join(filter(None, [run.log, f"[{timezone.now():%H:%M:%S}] {line}"]))
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "cancel_requested", "error", "log", "finished_at"])


def end_lost_runs() -> int:
    """FAIL ("worker lost") or, when a cancel was asked for, CANCEL every run no live worker owns."""
    ended = 0
    with transaction.atomic():
        for run in TrainingRun.objects.lost(lost_after()).select_for_update(skip_locked=True):
            if run.cancel_requested:
                _end_lost(run, TrainingRun.Status.CANCELLED, "Cancelled; its worker was gone.")
            else:
                _end_lost(run, TrainingRun.Status.FAILED, "Failed: worker lost (no heartbeat).")
            ended += 1
    return ended


def check_training_runs() -> dict:
    """Beat: runs no live worker owns (no heartbeat for TRAINING_RUN_LOST_S) are FAILED with the reason
    "worker lost" (CANCELLED when a cancel was asked for), so they never block the next run; runs the
    broker could not take are sent again. Returns the counts."""
    ended = end_lost_runs()
    unsent = list(TrainingRun.objects.unsent().values_list("pk", flat=True))
    for run_id in unsent:
        send_run(run_id)
    if ended or unsent:
        log.warning("training runs: %d lost ended, %d unsent sent again", ended, len(unsent))
    return {"lost": ended, "resent": len(unsent)}


def recover_runs_of(worker: str) -> int:
    """Worker start-up: a run still RUNNING under this worker's own hostname lost its process (SIGKILL,
    out of memory, node restart), since the worker that owns it has only just started. Start it again
    at once instead of waiting for Redis to deliver the message again (visibility timeout, an hour):
    back to QUEUED and sent; a cancelled one ends. Returns how many were sent again."""
    resent = []
    with transaction.atomic():
        for run in TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING, worker=worker).select_for_update():
            if run.cancel_requested:
                _end_lost(run, TrainingRun.Status.CANCELLED, "Cancelled; its worker was gone.")
                continue
            stamp = timezone.now().strftime("%H:%M:%S")
            run.log = "\n".join(filter(None, [run.log, f"[{stamp}] {RESTARTED_LINE}"]))
            run.status, run.worker, run.heartbeat_at, run.sent_at = TrainingRun.Status.QUEUED, "", None, None
            run.save(update_fields=["log", "status", "worker", "heartbeat_at", "sent_at"])
            send_run(run.pk)
            resent.append(run.pk)
    return len(resent)


RESTARTED_LINE = "The worker stopped during this run; starting it again."


def run_heartbeat(run_id: int) -> Beating:
    """Stamps ``heartbeat_at`` every TRAINING_HEARTBEAT_S while the run's body runs."""

    def beat():
        TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(heartbeat_at=timezone.now())

    return Beating(settings.TRAINING_HEARTBEAT_S, beat, name=f"run-{run_id}-heartbeat")


# --------------------------------------------------------------------------- lifecycle


class RunReporter:
    """Progress and cancellation, throttled to one database write/read per second."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.lines: list[str] = []
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancel = False
        self._pending = None

    def log(self, line: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S")
        self.lines.append(f"[{stamp}] {line}")
        self.flush(force=True)

    def progress(self, p) -> None:
        self._pending = merge_progress(self._pending, asdict(p) if dataclasses.is_dataclass(p) else dict(p))
        if p.phase in ("validate", "done", "localizer") and p.message:
            self.lines.append(f"[{timezone.now():%H:%M:%S}] {p.message}")
            self.flush(force=True)
        else:
            self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_INTERVAL_S:
            return
        self._last_write = now
        fields = {"log": "\n".join(self.lines)}
        if self._pending is not None:
            fields["progress"] = self._pending
        TrainingRun.objects.filter(pk=self.run_id).update(**fields)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_check >= PROGRESS_INTERVAL_S:
            self._last_check = now
            self._cancel = TrainingRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()
        return self._cancel


def claim_run(run_id: int, *, restart_running: bool, exclusive: bool) -> tuple[TrainingRun | None, str]:
    """The run to execute, or ``(None, why not)``: "gone", "done", "owned", "cancelled" or "refused".

    ``restart_running``: a RUNNING run whose heartbeat stopped is started again (its worker died and the
    message came back; one with a live heartbeat is "owned");
    otherwise only a QUEUED run is. ``exclusive``: refused while another run is RUNNING."""
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        return None, "gone"
    if not (run.in_progress if restart_running else run.status == TrainingRun.Status.QUEUED):
        return None, "done"
    if (
        run.status == TrainingRun.Status.RUNNING
        and not TrainingRun.objects.lost(lost_after()).filter(pk=run_id).exists()
    ):
        return None, "owned"  # a live worker runs it: a message delivered again must not start it twice
    if run.cancel_requested:
        TrainingRun.objects.filter(pk=run_id).update(status=TrainingRun.Status.CANCELLED, finished_at=timezone.now())
        return None, "cancelled"
    if exclusive and TrainingRun.objects.filter(status=TrainingRun.Status.RUNNING).exclude(pk=run_id).exists():
        TrainingRun.objects.filter(pk=run_id).update(
            status=TrainingRun.Status.FAILED,
            error="Another training run is already running.",
            finished_at=timezone.now(),
        )
        return None, "refused"
    # taken only if nobody took it since it was read: two messages for one run never both start it
    taken = TrainingRun.objects.filter(pk=run_id, status=run.status, heartbeat_at=run.heartbeat_at).update(
        status=TrainingRun.Status.RUNNING, heartbeat_at=timezone.now()
    )
    return (run, "") if taken else (None, "owned")


@dataclasses.dataclass
class RunLife:
    """What ``run_lifecycle`` yields: the run, its reporter, and how it ended ("" while it has not failed)."""

    run: TrainingRun
    reporter: RunReporter
    outcome: str = ""


@contextmanager
def run_lifecycle(run: TrainingRun, *, what: str = "training run", reraise: bool = False, worker: str = ""):
    """Mark ``run`` RUNNING under ``worker`` (its hostname, for ``recover_runs_of``), keep its heartbeat
    while the body runs (``run_heartbeat``), and record a failure of the body: CANCELLED on
    ``TrainingCancelled``, FAILED with the traceback on any other error (``life.outcome`` says which;
    ``reraise`` lets the error on, for a command line). The body calls ``finish_run`` when it succeeds."""
    from ml.train import TrainingCancelled  # loads torch

    now = timezone.now()
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200]
    )
    with run_heartbeat(run.pk):
        with _recorded(run, what, reraise, TrainingCancelled) as life:
            yield life


@contextmanager
def _recorded(run: TrainingRun, what: str, reraise: bool, cancelled: type[BaseException]):
    reporter = RunReporter(run.pk)
    if run.log:
        reporter.lines = run.log.splitlines()
    life = RunLife(run, reporter)
    try:
        yield life
    except cancelled:
        reporter.log("Cancelled.")
        TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.CANCELLED, finished_at=timezone.now())
        life.outcome = "cancelled"
        if reraise:
            raise
    except Exception as exc:
        log.exception("%s %s failed", what, run.pk)
        reporter.log(f"Failed: {type(exc).__name__}: {exc}")
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=5)}",
            finished_at=timezone.now(),
        )
        life.outcome = "failed"
        if reraise:
            raise


def finish_run(run_id: int, version: ModelVersion, metrics: dict) -> None:
    """Mark the run SUCCEEDED with the version it registered (inside the registering transaction)."""
    TrainingRun.objects.filter(pk=run_id).exclude(cancel_requested=True).update(
        status=TrainingRun.Status.SUCCEEDED,
        model_version=version,
        metrics=metrics,
        finished_at=timezone.now(),
    )


def mark_examples_used(photo_ids, run: TrainingRun) -> None:
    """The run trained on these photos' examples (excluded ones stay excluded)."""
    TrainingExample.objects.filter(photo_id__in=photo_ids).exclude(status=TrainingExample.Status.EXCLUDED).update(
        status=TrainingExample.Status.USED, used_by=run
    )


# --------------------------------------------------------------------------- the model run


def _train_config(run: TrainingRun, data_dir: Path, out_dir: Path):
    from ml.train import TrainConfig  # loads torch

    opts = run.options or {}
    species = species_or_default(run.species)
    values = {
        "csv": str(data_dir / "train.csv"),
        "images_dir": str(data_dir / "images"),
        "boxes_csv": str(data_dir / "boxes.csv"),
        "out_dir": str(out_dir),
        "arch": opts.get("arch") or settings.ML_DEFAULT_ARCH,
        "image_size": int(opts.get("image_size") or settings.ML_DEFAULT_IMAGE_SIZE),
        "epochs": int(opts.get("epochs") or settings.ML_DEFAULT_EPOCHS),
        "batch_size": int(opts.get("batch_size") or settings.ML_DEFAULT_BATCH_SIZE),
        "device": settings.ML_DEVICE,
        "num_workers": 0,
        "seed": int(opts.get("seed", 0)),
        # the species' crop, flip policy and augmentation
        "profile": (species.profile if species is not None else "") or "humpback_fluke",
    }
    if settings.ML_TRAIN_MAX_STEPS:
        values["max_steps"] = settings.ML_TRAIN_MAX_STEPS
    if opts.get("max_steps"):
        values["max_steps"] = int(opts["max_steps"])
    if settings.ML_INIT_WEIGHTS:
        values["init_weights"] = settings.ML_INIT_WEIGHTS
    if opts.get("fine_tune", True):  # from the same species' model only: another species' is another task
        active = ModelVersion.objects.active_for(species).first()
        if active is not None and (cache.model_dir(active) / "model.pt").is_file():
            values["init_from"] = str(cache.model_dir(active))
    return TrainConfig.for_profile(values.pop("profile"), **values)  # the profile's augmentation ranges too


def register_version(
    result, *, run: TrainingRun | None, config, snapshot: dict, name: str | None = None, species=None
) -> ModelVersion:
    """An inactive ``ModelVersion`` of ``species`` (else the run's, else the humpback) for ``result``."""
    species = species_or_default(species if species is not None else getattr(run, "species", None))
    model_dir = Path(result.model_dir).resolve()
    root = Path(settings.ML_ROOT).resolve()
    artifact = str(model_dir.relative_to(root)) if model_dir.is_relative_to(root) else str(model_dir)
    version_label = result.metrics.version or timezone.now().strftime("%Y%m%d-%H%M%S")
    return ModelVersion.objects.create(
        name=name or (f"run-{run.pk}-{version_label}" if run else version_label),
        artifact_dir=artifact,
        config=config.to_dict(),
        metrics=result.metrics.to_dict(),
        history=result.history or [],
        training_snapshot=snapshot,
        new_threshold=float(result.new_threshold),
        species=species,
    )


def execute_run(run_id: int, worker: str = "") -> str:
    """The body of the ``run_training`` task; ``worker`` is the hostname of the worker running it."""
    from ml.train import train  # loads torch

    run, why_not = claim_run(run_id, restart_running=True, exclusive=True)
    if run is None:
        return why_not
    redelivered = run.status == TrainingRun.Status.RUNNING  # the worker died mid-run: start again
    with run_lifecycle(run, worker=worker) as life:
        reporter = life.reporter
        if redelivered:
            reporter.log(RESTARTED_LINE)
        data_dir = run_dir(run_id) / "data"
        species = species_or_default(run.species)
        snapshot = export_dataset(data_dir, species)
        reporter.log(
            f"Exported {snapshot['photos']} photos of {snapshot['individuals']} individuals "
            f"({snapshot['boxes']} boxes)" + (f" of the {species}." if species else ".")
        )
        if snapshot["individuals"] < 2:
            raise ValueError("At least two identified individuals are needed to train a model.")
        out_dir = Path(settings.ML_ROOT) / "models" / f"run-{run_id}"
        if out_dir.exists():
            shutil.rmtree(out_dir)
        config = _train_config(run, data_dir, out_dir)
        reporter.log(
            f"Training {config.arch} at {config.image_size}px for {config.epochs} epochs"
            + (f", fine-tuning from {Path(config.init_from).name}" if config.init_from else "")
            + "."
        )
        result = train(config, progress=reporter.progress, should_stop=reporter.should_stop)
    if life.outcome:
        return life.outcome
    if TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists():
        return "cancelled"  # asked for after the last check: no version is registered

    with transaction.atomic():
        version = register_version(result, run=run, config=config, snapshot=snapshot, species=species)
        mark_examples_used(snapshot["photo_ids"], run)
        reporter.flush(force=True)
        finish_run(run_id, version, result.metrics.to_dict())
    reporter.log(f"Created model version {version.name} (MAP@5 {version.metrics.get('map5')}).")
    if settings.AUTO_PROMOTE_BETTER_MODELS:
        _maybe_auto_promote(version, run)
    else:
        _queue_holdout_evaluations(version)
    return "succeeded"


def _queue_holdout_evaluations(version: ModelVersion) -> None:
    """Score the new version, and its species' active one when it has no score yet, on the species' holdout."""
    jobs.send(jobs.EVALUATE_HOLDOUT, version.pk)
    active = ModelVersion.objects.active_for(version.species).first()
    holdout = current_holdout(version.species)
    if active is not None and not HoldoutEvaluation.objects.filter(model_version=active, holdout=holdout).exists():
        jobs.send(jobs.EVALUATE_HOLDOUT, active.pk)


def _holdout_map5(version: ModelVersion):
    """``version``'s MAP@5 on its species' frozen holdout, evaluated here when it has none yet (None when the
    holdout cannot be built: too few gallery photos)."""
    holdout = current_holdout(version.species)
    evaluation = HoldoutEvaluation.objects.filter(model_version=version, holdout=holdout).first() if holdout else None
    try:
        evaluation = evaluation or evaluate_on_holdout(version)
    except ValidationError as exc:
        log.warning("holdout evaluation of %s skipped: %s", version.name, exc.messages[0])
        return None
    return (evaluation.metrics or {}).get("map5")


def _maybe_auto_promote(version: ModelVersion, run: TrainingRun) -> None:
    """Promote ``version`` when it beats its species' active one on the species' frozen holdout (not on
    each run's own validation split, which differ). Both are scored in this worker, before the comparison."""
    new = _holdout_map5(version)
    active = ModelVersion.objects.active_for(version.species).first()
    old = _holdout_map5(active) if active else None
    if new is None or (old is not None and new <= old):
        return
    ModelVersion.objects.filter(pk=version.pk).update(promoted_by=run.started_by)
    jobs.send(jobs.REEMBED_GALLERY, version.pk)

"""A training run's live progress as it is kept (``merge_progress``, fed by the run's reporter) and as
the dashboard shows it (``progress_view``).

Each phase keeps its own counter: the localizer's epochs used to overwrite the model's ("epoch 4/3"),
and its loss the model's. The last validation MAP@5 stays until the next validation replaces it
(it read "—" except for the moment after each validation).
"""

from __future__ import annotations

COUNTERS = ("epoch", "epochs", "step", "steps_per_epoch", "loss")
PHASE_LABELS = {
    "train": "Training the model",
    "validate": "Validating the model",
    "localizer": "Training the fluke localizer",
    "done": "Done",
}
COUNTER_LABELS = {"localizer": "Localizer epoch", "validate": "Validated epoch"}


def merge_progress(kept: dict | None, new: dict) -> dict:
    """``kept`` updated with one ``ml.types.TrainProgress`` (as a dict), each phase in its own place."""
    merged = dict(kept or {})
    phase = new.get("phase") or "train"
    counters = {key: new.get(key) for key in COUNTERS}
    if phase == "localizer":
        merged["localizer"] = counters
    else:
        merged.update(counters)
        merged["eta_seconds"] = new.get("eta_seconds")
    if new.get("val_map5") is not None:
        merged["val_map5"], merged["val_epoch"] = new["val_map5"], new.get("epoch")
    merged["phase"], merged["message"] = phase, new.get("message", "")
    return merged


def phase_counters(progress: dict, run_epochs: int = 0) -> dict:
    """The counter of the phase on screen: the localizer's own while it trains, else the model's."""
    phase = progress.get("phase") or "train"
    source = (progress.get("localizer") or {}) if phase == "localizer" else progress
    return {
        "phase": phase,
        "phase_label": PHASE_LABELS.get(phase, phase),
        "counter_label": COUNTER_LABELS.get(phase, "Model epoch"),
        "epoch": source.get("epoch") or 0,
        "epochs": source.get("epochs") or (0 if phase == "localizer" else run_epochs),
        "step": source.get("step") or 0,
        "steps_per_epoch": source.get("steps_per_epoch") or 0,
        "loss": progress.get("loss"),
        "localizer_loss": (progress.get("localizer") or {}).get("loss"),
        "val_map5": progress.get("val_map5"),
        "val_epoch": progress.get("val_epoch"),
    }


def percent_done(counters: dict, succeeded: bool) -> float:
    """Share of the current phase's epochs done (100 once the run succeeded)."""
    if succeeded:
        return 100.0
    epochs, epoch = counters["epochs"], counters["epoch"]
    steps_per_epoch, step = counters["steps_per_epoch"], counters["step"]
    if not epochs:
        return 0.0
    done_epochs = max(epoch - 1, 0) if steps_per_epoch and step < steps_per_epoch else epoch
    partial = step / steps_per_epoch if steps_per_epoch and step < steps_per_epoch else 0
    return round(min(max(100.0 * (done_epochs + partial) / epochs, 0.0), 100.0), 1)


def setup_status() -> dict | None:
    """The demo's setup while no model is active yet (the home page shows it: the site answers at
    once and trains in the background); None once a model is active."""
    from ..models import ModelVersion, TrainingRun

    if ModelVersion.objects.active().exists():
        return None
    run = TrainingRun.objects.demo_setup().in_progress().order_by("-pk").first()
    if run is None:
        return {"running": False, "percent": 0.0, "phase_label": "Preparing the demo catalogue"}
    counters = phase_counters(run.progress or {}, run.options.get("epochs") or 0)
    return {"running": True, "percent": percent_done(counters, False), "phase_label": counters["phase_label"]}

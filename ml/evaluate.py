"""Evaluation summaries, reports (metrics.json + PNG plots) and submission files."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.io import atomic_write_json
from ml.metrics import map_at_k, new_whale_precision_recall, top_k_accuracy


class EvaluationError(ValueError):
    """A submission or truth file that cannot be evaluated; ``str()`` says why and where."""


def evaluate_rankings(truth: Sequence[str], predictions: Sequence[Sequence[str]]) -> dict:
    """map5, top1, top5, new_precision, new_recall, n for ranked label lists."""
    precision, recall = new_whale_precision_recall(truth, predictions)
    return {
        "map5": map_at_k(truth, predictions, 5),
        "top1": top_k_accuracy(truth, predictions, 1),
        "top5": top_k_accuracy(truth, predictions, 5),
        "new_precision": precision,
        "new_recall": recall,
        "n": len(truth),
    }


BOOTSTRAP_METRICS = {
    "map5": lambda t, p: map_at_k(t, p, 5),
    "top1": lambda t, p: top_k_accuracy(t, p, 1),
    "top5": lambda t, p: top_k_accuracy(t, p, 5),
}


def bootstrap_intervals(
    truth: Sequence[str],
    predictions: Sequence[Sequence[str]],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of each mean-over-queries metric: the queries are resampled with
    replacement. On a holdout of a few dozen photos a MAP@5 difference of 0.05 can be noise; this says
    how much. ``{metric: [low, high]}``; empty for no queries."""
    n = len(truth)
    if n == 0:
        return {}
    picks = _resamples(n, resamples, seed)
    out = {}
    for name, metric in BOOTSTRAP_METRICS.items():
        per_query = np.array([metric([t], [p]) for t, p in zip(truth, predictions)], dtype=np.float64)
        out[name] = _interval(per_query[picks].mean(axis=1), level)
    return out


def paired_difference(
    a: Sequence[float], b: Sequence[float], resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the same queries (per-query scores of two rankings, e.g. AP@5) and its paired
    percentile bootstrap interval: ``(difference, low, high)``. Two MAP@5 figures 0.01 apart on ~170 queries
    may be noise; a win is a difference whose interval excludes 0. Zeros for no queries."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0:
        return 0.0, 0.0, 0.0
    low, high = _interval(d[_resamples(len(d), resamples, seed)].mean(axis=1), level)
    return float(d.mean()), low, high


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) query indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(means: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2.0
    return [float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _series(history: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, entry in enumerate(history):
        y = entry.get(key)
        if y is None or (isinstance(y, float) and not math.isfinite(y)):
            continue
        xs.append(entry.get("epoch", i + 1))
        ys.append(float(y))
    return xs, ys


def loss_panels(metrics: dict, history: Sequence[dict]) -> list[tuple[str, list[float], list[float]]]:
    """``loss.png``'s panels, one per phase, each on its own axis: the model's loss per epoch (from
    ``history``) and the localizer's (``metrics["localizer"]["history"]``, when it trained). On one
    axis the localizer's values, on another scale, made the model's curve look as if it rose."""
    panels = [("model training loss", *_series(history, "loss"))]
    localizer = metrics.get("localizer")
    if isinstance(localizer, dict) and localizer.get("history"):
        panels.append(("fluke localizer training loss", *_series(localizer["history"], "loss")))
    return panels


def write_report(metrics: dict, history: Sequence[dict], out_dir, confusion=None) -> list[Path]:
    """Write ``metrics.json`` and plots into ``out_dir``; return the written paths.

    ``history`` entries carry ``epoch``, ``loss`` and ``val_map5`` (missing values are
    skipped): ``loss.png`` (a panel per phase, ``loss_panels``) and ``map5.png`` are drawn when there
    is something to draw.
    ``confusion`` is ``(matrix, labels)`` as returned by ``ml.metrics.confusion_matrix``
    (or a bare square matrix) and gives ``confusion.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "metrics.json"
    atomic_write_json(path, _jsonable(metrics), indent=2, sort_keys=True)
    written.append(path)

    panels = {
        "loss.png": loss_panels(metrics, history),
        "map5.png": [("validation MAP@5", *_series(history, "val_map5"))],
    }
    for name, series in panels.items():
        series = [panel for panel in series if panel[1]]
        if not series:
            continue
        fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 4), dpi=100, squeeze=False)
        for ax, (title, xs, ys) in zip(axes[0], series):
            ax.plot(xs, ys, marker="o")
            ax.set_xlabel("epoch")
            ax.set_ylabel("MAP@5" if name == "map5.png" else "loss")
            ax.set_title(title)
            if name == "map5.png":
                ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        written.append(out / name)

    if confusion is not None:
        if isinstance(confusion, tuple):
            matrix, labels = confusion
        else:
            matrix, labels = confusion, None
        matrix = np.asarray(matrix)
        rows, cols = matrix.shape
        size = max(4.0, 0.35 * cols + 2)
        fig, ax = plt.subplots(figsize=(size, max(4.0, 0.35 * rows + 2)), dpi=100)
        im = ax.imshow(matrix, cmap="Blues", aspect="auto")
        fig.colorbar(im, ax=ax)
        if labels is not None:
            ax.set_xticks(range(cols), [str(lab)[:12] for lab in labels][:cols], rotation=90, fontsize=7)
            ax.set_yticks(range(rows), [str(lab)[:12] for lab in labels][:rows], fontsize=7)
        ax.set_xlabel("top-1 prediction")
        ax.set_ylabel("truth")
        ax.set_title("confusion (most frequent ids)")
        fig.tight_layout()
        fig.savefig(out / "confusion.png")
        plt.close(fig)
        written.append(out / "confusion.png")
    return written


def _read_rows(path, columns: tuple[str, str]) -> list[tuple[int, str, str]]:
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{path}: file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise EvaluationError(
                    f"{path}: missing column(s) {', '.join(missing)}; "
                    f"expected a header {','.join(columns)} (found {','.join(header) or 'nothing'})"
                )
            reader.fieldnames = header
            rows = []
            for line, row in enumerate(reader, start=2):
                image = (row.get(columns[0]) or "").strip()
                value = (row.get(columns[1]) or "").strip()
                if not image:
                    raise EvaluationError(f"{path}, line {line}: empty {columns[0]}")
                rows.append((line, image, value))
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    if not rows:
        raise EvaluationError(f"{path}: no rows")
    return rows


def _unique(path, rows) -> dict:
    out: dict = {}
    for line, image, value in rows:
        if image in out:
            raise EvaluationError(f"{path}, line {line}: image {image!r} appears twice")
        out[image] = value
    return out


def read_truth(csv_path) -> dict[str, str]:
    """``Image,Id`` CSV (one id per image) -> {image: id}."""
    rows = _read_rows(csv_path, ("Image", "Id"))
    for line, image, value in rows:
        if not value or " " in value:
            raise EvaluationError(f"{csv_path}, line {line}: truth for {image!r} must be exactly one id, got {value!r}")
    return _unique(csv_path, rows)


def read_submission(csv_path, k: int = 5) -> dict[str, list[str]]:
    """Kaggle submission ``Image,Id`` where Id holds up to k space-separated labels."""
    rows = _read_rows(csv_path, ("Image", "Id"))
    out = _unique(csv_path, rows)
    parsed = {}
    for line, image, value in rows:
        labels = value.split()
        if not labels:
            raise EvaluationError(f"{csv_path}, line {line}: no prediction for {image!r}")
        if len(labels) > k:
            raise EvaluationError(
                f"{csv_path}, line {line}: {len(labels)} predictions for {image!r}, at most {k} allowed"
            )
        parsed[image] = labels
    assert len(parsed) == len(out)
    return parsed


def write_submission(predictions: dict[str, Sequence[str]], csv_path) -> Path:
    path = Path(csv_path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Id"])
        for image, labels in predictions.items():
            w.writerow([image, " ".join(labels)])
    return path


def evaluate_submission(submission_csv, truth_csv) -> dict:
    """Score a submission against a truth file; every truth image must be predicted."""
    sub = read_submission(submission_csv)
    truth = read_truth(truth_csv)
    missing = [img for img in truth if img not in sub]
    if missing:
        raise EvaluationError(
            f"{submission_csv}: {len(missing)} image(s) of {truth_csv} have no prediction, "
            f"e.g. {', '.join(missing[:3])}"
        )
    images = list(truth)
    result = evaluate_rankings([truth[i] for i in images], [sub[i] for i in images])
    result["extra_predictions"] = len(set(sub) - set(truth))
    return result

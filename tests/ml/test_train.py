import json
import math

import pytest
import torch

from ml.train import TrainConfig, TrainingCancelled, chance_map5, train
from ml.types import NEW_WHALE

TINY = dict(arch="resnet18", image_size=64, embedding_dim=32)


def random_map5(n_ids: int, k: int = 5) -> float:
    """Expected MAP@5 when the true id is at a uniformly random rank among n_ids."""
    return sum(1.0 / r for r in range(1, min(k, n_ids) + 1)) / n_ids


def test_chance_formula():
    assert chance_map5(12) == pytest.approx(random_map5(12))
    assert chance_map5(1) == 1.0


def test_training_learns(tiny_trained):
    result, progress = tiny_trained
    hist = result.history
    # epoch 0: the untrained network, validated the same way before any step
    assert [h["epoch"] for h in hist] == list(range(7))
    assert hist[0]["steps"] == 0 and hist[0]["loss"] is None
    steps = result.metrics.steps
    assert steps >= 24  # a few dozen steps
    # the loss went down (compared at the same ArcFace margin and augmentation: both ramp up over 2 epochs)
    full = [h for h in hist[1:] if h["margin"] == pytest.approx(TrainConfig.arcface_m)]
    assert len(full) >= 2 and full[-1]["loss"] < full[0]["loss"], [(h.get("margin"), h["loss"]) for h in hist]
    m = result.metrics
    chance = random_map5(m.n_train_ids)
    untrained = hist[0]["val_map5_known"]
    # the shipped (best) model beats chance AND the untrained network of the same run
    assert m.map5_known_only > chance + 0.1, (m.map5_known_only, chance)
    assert m.map5_known_only > untrained + 0.05, (m.map5_known_only, untrained)
    assert m.best_epoch >= 1
    # 4 new-whale queries (< 5): the new_whale threshold is the documented default, not tuned on them
    from ml.metrics import DEFAULT_NEW_THRESHOLD

    assert m.new_threshold_choice["reason"] == "too_few_new"
    assert result.new_threshold == DEFAULT_NEW_THRESHOLD
    # progress: every step reported, with an ETA, and a final "done"
    train_steps = [p for p in progress if p.phase == "train"]
    assert len(train_steps) == steps
    assert all(p.eta_seconds is not None and p.eta_seconds >= 0 for p in train_steps)
    assert progress[-1].phase == "done"


def test_model_folder(tiny_trained):
    result, _ = tiny_trained
    from pathlib import Path

    out = Path(result.model_dir)
    for name in (
        "model.pt",
        "config.json",
        "metrics.json",
        "history.json",
        "checkpoint.pt",
        "loss.png",
        "map5.png",
        "confusion.png",
    ):
        assert (out / name).is_file(), name
    blob = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert set(blob) >= {"config", "state_dict", "classes", "new_threshold", "version"}
    assert blob["classes"] == sorted(blob["classes"]) and NEW_WHALE not in blob["classes"]
    assert -1.0 <= blob["new_threshold"] <= 1.0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("map5", "top1", "top5", "new_precision", "new_recall", "n_train", "n_val", "n_new_individuals"):
        assert key in metrics, key
    assert metrics["n_new_individuals"] >= 1  # 12 ids: one held out as "new"
    assert metrics["n_train"] + metrics["n_val"] == metrics["n_images"]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(0, 7))
    assert json.loads((out / "config.json").read_text())["arch"] == "resnet18"
    # split: no photo both sides, held-out individuals absent from training
    split = json.loads((out / "split.json").read_text())
    val_images = {v["image"] for v in split["val"]}
    assert not (val_images & set(split["train"]))
    # the localizer ships only when it beat the default box on its validation photos; both IoUs recorded
    loc = metrics["localizer"]
    assert 0.0 <= loc["val_iou_mean"] <= 1.0 and 0.0 <= loc["iou_default_mean"] <= 1.0
    assert loc["shipped"] == (loc["val_iou_mean"] > loc["iou_default_mean"])
    assert (out / "localizer.pt").is_file() == loc["shipped"]


def _config(synth, out, **kw):
    base = dict(
        csv=str(synth / "train.csv"),
        images_dir=str(synth / "images"),
        out_dir=str(out),
        epochs=2,
        batch_size=16,
        lr=0.001,
        num_workers=0,
        seed=1,
        train_localizer=False,
        cache_dir=str(synth / "cache"),
        **TINY,
    )
    base.update(kw)
    return TrainConfig(**base)


def _subset_csv(synth, path, n_ids):
    rows = (synth / "train.csv").read_text().splitlines()
    ids = sorted({r.split(",")[1] for r in rows[1:]})[:n_ids]
    path.write_text("\n".join([rows[0]] + [r for r in rows[1:] if r.split(",")[1] in ids]) + "\n")
    return str(path)


def test_resume_continues_from_checkpoint(synth_small, tmp_path):
    out = tmp_path / "m"
    csv = _subset_csv(synth_small, tmp_path / "sub.csv", 6)
    first = train(_config(synth_small, out, csv=csv, epochs=2, batch_size=8))
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2
    steps_after_two = first.metrics.steps
    seen = []
    second = train(_config(synth_small, out, csv=csv, epochs=3, batch_size=8, resume=True), progress=seen.append)
    assert [h["epoch"] for h in second.history] == [0, 1, 2, 3]
    assert second.history[:3] == first.history  # epoch 0 and the first two epochs were not re-run
    assert {p.epoch for p in seen if p.phase == "train"} == {3}
    assert second.metrics.steps > steps_after_two
    assert torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["epoch"] == 3


@pytest.mark.parametrize("workers", [0, 1])
def test_resumed_run_is_bit_exact_with_an_uninterrupted_one(synth_small, tmp_path, workers):
    # with loader workers too: they only read crops; the augmentation runs in the training process
    csv = _subset_csv(synth_small, tmp_path / "sub.csv", 6)
    straight = train(_config(synth_small, tmp_path / "straight", csv=csv, epochs=3, batch_size=8, num_workers=0))
    train(_config(synth_small, tmp_path / "split", csv=csv, epochs=2, batch_size=8, num_workers=workers))
    resumed = train(
        _config(synth_small, tmp_path / "split", csv=csv, epochs=3, batch_size=8, num_workers=workers, resume=True)
    )

    def losses(res):
        return [h["loss"] for h in res.history]

    assert losses(resumed) == losses(straight)
    a = torch.load(tmp_path / "straight" / "model.pt", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "split" / "model.pt", map_location="cpu", weights_only=False)
    sa, sb = a.get("state_dict", a), b.get("state_dict", b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_init_from_previous_model_reinitialises_head(synth_small, tiny_trained, tmp_path):
    result, _ = tiny_trained
    # fine-tune on a subset of individuals: backbone/embedding copied, head re-initialised
    sub = _subset_csv(synth_small, tmp_path / "sub.csv", 8)
    cfg = _config(synth_small, tmp_path / "ft", csv=sub, epochs=1, max_steps=1, init_from=result.model_dir)
    res = train(cfg)
    info = res.metrics.init_from
    assert info["head_reinitialised"] is True
    assert info["loaded"] > 50


def test_cancel(synth_small, tmp_path):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrainingCancelled):
        train(_config(synth_small, tmp_path / "c"), should_stop=stop)
    assert not (tmp_path / "c" / "model.pt").exists()


def test_tiny_awkward_dataset(synth_small, tmp_path):
    """Few ids, single-photo ids and new_whale rows: trains without crashing, SGD recipe."""
    rows = (synth_small / "train.csv").read_text().splitlines()
    body = rows[1:]
    keep = []
    per_id = {}
    for r in body:
        img, lab = r.split(",")
        per_id.setdefault(lab, []).append(img)
    labs = sorted(per_id)
    for i, lab in enumerate(labs[:6]):
        imgs = per_id[lab][: (1 if i < 2 else 3)]
        keep += [f"{im},{lab}" for im in imgs]
    keep += [f"{im},{NEW_WHALE}" for im in per_id[labs[7]][:2]]
    csv = tmp_path / "t.csv"
    csv.write_text(rows[0] + "\n" + "\n".join(keep) + "\n")
    res = train(
        _config(
            synth_small, tmp_path / "t", csv=str(csv), epochs=2, optimizer="sgd", lr=0.01, head="softmax", batch_size=4
        )
    )
    assert (tmp_path / "t" / "model.pt").is_file()
    assert res.metrics.n_new_whale_photos == 2
    assert NEW_WHALE not in torch.load(tmp_path / "t" / "model.pt", weights_only=True)["classes"]


@pytest.mark.parametrize(
    "extra",
    [dict(head="arcface", softmax_weight=0.5, pooling="gem"), dict(head="softmax")],
    ids=["arcface+softmax+gem", "softmax"],
)
def test_bf16_mixed_precision_path_trains_on_the_cpu(synth_small, tmp_path, extra):
    """The CUDA path's bf16 autocast, run through the CPU's autocast (no GPU here): every head and
    pooling must cope with bf16 activations meeting fp32 weights, and the loss must stay finite."""
    csv = _subset_csv(synth_small, tmp_path / "sub.csv", 6)
    seen = []
    res = train(
        _config(
            synth_small, tmp_path / "bf16", csv=csv, epochs=3, max_steps=3, batch_size=8, precision="bf16", **extra
        ),
        progress=seen.append,
    )
    losses = [p.loss for p in seen if p.phase == "train"]
    assert len(losses) == 3 and all(math.isfinite(v) and v > 0 for v in losses)
    assert res.metrics.precision == "bf16"
    assert (tmp_path / "bf16" / "model.pt").is_file()


def test_unknown_precision_is_refused_before_any_work(synth_small, tmp_path):
    with pytest.raises(ValueError, match="unknown precision"):
        train(_config(synth_small, tmp_path / "p", precision="fp8"))
    assert not (tmp_path / "p" / "cache").exists()


def test_augmentation_warm_up_ramps_to_full_strength():
    from ml.train import aug_strength

    assert [aug_strength(e, 4, 0.25) for e in range(6)] == [0.25, 0.4375, 0.625, 0.8125, 1.0, 1.0]
    assert aug_strength(0, 0, 0.25) == 1.0  # off: seed 000's full ranges from the start


def test_augmentation_warm_up_with_a_loader_worker(synth_small, tmp_path):
    """With worker processes the ramp restarts them (they hold a copy of the transform); the run
    still completes every epoch."""
    csv = _subset_csv(synth_small, tmp_path / "sub.csv", 6)
    res = train(
        _config(synth_small, tmp_path / "ramp", csv=csv, epochs=3, batch_size=8, num_workers=1, aug_warmup_epochs=2)
    )
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3] and res.metrics.stop_reason == "epochs"


def test_each_phase_reports_its_own_counter_never_past_its_end(tiny_trained):
    """Issue 12, item 8: the localizer's start and the final "done" carried the model's history length
    (epoch 0 included), so a 12-epoch run printed "epoch 13/12". The localizer reports its own epochs."""
    result, progress = tiny_trained
    assert all(p.epoch <= p.epochs for p in progress if p.epochs), [(p.phase, p.epoch, p.epochs) for p in progress]
    localizer = [p for p in progress if p.phase == "localizer" and p.epochs]
    assert localizer and {p.epochs for p in localizer} == {1}  # localizer_epochs=1, not the model's 6
    done = progress[-1]
    assert (done.phase, done.epoch, done.epochs) == ("done", 6, 6)
    assert done.describe().startswith("model epochs 6/6")
    assert localizer[-1].describe().startswith("localizer epoch 1/1 step ")
    assert not any("7/6" in p.describe() for p in progress)


def test_cancel_is_honoured_inside_the_localizer_phase(synth_small, tmp_path):
    """A cancel asked for while the localizer trains stops it at its next step (it was checked once,
    before the localizer started, so a cancel then waited for the whole localizer and the model folder)."""
    seen = []

    def stop():
        return any(p.phase == "localizer" and p.step >= 1 for p in seen)

    config = _config(synth_small, tmp_path / "loc", epochs=1, train_localizer=True, localizer_epochs=50)
    config.boxes_csv = str(synth_small / "boxes.csv")
    with pytest.raises(TrainingCancelled):
        train(config, progress=seen.append, should_stop=stop)
    assert [p.step for p in seen if p.phase == "localizer" and p.steps_per_epoch] == [1]
    assert not (tmp_path / "loc" / "model.pt").exists()

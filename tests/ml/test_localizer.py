"""Localizer: learns boxes and orientation on toy flukes, falls back to a flagged default box."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ml.localizer import Localizer, default_localization, iou, train_localizer
from ml.types import Box


def toy_photo(seed):
    """A dark fluke-like polygon (wide notched wings on top, narrow stock below) on a noisy sea."""
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(140, 220)), int(rng.integers(100, 160))
    im = Image.fromarray(rng.normal(140, 25, (h, w)).clip(0, 255).astype(np.uint8)).convert("RGB")
    bw = rng.uniform(0.3, 0.7) * w
    bh = min(bw / rng.uniform(1.8, 2.6), 0.8 * h)
    x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    c = int(rng.integers(0, 50))
    ImageDraw.Draw(im).polygon(
        [
            (x0, y0),
            (x0 + bw * 0.45, y0 + bh * 0.25),
            (x0 + bw / 2, y0 + bh * 0.1),
            (x0 + bw * 0.55, y0 + bh * 0.25),
            (x0 + bw, y0),
            (x0 + bw * 0.6, y0 + bh * 0.6),
            (x0 + bw * 0.55, y0 + bh),
            (x0 + bw * 0.45, y0 + bh),
            (x0 + bw * 0.4, y0 + bh * 0.6),
        ],
        fill=(c, c, c),
    )
    return im, Box(x0, y0, x0 + bw, y0 + bh)


@pytest.fixture(scope="module")
def trained():
    data = [toy_photo(i) for i in range(200)]
    return train_localizer([d[0] for d in data], [d[1] for d in data], epochs=24, image_size=64, seed=0)


def test_iou():
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(20, 20, 30, 30)) == 0.0
    assert iou(a, Box(3, 3, 3, 3)) == 0.0


def test_default_localization_is_documented_box_and_flagged():
    loc = default_localization(200, 100)
    assert loc.box == Box(10, 15, 190, 85)
    assert loc.flagged and loc.source == "default" and not loc.upside_down


def test_training_beats_default_box_and_learns_orientation(trained):
    loc, m = trained
    assert m["n_train"] == 160 and m["n_val"] == 40
    assert m["val_iou_mean"] > m["iou_default_mean"] + 0.3
    assert m["val_iou_mean"] > 0.6
    assert m["shipped"] is True and loc.conf_threshold == 0.5
    assert m["val_upside_accuracy"] >= 0.9
    # predict on fresh photos, upright and rotated: boxes in original pixels
    fresh = [toy_photo(1000 + i) for i in range(10)]
    preds = loc.predict([im for im, _ in fresh])
    assert np.mean([iou(p.box, b) for p, (_, b) in zip(preds, fresh)]) > 0.55
    assert sum(not p.upside_down for p in preds) >= 8
    rotated = loc.predict([im.rotate(180) for im, _ in fresh])
    assert sum(p.upside_down for p in rotated) >= 8


def test_save_load_roundtrip_and_fallback(trained, tmp_path):
    loc, _ = trained
    path = loc.save(tmp_path / "localizer.pt")
    again = Localizer.load(path)
    photos = [toy_photo(2000 + i)[0] for i in range(4)]
    a, b = loc.predict_raw(photos), again.predict_raw(photos)
    for p, q in zip(a, b):
        assert iou(p.box, q.box) > 0.999
        assert p.confidence == pytest.approx(q.confidence, abs=1e-5)
        assert p.upside_down == q.upside_down
    assert all(p.source == "localizer" and not p.flagged for p in a)
    # a threshold no prediction can reach: every photo falls back to the flagged default box
    again.conf_threshold = 1.01
    for im, p in zip(photos, again.predict(photos)):
        assert p.flagged and p.source == "default"
        assert p.box == default_localization(*im.size).box


def test_untrained_localizer_is_flagged_on_plain_noise():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 180), dtype=np.uint8))
    loc = Localizer(image_size=64, conf_threshold=0.9)
    (p,) = loc.predict([noise])
    assert p.flagged and p.box == default_localization(180, 120).box


def test_learns_boxes_on_synthetic_flukes():
    from ml.synth import render_photo

    data = [render_photo(i % 40, 500 + i, size=(160, 107)) for i in range(120)]
    _, m = train_localizer([d[0] for d in data], [d[1] for d in data], epochs=30, image_size=64, seed=1, batch_size=16)
    assert m["n_val"] == 24
    assert m["val_iou_mean"] > m["iou_default_mean"] + 0.1
    assert m["val_upside_accuracy"] >= 0.8


def test_guard_does_not_ship_a_localizer_worse_than_the_default_box():
    data = [toy_photo(3000 + i) for i in range(20)]
    loc, m = train_localizer([d[0] for d in data], [d[1] for d in data], image_size=64, seed=0, max_steps=0)
    assert m["steps"] == 0 and m["n_val"] == 4
    assert m["val_iou_mean"] <= m["iou_default_mean"] and m["shipped"] is False
    for im, _ in data[:3]:
        (p,) = loc.predict([im])
        assert p.flagged and p.source == "default" and p.box == default_localization(*im.size).box
    # no validation split: not judged here (the caller compares with the default box)
    _, m0 = train_localizer([d[0] for d in data], [d[1] for d in data], image_size=64, val_fraction=0.0, max_steps=0)
    assert m0["shipped"] is None


def test_fast_inference_net_matches_the_trained_net_and_follows_weight_changes():
    """Predictions run a fused, channels-last copy of the net: same numbers, and a fresh copy as soon as
    the weights change (a stale copy would keep predicting with old weights)."""
    import torch

    from ml.localizer import LocalizerNet

    torch.manual_seed(0)
    net = LocalizerNet()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is really tested
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    loc = Localizer(net)
    canvases = np.random.default_rng(0).standard_normal((3, 128, 128)).astype(np.float32)
    fast = loc._forward(canvases)
    with torch.inference_mode():
        plain = [t.numpy() for t in net.eval()(torch.from_numpy(canvases)[:, None])]
    assert np.allclose(fast[0], plain[0], atol=1e-5) and np.allclose(fast[2], plain[2], atol=1e-5)
    assert np.allclose(fast[1], 1 / (1 + np.exp(-plain[1])), atol=1e-5)
    first = loc._inference_net()
    assert loc._inference_net() is first  # cached while the weights stay
    with torch.no_grad():
        net.box.bias.add_(1.0)
    assert loc._inference_net() is not first
    assert not np.allclose(loc._forward(canvases)[0], fast[0])
    # another net put in its place is used, even when its weights carry the same version numbers
    fresh_a, fresh_b = LocalizerNet(), LocalizerNet()
    versions = [[t._version for t in n.state_dict(keep_vars=True).values()] for n in (fresh_a, fresh_b)]
    assert versions[0] == versions[1]
    other = Localizer(fresh_a)
    before = other._forward(canvases)[0]
    other.net = fresh_b.eval()
    assert not np.allclose(other._forward(canvases)[0], before)
    with torch.inference_mode():
        expected = fresh_b(torch.from_numpy(canvases)[:, None])[0].numpy()
    assert np.allclose(other._forward(canvases)[0], expected, atol=1e-5)


def test_a_localizer_saved_with_the_first_design_still_loads(tmp_path):
    """Files written before the lighter default network carry no "widths": they are the first design."""
    import torch

    from ml.localizer import WIDTHS, WIDTHS_V1, LocalizerNet

    old = Localizer(LocalizerNet(WIDTHS_V1))
    old.save(tmp_path / "old.pt")
    blob = torch.load(tmp_path / "old.pt", weights_only=True)
    del blob["widths"], blob["hidden"]
    torch.save(blob, tmp_path / "old.pt")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300), dtype=np.uint8))
    loaded = Localizer.load(tmp_path / "old.pt")
    assert loaded.net.widths == WIDTHS_V1 != WIDTHS
    assert loaded.predict_raw([image])[0].box == old.predict_raw([image])[0].box
    Localizer(LocalizerNet()).save(tmp_path / "new.pt")
    assert Localizer.load(tmp_path / "new.pt").net.widths == WIDTHS

import numpy as np
import pytest
from PIL import Image

from ml.identifier import Identifier, ModelFolderError, PreparedImage
from ml.types import Box, Localization


@pytest.fixture(scope="module")
def identifier(tiny_trained):
    result, _ = tiny_trained
    return Identifier.load(result.model_dir)


def _images(synth_small):
    return sorted((synth_small / "images").iterdir())


def test_loads_folder(identifier, tiny_trained):
    result, _ = tiny_trained
    assert identifier.version == result.metrics.version
    assert identifier.new_threshold == pytest.approx(result.new_threshold)
    assert identifier.image_size == 64
    # a localizer is used only when it beat the default box on validation (else: flagged default boxes)
    assert (identifier.localizer is not None) == result.metrics.localizer["shipped"]
    assert len(identifier.classes) == result.metrics.n_classes


def test_prepare_and_embed(identifier, synth_small):
    paths = _images(synth_small)[:5]
    prepared = identifier.prepare(paths[0])
    assert isinstance(prepared, PreparedImage)
    assert prepared.crop.shape == (64, 64) and prepared.crop.dtype == np.float32
    assert isinstance(prepared.localization, Localization)
    assert prepared.localization.source in ("localizer", "default")
    vecs = identifier.embed([identifier.prepare(p).crop for p in paths])
    assert vecs.shape == (5, 32) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    again = identifier.embed_paths(paths)
    assert np.allclose(vecs, again, atol=1e-5)
    # different photos give different embeddings
    assert not np.allclose(vecs[0], vecs[1])


def test_given_box_wins(identifier, synth_small):
    path = _images(synth_small)[0]
    with Image.open(path) as im:
        w, h = im.size
    box = Box(0, 0, w / 2, h / 2)
    prepared = identifier.prepare(path, box=box)
    assert prepared.localization.source == "given" and prepared.localization.box == box
    assert not np.allclose(prepared.crop, identifier.prepare(path, box=Box(w / 2, h / 2, w, h)).crop)


def test_localize_box_inside_photo(identifier, synth_small):
    path = _images(synth_small)[0]
    loc = identifier.localize(path)
    with Image.open(path) as im:
        w, h = im.size
    assert 0 <= loc.box.x0 < loc.box.x1 <= w and 0 <= loc.box.y0 < loc.box.y1 <= h


def test_bad_crop_shape(identifier):
    with pytest.raises(ValueError):
        identifier.embed([np.zeros((32, 32), dtype=np.float32)])


def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match="no model.pt"):
        Identifier.load(tmp_path)


def test_localizer_not_better_than_default_box_is_ignored(tiny_trained, tmp_path, synth_small):
    import shutil

    from ml.localizer import Localizer

    result, _ = tiny_trained
    folder = tmp_path / "m"
    shutil.copytree(result.model_dir, folder, ignore=shutil.ignore_patterns("checkpoint.pt", "cache"))
    Localizer(image_size=64, metrics={"val_iou_mean": 0.2, "iou_default_mean": 0.4, "shipped": False}).save(
        folder / "localizer.pt"
    )
    ident = Identifier.load(folder)
    assert ident.localizer is None
    loc = ident.localize(_images(synth_small)[0])
    assert loc.flagged and loc.source == "default"


# ----------------------------------------------------------------- camera-sized photos


@pytest.fixture(scope="module")
def camera_photo():
    """A synthetic fluke photo at 3200x1600 (short side 1600: decoded at 1/2) and its true box."""
    import io

    from ml.synth import render_photo

    img, box = render_photo(3, 5, size=(3200, 1600))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue(), box


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("upside_down", [False, True])
def test_a_camera_photo_decoded_smaller_gives_the_same_crop_and_boxes_in_its_own_pixels(
    identifier, camera_photo, upside_down
):
    data, box = camera_photo
    small, full = identifier.open(data), identifier.open(data, short_side=None)
    assert small.info["scale"] == 2 and small.size == (1600, 800) and full.size == (3200, 1600)
    a = identifier.prepare(small, box=box, upside_down=upside_down)
    b = identifier.prepare(full, box=box, upside_down=upside_down)
    assert a.localization.box == box == b.localization.box  # the photo's own pixels, both ways
    assert _corr(a.crop, b.crop) > 0.98
    ea, eb = identifier.embed([a.crop, b.crop])
    assert float(ea @ eb) > 0.98


def test_a_camera_photo_is_localized_in_its_own_pixels(identifier, camera_photo):
    from ml.localizer import default_localization, iou

    data, _ = camera_photo
    small, full = identifier.open(data), identifier.open(data, short_side=None)
    loc_small, loc_full = identifier.localize(small), identifier.localize(full)
    assert loc_small.source == loc_full.source
    assert 0 <= loc_small.box.x0 < loc_small.box.x1 <= 3200 and 0 <= loc_small.box.y0 < loc_small.box.y1 <= 1600
    assert iou(loc_small.box, loc_full.box) > 0.9
    assert identifier.prepare(small).localization == loc_small
    # without a localizer: the documented default box of the whole photo, not of the decoded picture
    bare = Identifier(
        identifier.model, identifier.classes, identifier.new_threshold, identifier.image_size, "x", identifier.device
    )
    assert bare.localize(small) == default_localization(3200, 1600)
    assert _corr(bare.prepare(small).crop, bare.prepare(full).crop) > 0.98

"""Species profiles (ml/profiles.py) drive the crop, the allowed mirrors, the augmentation ranges and the
localizer; the humpback fluke profile is seed 000's geometry unchanged, and older model folders load as it."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.identifier import Identifier
from ml.preprocess import crop_box, preprocess
from ml.profiles import DOLPHIN_FIN, HUMPBACK_FLUKE, PROFILES, RIGHT_WHALE_HEAD, get_profile
from ml.train import TrainConfig, checked_profile
from ml.types import Box


def test_the_humpback_crop_is_seed_000s_unchanged():
    box = Box(100.0, 80.0, 500.0, 240.0)
    assert crop_box(box, 800, 600) == crop_box(box, 800, 600, crop=HUMPBACK_FLUKE.crop)
    widened = crop_box(box, 800, 600)
    assert (widened.x1 - widened.x0) / (widened.y1 - widened.y0) == pytest.approx(2.09)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (600, 800), dtype=np.uint8))
    assert np.array_equal(preprocess(image, box, size=32), preprocess(image, box, size=32, crop=HUMPBACK_FLUKE.crop))


def test_another_profile_crops_at_its_own_aspect():
    box = Box(100.0, 80.0, 300.0, 240.0)
    fin = crop_box(box, 800, 600, crop=DOLPHIN_FIN.crop)
    assert (fin.x1 - fin.x0) / (fin.y1 - fin.y0) == pytest.approx(1.5)
    head = crop_box(Box(0.0, 0.0, 224.0, 224.0), 224, 224, crop=RIGHT_WHALE_HEAD.crop)
    assert (head.x1 - head.x0) / (head.y1 - head.y0) == pytest.approx(1.0)


def test_mirrors_a_profile_forbids_are_refused():
    def config(profile, **kw):
        return TrainConfig.for_profile(profile, csv="x", images_dir="x", out_dir="x", **kw)

    with pytest.raises(ValueError, match="not the same animal"):
        checked_profile(config("dolphin_fin", hflip=True))
    with pytest.raises(ValueError, match="new identities"):
        checked_profile(config("seal_face", flip_as_new_id=True))
    assert checked_profile(config("right_whale_head", flip_as_new_id=True)) is RIGHT_WHALE_HEAD
    with pytest.raises(ValueError, match="not the same animal"):
        checked_profile(config("right_whale_head", hflip=True))
    assert checked_profile(config("humpback_fluke", hflip=True)) is HUMPBACK_FLUKE  # seed 000 flipped


def test_a_profile_gives_its_augmentation_ranges_unless_told():
    fin = TrainConfig.for_profile("dolphin_fin", csv="x", images_dir="x", out_dir="x")
    assert (fin.rotation, fin.zoom, fin.shift) == (8.0, 0.1, 0.1) and fin.profile == "dolphin_fin"
    told = TrainConfig.for_profile("dolphin_fin", csv="x", images_dir="x", out_dir="x", rotation=3.0)
    assert told.rotation == 3.0
    hw = TrainConfig.for_profile("humpback_fluke", csv="x", images_dir="x", out_dir="x")
    plain = TrainConfig(csv="x", images_dir="x", out_dir="x")
    assert hw == plain  # the humpback profile is today's recipe


def test_unknown_profiles_are_named():
    assert get_profile(None) is HUMPBACK_FLUKE and get_profile("") is HUMPBACK_FLUKE
    with pytest.raises(ValueError, match="seal_face"):
        get_profile("orca_saddle")
    assert {p.catalogue_prefix for p in PROFILES.values()} == {"HW", "TT", "EG", "PV"}


def test_a_folder_crops_with_its_profile(tiny_trained):
    result, _ = tiny_trained
    fluke = Identifier.load(result.model_dir)
    assert fluke.profile is HUMPBACK_FLUKE  # a folder trained before profiles, or for flukes
    head = Identifier(
        fluke.model, fluke.classes, fluke.new_threshold, fluke.image_size, "x", fluke.device,
        localizer=fluke.localizer, config={**fluke.config, "profile": "right_whale_head"},
    )  # fmt: skip
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 255, (224, 224), dtype=np.uint8))
    loc = head.localize(photo)
    assert loc.source == "full_frame" and not loc.flagged
    assert (loc.box.x0, loc.box.y0, loc.box.x1, loc.box.y1) == (0.0, 0.0, 224.0, 224.0)
    assert head.prepare(photo).crop.shape == (fluke.image_size, fluke.image_size)


def test_a_misspelt_matching_geometry_fails_when_the_profile_is_defined():
    from ml.profiles import LocalMatching

    with pytest.raises(ValueError, match="similarity, affine, homography"):
        LocalMatching(geometry="afine")


def test_a_misspelt_contrast_fails_when_the_profile_is_defined():
    from ml.local_features import extract
    from ml.profiles import LocalMatching

    with pytest.raises(ValueError, match="standardized, clahe"):
        LocalMatching(contrast="equalised")
    with pytest.raises(ValueError, match="standardized, clahe"):
        extract(np.zeros((64, 64), np.float32), contrast="equalised")


def test_a_folder_extracts_local_features_as_it_recorded_at_training(tiny_trained):
    """The gallery's stored RootSIFT features were extracted the way the folder's profile said at training; a
    query must be extracted the same way, whatever the profile says today."""
    from ml.local_features import extract
    from ml.profiles import folder_profile

    result, _ = tiny_trained
    config = json.loads((Path(result.model_dir) / "config.json").read_text())
    assert config["local_matching"] == HUMPBACK_FLUKE.local_matching.to_dict()  # training records it
    clahe = {**config, "local_matching": {**config["local_matching"], "contrast": "clahe"}}
    assert folder_profile(clahe).local_matching.contrast == "clahe"
    assert folder_profile(clahe).crop == HUMPBACK_FLUKE.crop  # the rest is the key's profile
    older = {k: v for k, v in config.items() if k != "local_matching"} | {"profile": "right_whale_head"}
    assert folder_profile(older).local_matching.contrast == "standardized"  # as extracted before the record
    assert folder_profile(older).local_matching.geometry == RIGHT_WHALE_HEAD.local_matching.geometry

    fluke = Identifier.load(result.model_dir)
    equalised = Identifier(
        fluke.model, fluke.classes, fluke.new_threshold, fluke.image_size, "x", fluke.device,
        localizer=fluke.localizer, config=clahe,
    )  # fmt: skip
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 255, (200, 420), dtype=np.uint8))
    crop = fluke.prepare(photo)
    assert equalised.local_features(crop).to_bytes() == extract(crop.crop, contrast="clahe").to_bytes()
    assert equalised.local_features(crop).to_bytes() != fluke.local_features(crop).to_bytes()

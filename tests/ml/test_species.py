"""The species classifier (ml/species.py), trained at tiny sizes on synthetic flukes and fins: it tells held-out
photos of individuals it never saw apart, refuses photos unlike its training photos, and checks its file."""

import numpy as np
import pytest
from PIL import Image

from ml.data import DatasetError
from ml.model_folder import ModelFolderError
from ml.species import SpeciesClassifier, train_species_classifier
from ml.synth import generate_dataset
from ml.synth_fins import generate_fin_dataset


@pytest.fixture(scope="module")
def two_species(tmp_path_factory):
    root = tmp_path_factory.mktemp("species")
    generate_dataset(root / "flukes", individuals=8, photos=4, seed=1, image_size=(320, 200), progress=False)
    generate_fin_dataset(root / "fins", individuals=8, photos=4, seed=2, image_size=(320, 200), progress=False)
    flukes = sorted((root / "flukes" / "images").iterdir())
    fins = sorted((root / "fins" / "images").iterdir())
    return root, flukes, fins


def test_it_tells_held_out_flukes_and_fins_apart(two_species, tmp_path):
    _, flukes, fins = two_species
    # held out by photo order: the data sets write each individual's photos together, so the last quarter of
    # each list holds individuals the classifier never saw
    cut_f, cut_d = len(flukes) * 3 // 4, len(fins) * 3 // 4
    train_species_classifier(
        {"humpback_fluke": flukes[:cut_f], "dolphin_fin": fins[:cut_d]}, tmp_path, features="thumbnail"
    )
    model = SpeciesClassifier.load(tmp_path)
    guesses = model.predict_many([*flukes[cut_f:], *fins[cut_d:]])
    truth = ["humpback_fluke"] * (len(flukes) - cut_f) + ["dolphin_fin"] * (len(fins) - cut_d)
    best = [max(g.probabilities, key=g.probabilities.get) for g in guesses]
    assert np.mean([b == t for b, t in zip(best, truth)]) >= 0.8
    assert all(abs(sum(g.probabilities.values()) - 1) < 1e-4 for g in guesses)


def test_a_photo_unlike_the_training_photos_is_unknown(two_species, tmp_path):
    _, flukes, fins = two_species
    train_species_classifier({"humpback_fluke": flukes, "dolphin_fin": fins}, tmp_path, features="thumbnail")
    model = SpeciesClassifier.load(tmp_path)
    checker = np.indices((200, 320)).sum(axis=0) // 8 % 2 * 255
    guess = model.predict(Image.fromarray(checker.astype(np.uint8)))
    assert guess.profile is None and guess.distance > model.distance_threshold


def test_a_damaged_file_and_bad_input_are_refused_clearly(two_species, tmp_path):
    _, flukes, fins = two_species
    train_species_classifier({"humpback_fluke": flukes[:4], "dolphin_fin": fins[:4]}, tmp_path, features="thumbnail")
    with open(tmp_path / "classifier.pt", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelFolderError, match="sha256"):
        SpeciesClassifier.load(tmp_path)
    with pytest.raises(ModelFolderError, match="no species classifier"):
        SpeciesClassifier.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="orca"):
        train_species_classifier({"orca": flukes, "dolphin_fin": fins}, tmp_path / "b", features="thumbnail")
    with pytest.raises(DatasetError, match="two profiles"):
        train_species_classifier({"humpback_fluke": flukes, "dolphin_fin": []}, tmp_path / "c", features="thumbnail")

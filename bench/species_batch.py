"""A sighting's species suggestions, one photo at a time against one batch (``ml.species``), measured in one run.

``submit_sighting`` keeps each photo's 224 px grayscale view (``ml.species.classifier_view``) and classifies the
sighting's photos in one ``predict_many``; before, each photo went through the classifier alone. This trains the
site's classifier (frozen EfficientNet-Lite0 features) on synthetic flukes and fins in a scratch folder, then
classifies ``--photos`` decoded photos both ways, ``--repeats`` times, and prints the median milliseconds per
photo of each, their ratio, and whether the two ways said the same of every photo.

    python bench/species_batch.py [--photos 20] [--repeats 3] [--features efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml.images import load_image  # noqa: E402
from ml.species import SpeciesClassifier, classifier_view, train_species_classifier  # noqa: E402
from ml.synth import generate_dataset  # noqa: E402
from ml.synth_fins import generate_fin_dataset  # noqa: E402


def _photos(folder: Path) -> list[Path]:
    return sorted((folder / "images").glob("*"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=20, help="photos in the sighting (the site allows 20)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--features", default="efficientnet_lite0")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_dataset(str(tmp / "flukes"), individuals=8, photos=4, seed=1, progress=False)
        generate_fin_dataset(str(tmp / "fins"), individuals=8, photos=4, seed=2, progress=False)
        flukes, fins = _photos(tmp / "flukes"), _photos(tmp / "fins")
        train_species_classifier(
            {"humpback_fluke": flukes[:24], "dolphin_fin": fins[:24]}, tmp / "species", features=args.features
        )
        model = SpeciesClassifier.load(tmp / "species")
        test = (flukes[24:] + fins[24:]) * args.photos
        images = [load_image(p.read_bytes()) for p in test[: args.photos]]
        print(f"{len(images)} photos of {images[0].size[0]}x{images[0].size[1]} px, features {args.features}")
        model.predict_many([classifier_view(images[0])])  # warm: the backbone is built on first use
        alone, batch = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            one = [model.predict(im) for im in images]
            alone.append(time.perf_counter() - t)
            t = time.perf_counter()
            many = model.predict_many([classifier_view(im) for im in images])
            batch.append(time.perf_counter() - t)
    a, b = statistics.median(alone), statistics.median(batch)
    same = all(x.profile == y.profile and abs(x.probability - y.probability) < 1e-5 for x, y in zip(one, many))
    print(f"one photo at a time: {1000 * a / len(images):.1f} ms per photo")
    print(f"one batch of views:  {1000 * b / len(images):.1f} ms per photo")
    print(f"ratio (alone / batch): {a / b:.2f}x; the same suggestion for every photo: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

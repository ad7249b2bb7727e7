import random

import numpy as np
import pytest
from PIL import Image

from ml.data import (
    CropCache,
    DatasetError,
    FlukeDataset,
    Sample,
    group_near_duplicates,
    load_samples,
    near_duplicate_components,
    oversample_indices,
    read_boxes_csv,
    read_labels_csv,
    split_dataset,
)
from ml.types import NEW_WHALE


def write(path, text):
    path.write_text(text)
    return path


def noise_photos(tmp_path, labels: list[str]):
    """Random 240x120 PNGs ``0.png``, ``1.png``, ... labelled ``labels``: (csv path, image folder)."""
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for n in range(len(labels)):
        Image.fromarray(rng.integers(0, 255, (120, 240), dtype=np.uint8)).save(img_dir / f"{n}.png")
    rows = "".join(f"{n}.png,{label}\n" for n, label in enumerate(labels))
    return write(tmp_path / "t.csv", "Image,Id\n" + rows), img_dir


# ----------------------------------------------------------------- CSV errors


def test_read_labels_ok(tmp_path):
    rows = read_labels_csv(write(tmp_path / "t.csv", "Image,Id\na.jpg,w_1\nb.jpg,new_whale\n\n"))
    assert rows == [("a.jpg", "w_1", 2), ("b.jpg", "new_whale", 3)]


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_labels_csv(tmp_path / "nope.csv")


def test_missing_column(tmp_path):
    with pytest.raises(DatasetError, match=r"t\.csv:1: missing column\(s\) Id"):
        read_labels_csv(write(tmp_path / "t.csv", "Image,Label\na.jpg,w_1\n"))


@pytest.mark.parametrize(
    "body,line,msg",
    [
        ("a.jpg,w_1\nb.jpg,w_2,extra\n", 3, "expected 2 fields"),
        ("a.jpg,w_1\nb.jpg,\n", 3, "empty Id"),
        (",w_1\n", 2, "empty Image"),
        ("a.jpg,w_1\na.jpg,w_2\n", 3, "listed twice"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, body, line, msg):
    p = write(tmp_path / "t.csv", "Image,Id\n" + body)
    with pytest.raises(DatasetError) as err:
        read_labels_csv(p)
    assert f"t.csv:{line}:" in str(err.value)
    assert msg in str(err.value)


def test_boxes_malformed(tmp_path):
    p = write(tmp_path / "b.csv", "Image,x0,y0,x1,y1\na.jpg,1,2,30,40\nb.jpg,1,x,3,4\n")
    with pytest.raises(DatasetError, match=r"b\.csv:3: box coordinates"):
        read_boxes_csv(p)
    p = write(tmp_path / "c.csv", "Image,x0,y0,x1,y1\na.jpg,10,2,5,40\n")
    with pytest.raises(DatasetError, match=r"c\.csv:2:"):
        read_boxes_csv(p)
    assert read_boxes_csv(write(tmp_path / "d.csv", "Image,x0,y0,x1,y1\na.jpg,1,2,30,40\n"))["a.jpg"].x1 == 30


def test_missing_images_named(tmp_path):
    (tmp_path / "img").mkdir()
    p = write(tmp_path / "t.csv", "Image,Id\nghost.jpg,w_1\n")
    with pytest.raises(DatasetError, match=r"ghost\.jpg \(line 2\)"):
        load_samples(p, tmp_path / "img")


# ----------------------------------------------------------------- duplicates and split


def test_near_duplicate_union_find_is_transitive():
    a = 0x0F0F0F0F0F0F0F0F
    b = a ^ 0b111  # 3 bits from a
    c = b ^ (0b111 << 8)  # 3 bits from b, 6 from a
    far = ~a & 0xFFFFFFFFFFFFFFFF
    comp = near_duplicate_components([f"{v:016x}" for v in (a, b, c, far)], max_bits=4)
    assert comp[0] == comp[1] == comp[2]
    assert comp[3] != comp[0]


def _sample(i, label, ph, sha=None):
    return Sample(
        image=f"{i}.jpg", label=label, path=f"/x/{i}.jpg", line=i + 2, phash=f"{ph:016x}", sha256=sha or f"{i:064x}"
    )


def test_conflicting_duplicates_dropped_new_whale_first():
    base = 0x123456789ABCDEF0
    samples = [
        _sample(0, "w_a", base),
        _sample(1, NEW_WHALE, base ^ 1),  # new_whale copy dropped, w_a kept
        _sample(2, "w_b", 0xFFFF000000000000),
        _sample(3, "w_c", 0xFFFF000000000001),  # conflict: both dropped
        _sample(4, "w_d", 0x00000000FFFFFFFF),
        _sample(5, "w_d", 0x00000000FFFFFFFE),  # same id: one group
    ]
    keep, report = group_near_duplicates(samples, max_bits=4)
    names = [s.image for s in keep]
    assert names == ["0.jpg", "4.jpg", "5.jpg"]
    assert keep[1].group == keep[2].group
    assert {img for img, _ in report.dropped} == {"1.jpg", "2.jpg", "3.jpg"}


def _synthetic_samples(seed=0):
    rng = random.Random(seed)
    samples = []
    i = 0
    used = set()

    def fresh():
        while True:
            v = rng.getrandbits(64)
            # far from every used hash
            if all(bin(v ^ u).count("1") > 16 for u in used):
                used.add(v)
                return v

    for k in range(20):
        n_photos = 1 if k < 5 else rng.randint(2, 6)
        for _ in range(n_photos):
            v = fresh()
            samples.append(_sample(i, f"w_{k}", v))
            i += 1
            if rng.random() < 0.3:  # a near-duplicate of the same photo
                samples.append(_sample(i, f"w_{k}", v ^ 0b11))
                i += 1
    for _ in range(4):
        samples.append(_sample(i, NEW_WHALE, fresh()))
        i += 1
    return samples


def test_split_no_leak_and_singles_stay_in_train():
    samples, _ = group_near_duplicates(_synthetic_samples(), max_bits=4)
    split = split_dataset(samples, val_fraction=0.2, new_individual_fraction=0.1, seed=3)
    train_groups = {s.group for s in split.train}
    val_groups = {s.group for s in split.val}
    assert not (train_groups & val_groups), "a near-duplicate group is on both sides"
    assert len(split.train) + len(split.val) == len(samples)
    # single-photo ids stay in training
    for k in range(5):
        assert any(s.label == f"w_{k}" for s in split.train)
        assert not any(s.label == f"w_{k}" for s in split.val)
    # held-out new individuals are not in training and are queried as new_whale
    assert split.new_individuals
    train_labels = {s.label for s in split.train}
    for s, t in zip(split.val, split.val_truth):
        if s.label in split.new_individuals or s.label == NEW_WHALE:
            assert t == NEW_WHALE and s.label not in train_labels
        else:
            assert t == s.label and s.label in train_labels
    assert NEW_WHALE not in train_labels
    assert split.stats["n_new_individuals"] == len(split.new_individuals)
    assert split.stats["n_val_new"] >= 4


def test_split_deterministic():
    samples, _ = group_near_duplicates(_synthetic_samples(), max_bits=4)
    a = split_dataset(samples, seed=1)
    b = split_dataset(samples, seed=1)
    assert [s.image for s in a.val] == [s.image for s in b.val]


def test_oversample_indices():
    idx = oversample_indices([0, 0, 0, 0, 0, 1, 2, 2], 4)
    counts = np.bincount([[0, 0, 0, 0, 0, 1, 2, 2][i] for i in idx])
    assert list(counts) == [5, 4, 4]


# ----------------------------------------------------------------- cache


def test_crop_cache_reused(tmp_path):
    csv, img_dir = noise_photos(tmp_path, ["a", "b", "b"])
    samples = load_samples(csv, img_dir)
    cache = CropCache(tmp_path / "cache", size=32)
    ds = FlukeDataset(samples, {"a": 0, "b": 1}, cache)
    assert cache.misses == 3 and cache.hits == 0
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 3
    x, y = ds[1]
    assert tuple(x.shape) == (1, 32, 32) and y == 1
    mtimes = [f.stat().st_mtime_ns for f in files]
    cache2 = CropCache(tmp_path / "cache", size=32)
    ds2 = FlukeDataset(load_samples(csv, img_dir), {"a": 0, "b": 1}, cache2)
    assert cache2.hits == 3 and cache2.misses == 0
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert np.array_equal(ds2.crop(2), ds.crop(2))
    # a different crop size is a different cache entry
    cache3 = CropCache(tmp_path / "cache", size=16)
    FlukeDataset(samples, {"a": 0, "b": 1}, cache3)
    assert cache3.misses == 3


def test_unusable_photos_reported_not_fatal(tmp_path):
    from ml.data import compute_sample_hashes

    img_dir = tmp_path / "img"
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 240), dtype=np.uint8)).save(img_dir / "good.png")
    Image.fromarray(rng.integers(0, 255, (20, 30), dtype=np.uint8)).save(img_dir / "tiny.png")
    (img_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    csv = write(tmp_path / "t.csv", "Image,Id\ngood.png,a\ntiny.png,a\nbroken.jpg,b\n")
    samples = load_samples(csv, img_dir)
    rejected = compute_sample_hashes(samples, tmp_path / "cache")
    assert sorted(s.image for s, _ in rejected) == ["broken.jpg", "tiny.png"]
    good = [s for s in samples if s.image == "good.png"][0]
    assert len(good.phash) == 16 and len(good.sha256) == 64
    # memoised: a second pass reads hashes.json
    again = load_samples(csv, img_dir)
    compute_sample_hashes(again, tmp_path / "cache")
    assert [s.phash for s in again if s.image == "good.png"] == [good.phash]


def test_loader_workers_start_cleanly_when_other_threads_run(tmp_path):
    """A web server or test live server runs threads; forking then can hang a worker on a copied lock
    (seen in this suite). With another thread alive the workers are started by forkserver/spawn, and
    the augmented batches still arrive."""
    import threading

    from ml.data import make_loader
    from ml.preprocess import TrainTransform

    csv, img_dir = noise_photos(tmp_path, ["a", "a", "b", "b"])
    ds = FlukeDataset(
        load_samples(csv, img_dir), {"a": 0, "b": 1}, CropCache(tmp_path / "cache", size=32), TrainTransform(32, seed=0)
    )
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)
    busy.start()
    try:
        loader = make_loader(ds, batch_size=2, shuffle=True, num_workers=1, seed=0)
        assert loader.multiprocessing_context.get_start_method() in ("forkserver", "spawn")
        batches = list(loader)
    finally:
        stop.set()
    assert len(batches) == 2 and tuple(batches[0][0].shape) == (2, 1, 32, 32)
    single = make_loader(ds, batch_size=2, shuffle=True, num_workers=0, seed=0)
    assert single.multiprocessing_context is None  # no workers, nothing to start

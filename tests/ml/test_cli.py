import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "ml", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"rc={proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def test_end_to_end(tmp_path):
    data = tmp_path / "synth"
    run("synth", "--out", data, "--individuals", 6, "--photos", 3, "--seed", 5)
    assert (data / "train.csv").is_file() and (data / "boxes.csv").is_file()
    model = tmp_path / "model"
    out = run(
        "train",
        "--csv",
        data / "train.csv",
        "--images",
        data / "images",
        "--boxes",
        data / "boxes.csv",
        "--out",
        model,
        "--epochs",
        2,
        "--arch",
        "resnet18",
        "--image-size",
        64,
        "--embedding-dim",
        16,
        "--batch-size",
        8,
        "--max-steps",
        3,
        "--num-workers",
        0,
        "--localizer-epochs",
        1,
        "--seed",
        1,
        "--pooling",
        "grid",
        "--aug-warmup",
        2,
        "--rotation",
        10,
    )
    assert (model / "model.pt").is_file()
    config = json.loads((model / "config.json").read_text())
    assert (config["pooling"], config["aug_warmup_epochs"], config["rotation"], config["zoom"]) == ("grid", 2, 10, 0.2)
    loc = json.loads((model / "metrics.json").read_text())["localizer"]  # shipped only if it beat the default box
    assert (model / "localizer.pt").is_file() == loc["shipped"] == (loc["val_iou_mean"] > loc["iou_default_mean"])
    assert out.stdout.strip().splitlines()[-1].startswith("MAP@5 ")
    # queries: a copy of every photo under a new name, truth = its id
    rows = list(csv.DictReader((data / "train.csv").open()))
    qdir = tmp_path / "queries"
    qdir.mkdir()
    truth = tmp_path / "truth.csv"
    with truth.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Id"])
        for r in rows[::2]:
            name = "q_" + r["Image"]
            shutil.copy(data / "images" / r["Image"], qdir / name)
            w.writerow([name, r["Id"]])
    sub = tmp_path / "submission.csv"
    run(
        "predict",
        "--model",
        model,
        "--gallery-csv",
        data / "train.csv",
        "--gallery-images",
        data / "images",
        "--images",
        qdir,
        "--out",
        sub,
    )
    preds = list(csv.DictReader(sub.open()))
    assert len(preds) == len(rows[::2])
    assert all(1 <= len(p["Id"].split()) <= 5 for p in preds)
    ev = run("evaluate", "--truth", truth, "--submission", sub)
    last = ev.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"MAP@5 [01]\.\d{4}", last), ev.stdout
    # the queries are exact copies of gallery photos: should be found far better than chance
    assert float(last.split()[1]) > 0.5
    boxes = tmp_path / "boxes.csv"
    run("localize", "--model", model, "--images", qdir, "--out", boxes)
    brows = list(csv.DictReader(boxes.open()))
    assert list(brows[0]) == ["Image", "x0", "y0", "x1", "y1"]
    assert len(brows) == len(preds)
    assert all(float(b["x1"]) > float(b["x0"]) and float(b["y1"]) > float(b["y0"]) for b in brows)


def cli(capsys, *args):
    """In-process ``main`` (same code path as ``python -m ml``, without a torch import per call)."""
    from ml.cli import main

    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    "content,needle",
    [
        (None, "does not exist"),
        ("Image,Label\na.jpg,w\n", "missing column"),
        ("Image,Id\na.jpg,w,extra\n", ":2: expected 2 fields"),
        ("Image,Id\nghost.jpg,w\n", "ghost.jpg (line 2)"),
    ],
)
def test_train_bad_csv_one_line_error(tmp_path, capsys, content, needle):
    csv_path = tmp_path / "t.csv"
    if content is not None:
        csv_path.write_text(content)
    (tmp_path / "img").mkdir()
    rc, _, err = cli(capsys, "train", "--csv", csv_path, "--images", tmp_path / "img", "--out", tmp_path / "m")
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = run("evaluate", "--truth", tmp_path / "no.csv", "--submission", tmp_path / "no2.csv", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "does not exist" in proc.stderr


def test_evaluate_malformed_submission(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("Image,Id\na.jpg,w_1\n")
    (tmp_path / "s.csv").write_text("Image,Id\na.jpg,w_1 w_2 w_3 w_4 w_5 w_6\n")
    rc, _, err = cli(capsys, "evaluate", "--truth", tmp_path / "t.csv", "--submission", tmp_path / "s.csv")
    assert rc == 2 and err.startswith("error: ") and "at most 5" in err
    (tmp_path / "s.csv").write_text("Image,Id\na.jpg,x w_1\n")
    rc, out, _ = cli(capsys, "evaluate", "--truth", tmp_path / "t.csv", "--submission", tmp_path / "s.csv")
    assert rc == 0 and out.strip().splitlines()[-1] == "MAP@5 0.5000"


def test_predict_missing_model(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "g.csv").write_text("Image,Id\n")
    rc, _, err = cli(
        capsys,
        "predict",
        "--model",
        tmp_path / "m",
        "--gallery-csv",
        tmp_path / "g.csv",
        "--gallery-images",
        tmp_path,
        "--images",
        tmp_path,
        "--out",
        tmp_path / "s.csv",
    )
    assert rc == 2 and "model.pt" in err and len(err.strip().splitlines()) == 1

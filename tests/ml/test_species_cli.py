"""``python -m ml species-train`` / ``species-predict`` (weight-free thumbnail features: fast)."""

from ml.cli import main
from ml.synth import generate_dataset
from ml.synth_fins import generate_fin_dataset


def test_species_train_then_predict(tmp_path, capsys):
    generate_dataset(tmp_path / "flukes", individuals=4, photos=3, seed=1, image_size=(320, 200), progress=False)
    generate_fin_dataset(tmp_path / "fins", individuals=4, photos=3, seed=2, image_size=(320, 200), progress=False)
    out = tmp_path / "model"
    argv = ["species-train", "--data", f"humpback_fluke={tmp_path / 'flukes'}", "--data"]
    rc = main([*argv, f"dolphin_fin={tmp_path / 'fins'}", "--out", str(out), "--features", "thumbnail"])
    assert rc == 0 and (out / "classifier.pt").is_file() and (out / "classifier.json").is_file()
    assert "humpback_fluke 12" in capsys.readouterr().out
    photo = sorted((tmp_path / "fins" / "images").iterdir())[0]
    rc = main(["species-predict", "--model", str(out), str(photo), str(tmp_path / "missing.jpg")])
    captured = capsys.readouterr()
    assert rc == 2  # the missing photo fails alone; the fin is still predicted
    line = captured.out.strip().splitlines()[0].split("\t")
    assert line[0] == str(photo) and line[1] in ("dolphin_fin", "humpback_fluke", "unknown")
    assert "missing.jpg" in captured.err and "does not exist" in captured.err


def test_species_train_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["species-train", "--data", f"narwhal_tusk={tmp_path / 'empty'}", "--out", str(tmp_path / "m")])
    assert rc == 2 and "unknown species profile" in capsys.readouterr().err
    rc = main(["species-train", "--data", "humpback_fluke", "--out", str(tmp_path / "m")])
    assert rc == 2 and "expected PROFILE=DIR" in capsys.readouterr().err

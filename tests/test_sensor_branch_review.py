"""Claim 9: `palmgate review` keeps only reviewer-labelled misclassified presentations, in the
liveness layout; a short fine-tune of the liveness model alone fixes them and leaves SR alone."""
import csv
import json
import subprocess
import sys

import pytest

from device.eval.liveness import scan_liveness_dir


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from device.synth.sensor_sets import write_liveness
    d = tmp_path_factory.mktemp("rev")
    write_liveness(d, "xray", 4, 1, seed=4245)
    return d


def test_review_keeps_only_misclassified(small_set, tmp_path):
    files = sorted(p.relative_to(small_set) for p in small_set.rglob("*.png"))
    # the reviewer says two bona fide captures were attacks: the gate called them live
    wrong = {str(f) for f in files if f.parts[0] == "bona_fide"}
    wrong = set(sorted(wrong)[:2])
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "species"])
        for f in files:
            f = str(f)
            if f in wrong:
                w.writerow([f, "attack", "latex_glove"])
            elif f.startswith("bona_fide"):
                w.writerow([f, "bona_fide", ""])
            else:
                w.writerow([f, "attack", f.split("/")[1]])
    out = tmp_path / "reviewed"
    r = subprocess.run([sys.executable, "-m", "device.cli", "review", str(small_set),
                        "--sensor", "xray", "--labels", str(labels), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    meta = json.loads((out / "review.json").read_text())
    run = meta["runs"][-1]
    mis = [e for e in run["entries"] if e["misclassified"]]
    assert rep["misclassified"] == len(mis) >= 2
    bona, attacks = scan_liveness_dir(out)
    assert len(bona) + sum(map(len, attacks.values())) == len(mis)
    assert len(attacks["latex_glove"]) == 2
    for e in run["entries"]:
        assert e["misclassified"] == ((e["decision"] == "live") != (e["label"] == "bona_fide"))
    # a second run keeps each frame once and appends its record
    subprocess.run([sys.executable, "-m", "device.cli", "review", str(small_set), "--sensor",
                    "xray", "--labels", str(labels), "--out", str(out)], check=True,
                   capture_output=True, timeout=120)
    assert len(json.loads((out / "review.json").read_text())["runs"]) == 2
    assert len(scan_liveness_dir(out)[1]["latex_glove"]) == 2


def test_fine_tune_fixes_reviewed_samples_and_not_sr(small_set):
    torch = pytest.importorskip("torch")
    from device.models.model import DEFAULT_MODELS_DIR
    from tools.manifest import sha256_file
    from tools.train.liveness_model import load_from_onnx, predict, train_liveness
    from tools.train.sensor import load_liveness_dir, run_sr
    from tools.train.sensor_quant import session

    torch.set_num_threads(1)
    sr_path = DEFAULT_MODELS_DIR / "sr_xray.onnx"
    before = sha256_file(sr_path)
    caps, y, _ = load_liveness_dir(small_set)
    imgs = run_sr(session(sr_path), caps)
    y_rev = y.copy()
    y_rev[:2] = 0                      # reviewer: the first two "bona fide" were attacks
    net = load_from_onnx(DEFAULT_MODELS_DIR / "liveness_xray.onnx")
    assert (predict(net, imgs[:2]) > 0.5).all()
    net, hist = train_liveness(imgs, y_rev, steps=25, batch=8, lr_rate=1e-3, model=net,
                               log=lambda *_: None)
    p = predict(net, imgs)
    assert (p[:2] < 0.5).all()                             # now classified as the reviewer said
    assert ((p[2:] > 0.5) == (y_rev[2:] == 1)).all()
    assert {"cross_entropy", "second_loss_01"} <= set(hist[-1])
    assert sha256_file(sr_path) == before

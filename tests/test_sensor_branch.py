"""The gate's sensor branch (seed 001): capture -> SR x2 -> liveness through onnxruntime, the
strict threshold rule, frame mapping, the claim-8 second loss, and claim 9 (review, then
fine-tuning only the liveness model)."""
import json

import numpy as np
import pytest

from device.eval.liveness import read_grey
from device.models.model import DEFAULT_MODELS_DIR
from device.models.sensor_branch import SensorBranch, is_live, model_names, to_capture
from device.synth.attacks_composite import NIR_COMPOSITE_SPECIES, XRAY_COMPOSITE_SPECIES

COMPOSITE = {"xray": XRAY_COMPOSITE_SPECIES, "nir": NIR_COMPOSITE_SPECIES}

MAN = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]


def test_live_only_strictly_above_threshold():
    assert not is_live(0.6, 0.6)
    assert is_live(np.nextafter(0.6, 1), 0.6)
    assert list(is_live([0.2, 0.6, 0.7], 0.6)) == [False, False, True]


def test_frames_are_mapped_to_the_capture():
    f = np.zeros((288, 352), np.uint8)
    f[:, 32:320] = 255                                   # the centre 288x288 square
    c = to_capture(f)
    assert c.shape == (128, 128) and c.dtype == np.float32 and c.min() == 1.0
    g = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    assert np.array_equal(to_capture(g), g)
    assert to_capture(np.dstack([f, f, f])).shape == (128, 128)
    with pytest.raises(ValueError):
        model_names("ultrasound")


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_shipped_entries(sensor):
    for precision in ("fp32", "int8"):
        sr, lv = model_names(sensor, precision)
        e = MAN[lv]
        assert 0 < e["threshold"] < 1 and e["sr_model"] == sr
        assert (DEFAULT_MODELS_DIR / sr).stat().st_size < 20 * 2 ** 20
        assert (DEFAULT_MODELS_DIR / lv).stat().st_size < 20 * 2 ** 20
    h = MAN[f"liveness_{sensor}.onnx"]["metrics"]["heldout"]
    # a regression floor for the shipped models on the first species (a frame alone), not the
    # issue's target. The composite species are judged at the gate, with the binding
    # (docs/results.md, "Attack species as whole presentations"). NIR: in the world whose
    # frames show the palm print, the printed photo's frame-alone rate is 11.25 % on the
    # held-out seed (the palm-line binding denies most of the rest at the gate).
    first = [sp for sp in h["apcer"] if sp not in COMPOSITE[sensor]]
    assert first and max(h["apcer"][sp] for sp in first) <= 0.15 and h["bpcer"] <= 0.10
    if sensor == "nir":
        assert h["real_nir_bpcer"] <= 0.01


@pytest.fixture(scope="module")
def nir_set(tmp_path_factory):
    from device.synth.sensor_sets import write_liveness
    d = tmp_path_factory.mktemp("liven")
    write_liveness(d, "nir", 8, 4, seed=4244)
    return d


def test_branch_end_to_end(nir_set):
    b = SensorBranch("nir")
    assert b.threshold == MAN["liveness_nir.onnx"]["threshold"]
    frame = read_grey(sorted((nir_set / "bona_fide").glob("*.png"))[0])
    r = b(frame)
    assert r.sr.shape == (256, 256) and 0 <= r.p_live <= 1
    assert r.live == (r.p_live > b.threshold)
    # a threshold equal to the score is not live
    assert not SensorBranch("nir", threshold=r.p_live)(frame).live
    # the first species (a frame alone refuses them); the composite species are judged at the
    # gate with the binding (docs/results.md)
    trained = (set(MAN["liveness_nir.onnx"]["metrics"]["heldout"]["n_attack"])
               - set(COMPOSITE["nir"])) | {"bona_fide"}
    files = [f for f in sorted(nir_set.rglob("*.png"))
             if f.parent.name in trained or "bona_fide" in f.parts]
    p, sr = b.scores([read_grey(f) for f in files])
    truth = np.array(["bona_fide" in str(f) for f in files])
    assert sr.shape == (len(files), 256, 256)
    assert np.mean(is_live(p, b.threshold) == truth) >= 0.95


def test_second_loss_claim8():
    torch = pytest.importorskip("torch")  # noqa: F841
    from tools.train.liveness_model import second_loss
    assert list(second_loss([1, 0, 1], [1, 1, 0])) == [0, 1, 1]
    assert list(second_loss([1], [1], 0.5, 2.0)) == [0.5]
    with pytest.raises(ValueError):
        second_loss([1], [0], 1.0, 1.0)


def test_onnx_round_trip_for_fine_tuning():
    torch = pytest.importorskip("torch")
    from tools.train.liveness_model import Softmaxed, load_from_onnx, onnx_mirror
    from tools.train.sensor_quant import session
    path = DEFAULT_MODELS_DIR / "liveness_xray.onnx"
    net = Softmaxed(load_from_onnx(path), onnx_mirror(path))
    x = np.random.default_rng(0).random((2, 1, 256, 256), np.float32)
    ref = session(path).run(None, {"image": x})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert np.allclose(got, ref, atol=1e-4)


def test_finetune_weights_shares_and_hard_mining():
    from tools.train.sensor import _finetune_weights
    cls = np.array(["bona_fide"] * 10 + ["printed_photo"] * 10 + ["screen_replay"] * 10
                   + ["bona_fide"] * 10)
    real = np.zeros(40, bool)
    real[30:] = True
    mine = np.zeros(40, bool)
    mine[[0, 1, 10, 11, 12, 13, 20, 21]] = True
    scores = np.array([0.9, 0.2, 0.1, 0.8, 0.3, 0.7, 0.05, 0.01])   # p(live) of the mined set
    w, hard = _finetune_weights(cls, real, mine, scores, "printed_photo", 0.6, 0.5, 3.0)
    assert np.isclose(w.sum(), 1)
    # hardest half of every class of the mined set: lowest p(live) bona fide, highest attacks
    assert sorted(np.where(hard)[0]) == [1, 11, 13, 20]
    assert np.isclose(w[1] / w[0], 4.0)
    # shares before hard mining: 0.25 synthetic / 0.25 real bona fide, 0.3 / 0.2 attacks
    w0, _ = _finetune_weights(cls, real, mine, scores, "printed_photo", 0.6, 0.5, 0.0)
    assert np.isclose(w0[:10].sum(), 0.25) and np.isclose(w0[30:].sum(), 0.25)
    assert np.isclose(w0[10:20].sum(), 0.3) and np.isclose(w0[20:30].sum(), 0.2)


def test_widened_model_computes_the_same_function():
    torch = pytest.importorskip("torch")
    from tools.train.liveness_model import LivenessNet, fused, widened
    net = fused(LivenessNet({"stem": "s2"}).eval())
    wide = widened(net, ((12, True), (24, True), (32, True), (48, True), (80, False)), seed=3)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x), wide(x), atol=1e-5)
    assert wide.config["plan"][-1] == (80, False)
    with pytest.raises(ValueError):            # narrower is not a widening
        widened(net, ((4, True), (16, True), (32, True), (48, True), (64, False)))
    with pytest.raises(ValueError):            # BatchNorm must be folded first
        widened(LivenessNet(), net.config["plan"])


def test_matched_pairs_copy_their_own_live_capture(tmp_path):
    from device.synth.sensor_sets import write_matched_pairs
    from tools.train.sensor import load_liveness_dir
    man = write_matched_pairs(tmp_path, "xray", "photo", 3, seed=4321)
    caps, y, cls = load_liveness_dir(tmp_path)
    assert list(cls) == ["bona_fide"] * 3 + ["photo"] * 3 and list(y) == [1] * 3 + [0] * 3
    assert [f["pair"] for f in man["files"]] == [0, 0, 1, 1, 2, 2]
    # each photo shows the hand and pose of its own live capture (coarse shape: blurred,
    # border cut, where the sheet edge and exposure differ)
    import cv2
    g = np.array([cv2.GaussianBlur(c.astype(np.float32), (0, 0), 3)[16:-16, 16:-16].ravel()
                  for c in caps])
    g = (g - g.mean(1, keepdims=True)) / g.std(1, keepdims=True)
    c = g[3:] @ g[:3].T / g.shape[1]
    assert (np.argmax(c, axis=1) == [0, 1, 2]).all()
    with pytest.raises(ValueError):
        write_matched_pairs(tmp_path / "x", "xray", "printed_photo", 1, seed=1)


def test_continue_rounds_from_the_shipped_file(tmp_path, monkeypatch):
    """``--continue-rounds``: a round from the shipped liveness file on tiny sets, SR
    unchanged, both liveness files and their manifest entries rewritten."""
    pytest.importorskip("torch")
    import shutil

    from tools.manifest import sha256_file
    from tools.train import sensor as T
    models = tmp_path / "models"
    models.mkdir()
    man = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())
    names = ["sr_xray.onnx", "sr_xray_int8.onnx", "liveness_xray.onnx", "liveness_xray_int8.onnx"]
    for n in names:
        shutil.copy(DEFAULT_MODELS_DIR / n, models / n)
    (models / "manifest.json").write_text(json.dumps(
        {"format": 1, "models": {n: man["models"][n] for n in names}}))
    tiny = dict(T.CONFIG["quick"], occlusion=False, calibration_frames=4,
                liveness={"xray": {"train": [(1001, 6, 2)], "val": [(2002, 6, 3)],
                                   "test": [(3003, 6, 3)]}},
                finetune4={"xray": {"pool_only": True, "pairs": (("photo", 1012, 4),),
                                    "mine": (1010, 6, 2), "mine_all": True, "steps": 3,
                                    "lr": 1e-5, "seed": 1, "photo_share": 0.7, "hard_q": 0.1,
                                    "hard_extra": 4.0, "widen": ((8, True), (16, True),
                                                                 (32, True), (48, True),
                                                                 (72, False))}})
    monkeypatch.setitem(T.CONFIG, "tiny", tiny)
    sr_before = sha256_file(models / "sr_xray.onnx")
    rep = T.continue_rounds("xray", ["finetune4"], tmp_path / "work", models, "test", "tiny")
    got = json.loads((models / "manifest.json").read_text())["models"]
    assert sha256_file(models / "sr_xray.onnx") == sr_before
    for n in ("liveness_xray.onnx", "liveness_xray_int8.onnx"):
        assert got[n]["sha256"] == sha256_file(models / n) != man["models"][n]["sha256"]
        assert 0 < got[n]["threshold"] < 1
    e = got["liveness_xray.onnx"]
    # numbered after the rounds the file's entry already reports (not by the round's name)
    before = [int(r[5:]) for r in man["models"]["liveness_xray.onnx"]["metrics"]["finetune"]
              if r.startswith("round")]
    k = max(before) + 1
    assert sorted(int(r[5:]) for r in e["metrics"]["finetune"] if r.startswith("round")) \
        == sorted(before) + [k]
    assert f"a {T._ORDINALS[k]} round" in e["data"] and e["data"].count("widened") == 1
    assert e["metrics"]["finetune"][f"round{k}"]["pool"]["pool"]["photo"] == 4 + 2
    assert "(72, False)" in e["notes"]
    assert rep["liveness_int8"]["max_rate_difference_pp"] >= 0
    with pytest.raises(ValueError):             # no such round in the profile
        T.continue_rounds("xray", ["finetune9"], tmp_path / "work", models, "test", "tiny")

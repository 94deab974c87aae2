"""The sensor stage's second look (device/gate/second_look.py): the pure band and fusion
functions, the signed band's check at load, and a recorded presentation through the gate's
sensor stage -- a live hand denied on frame 0 opened by its re-captures, an attack that stays
denied, a burst without further frames decided as before, a missing re-capture denied."""
from types import SimpleNamespace

import numpy as np
import pytest

from device.gate.decision import Decision, Deny
from device.gate.second_look import (DENIED, FAILED, OPENED, SecondLook, band_in_force,
                                     fused_live, fused_p, logit, sigmoid, unsure)
from device.models.model import ModelError, entry_band
from device.models.sensor_branch import NOT_LIVE, Presentation


def test_logit_sigmoid_roundtrip_and_clip():
    for p in (0.01, 0.3, 0.5, 0.9):
        assert sigmoid(logit(p)) == pytest.approx(p)
    assert np.isfinite(logit(0.0)) and np.isfinite(logit(1.0))
    assert np.isnan(logit(float("nan")))


def test_unsure_p_live_band():
    t = 0.5                                     # logit 0
    assert unsure(sigmoid(-0.9), t, 1.0)
    assert not unsure(sigmoid(-1.1), t, 1.0)    # outside the band
    assert unsure(0.5, t, 1.0)                  # equality is denied: unsure
    assert not unsure(0.6, t, 1.0)              # passed: no look
    assert not unsure(sigmoid(-0.5), t, 0.0)    # band 0: off
    assert not unsure(None, t, 1.0) and not unsure(float("nan"), t, 1.0)


def test_unsure_phantom_denies_above():
    t = 0.6
    z = logit(t)
    assert unsure(sigmoid(z + 0.5), t, 1.0, above_denies=True)
    assert not unsure(sigmoid(z + 1.5), t, 1.0, above_denies=True)
    assert not unsure(0.6, t, 1.0, above_denies=True)          # not above: passed


def test_fused_live_mean_logit():
    live, pl, pp = fused_live([sigmoid(-0.5), sigmoid(1.0), sigmoid(1.0)], 0.5)
    assert live and pl == pytest.approx(sigmoid(0.5)) and pp is None
    assert not fused_live([sigmoid(-3), sigmoid(1), sigmoid(1)], 0.5)[0]
    assert not fused_live([0.9, None, 0.9], 0.5)[0]             # a missing frame: denied
    assert not fused_live([0.9, float("nan"), 0.9], 0.5)[0]
    # the phantom check fused too: its mean logit must not be above its threshold
    assert fused_live([0.9] * 3, 0.5, [0.7, 0.4, 0.4], 0.6)[0]
    assert not fused_live([0.9] * 3, 0.5, [0.9, 0.9, 0.4], 0.6)[0]
    assert not fused_live([0.9] * 3, 0.5, [0.1, None, 0.1], 0.6)[0]
    assert np.isnan(fused_p([]))


def test_band_in_force_only_narrows():
    assert band_in_force(2.0) == 2.0
    assert band_in_force(2.0, max_band=1.0) == 1.0
    assert band_in_force(2.0, max_band=3.0) == 2.0              # never wider than signed
    assert band_in_force(2.0, enabled=False) == 0.0
    assert band_in_force(0.0, max_band=3.0) == 0.0


def test_entry_band_checked_at_load():
    assert entry_band({}, "x") == 0.0
    assert entry_band({"second_look_band": 1.5}, "x") == 1.5
    for bad in (-1.0, 3.5, "1", True, float("nan")):
        with pytest.raises(ModelError):
            entry_band({"second_look_band": bad}, "x")


def test_config_keys():
    from device.config import load_config
    c = load_config(None)
    assert c.liveness.second_look is True and c.liveness.second_look_max_band is None
    c = load_config(None, liveness={"second_look": False, "second_look_max_band": 1.0})
    assert c.liveness.second_look is False and c.liveness.second_look_max_band == 1.0


def test_audit_allows_second_look():
    from device.store.audit import ALLOWED
    assert "second_look" in ALLOWED


# ---------------------------------------------------------------- through the sensor stage
THR = 0.5


class _Branch:
    """A sensor branch whose p(live) is the frame's mean grey level / 255 (a frame of 0s: no
    hand); X-ray-like when ``phantom`` is given (p(phantom) = its value for every image)."""

    def __init__(self, band=1.0, phantom=None, phantom_band=1.0):
        self.threshold, self.second_look_band = THR, band
        self.phantom = None
        if phantom is not None:
            self.phantom = lambda im: np.full(len(im), phantom, np.float64)
            self.phantom.threshold, self.phantom.second_look_band = 0.6, phantom_band
        self.judged = 0

    def judge(self, frames):
        out = []
        for f in frames:
            self.judged += 1
            if float(np.mean(f)) == 0.0:
                out.append(Presentation(False, None, THR, None, "no_hand_in_sensor"))
                continue
            p = float(np.mean(f)) / 255.0
            out.append(Presentation(p > THR, p, THR, np.zeros((4, 4), np.float32),
                                    None if p > THR else NOT_LIVE))
        return out

    def __call__(self, frame):
        return self.judge([frame])[0]


def _frame(p):
    return np.full((16, 16), int(round(p * 255)), np.uint8)


def _stage(branch, burst, enabled=True):
    """Pipeline._sensor on a stand-in pipeline with the real SecondLook."""
    from device.gate.pipeline import Pipeline
    cfg = SimpleNamespace(liveness=SimpleNamespace(second_look=enabled,
                                                   second_look_max_band=None))
    me = SimpleNamespace(sensor=SimpleNamespace(branch=branch, __call__=None),
                         second_look=SecondLook(cfg))
    me.sensor = _Callable(branch)
    out = Decision()
    try:
        Pipeline._sensor(me, burst, out)
        return out, None
    except Deny as d:
        return out, d


class _Callable:
    def __init__(self, branch):
        self.branch = branch

    def __call__(self, frame):
        return self.branch(frame)


def _recorded(tmp_path, f0, extra, name="p"):
    from device.sources.replay import Burst, read_burst, write_burst
    views = [np.zeros((8, 8, 3), np.uint8)]
    d = write_burst(tmp_path / name, Burst(views, f0, {"person": 1}), sensor_frames=extra)
    return read_burst(d)


def test_recorded_live_hand_opened_by_the_second_look(tmp_path):
    # frame 0 just under the threshold (logit -0.3), the re-captures well above it
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.8), _frame(0.75)])
    assert (tmp_path / "p" / "sensor_2.png").exists()
    br = _Branch()
    out, deny = _stage(br, b)
    assert deny is None and out.second_look == OPENED and out.live
    assert out.p_live > THR and br.judged == 3


def test_attack_stays_denied(tmp_path):
    b = _recorded(tmp_path, _frame(sigmoid(-0.5)), [_frame(0.2), _frame(0.3)])
    out, deny = _stage(_Branch(), b)
    assert deny.reason == NOT_LIVE and out.second_look == DENIED
    assert out.p_live == pytest.approx(sigmoid(-0.5), abs=0.01)    # frame 0's, as today


def test_outside_the_band_or_passed_no_look(tmp_path):
    b = _recorded(tmp_path, _frame(0.1), [_frame(0.9), _frame(0.9)])   # logit -2.2 > 1.0
    br = _Branch()
    out, deny = _stage(br, b)
    assert deny.reason == NOT_LIVE and out.second_look is None and br.judged == 1
    b = _recorded(tmp_path, _frame(0.9), [_frame(0.0), _frame(0.0)], "q")
    out, deny = _stage(_Branch(), b)
    assert deny is None and out.second_look is None


def test_no_further_frames_is_todays_decision(tmp_path):
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), None)
    assert b.more_sensor is None
    out, deny = _stage(_Branch(), b)
    assert deny.reason == NOT_LIVE and out.second_look is None
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9), _frame(0.9)], "off")
    out, deny = _stage(_Branch(), b, enabled=False)        # [liveness] second_look = false
    assert deny.reason == NOT_LIVE and out.second_look is None


def test_missing_or_failed_recapture_denies(tmp_path):
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9)])      # sensor_2.png missing
    out, deny = _stage(_Branch(), b)
    assert deny.reason == NOT_LIVE and out.second_look == FAILED
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9), _frame(0.0)], "nohand")
    out, deny = _stage(_Branch(), b)
    assert deny.reason == NOT_LIVE and out.second_look == FAILED

    def broken(k):
        raise OSError("camera gone")
    b.more_sensor = broken
    out, deny = _stage(_Branch(), b)
    assert deny.reason == NOT_LIVE and out.second_look == FAILED


def test_phantom_refusal_in_band_takes_a_look(tmp_path):
    b = _recorded(tmp_path, _frame(0.9), [_frame(0.9), _frame(0.9)])
    br = _Branch(phantom=0.65)                # logit 0.62 vs threshold 0.41: in a band of 1
    br_judge = br.judge

    def judge(frames):                        # the stage's phantom refusal on frame 0
        res = br_judge(frames)
        for r in res:
            if r.p_live is not None and r.live:
                r.p_phantom, r.live, r.reason = 0.65, False, NOT_LIVE
        return res
    br.judge = judge
    out, deny = _stage(br, b)
    assert deny.reason == NOT_LIVE and out.second_look == DENIED   # every frame a phantom
    br2 = _Branch(phantom=0.65, phantom_band=0.1)                   # outside a narrow band
    br2.judge = judge
    out, deny = _stage(br2, b)
    assert deny.reason == NOT_LIVE and out.second_look is None


def test_calibration_flattens_the_recaptures():
    from device.gate.calibration_stage import CalibrationStage
    from device.sources.replay import Burst
    st = CalibrationStage.__new__(CalibrationStage)
    st.correction = SimpleNamespace(cal=SimpleNamespace(results={"flatfield": {}}),
                                    correct=lambda k, v: v, flatten=lambda s: s // 2)
    b = Burst([np.zeros((4, 4, 3), np.uint8)], _frame(0.8), {},
              lambda k: [_frame(0.8)] * k)
    c = st.apply(b)
    assert int(c.sensor[0, 0]) == 204 // 2
    assert [int(f[0, 0]) for f in c.more_sensor(2)] == [102, 102]


def test_set_recapture_renders_lazily_and_checks_frame0(tmp_path):
    """A synthetic set's re-captures (device/eval/second_look_frames.py): rendered only when
    asked, frame 0 of the re-render equal to the stored sensor.png (else refused)."""
    import cv2

    from device.eval.liveness_enrol import read_set
    from device.eval.second_look_frames import Frame0Mismatch, SetRecapture, check_mismatches
    from device.sources.replay import read_burst
    from device.synth.presentation_sets import write_presentations
    write_presentations(tmp_path, "xray", 1, 1, seed=4243, people=3)
    info = read_set(tmp_path)
    rec = SetRecapture(tmp_path, info, "xray")
    folder = tmp_path / "bona_fide" / "00000"
    b = read_burst(folder)
    more = rec("bona_fide", folder, b.sensor)
    assert rec.calls == 0                              # lazily: nothing rendered yet
    frames = more(2)
    assert rec.calls == 1 and len(frames) == 2
    assert all(f.dtype == np.uint8 and f.shape == b.sensor.shape for f in frames)
    assert not any(np.array_equal(f, b.sensor) for f in frames)    # re-drawn frames
    check_mismatches(rec)
    wrong = rec("bona_fide", folder, cv2.flip(b.sensor, 1))
    with pytest.raises(Frame0Mismatch):
        wrong(2)
    with pytest.raises(ValueError):
        check_mismatches(rec)


def test_shipped_bands_are_signed_and_loaded():
    """The shipped manifest's second_look_band fields are in range, and the loaded branch and
    phantom check carry them (the gate's bands come from the signed entries only)."""
    import json

    from conftest import SHIPPED, shipped_sensor_models_listed
    from device.models.sensor_branch import SensorBranch
    man = json.loads((SHIPPED / "manifest.json").read_text())["models"]
    for name, e in man.items():
        if name.startswith(("liveness_", "phantom_")):
            assert 0.0 <= entry_band(e, name) <= 3.0
    if not shipped_sensor_models_listed("xray"):
        pytest.skip("no shipped X-ray sensor models")
    br = SensorBranch("xray", "int8", SHIPPED, threads=1)
    assert br.second_look_band == entry_band(man["liveness_xray_int8.onnx"], "x")
    assert br.phantom.second_look_band == entry_band(man["phantom_xray_int8.onnx"], "x")


def test_frame0_phantom_outside_its_band_takes_no_look(tmp_path):
    # X-ray: p(live) of frame 0 unsure, so the stage never ran its phantom check; frame 0's
    # p(phantom) lies far above its threshold (outside the phantom band): a look must not let
    # two clean re-captures average it away -- no re-capture (no dose), denied as before
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9), _frame(0.9)])
    br = _Branch(phantom=0.0, phantom_band=1.0)
    scores = {0: 0.9999}                          # frame 0 a clear phantom, re-captures clean

    def phantom(im):                              # frame 0 first where it is in the batch
        v = np.full(len(im), 0.01)
        if len(im) in (1, 3):
            v[0] = scores[0]
        return v
    phantom.threshold, phantom.second_look_band = 0.6, 1.0
    br.phantom = phantom
    asked = []
    more = b.more_sensor
    b.more_sensor = lambda k: asked.append(k) or more(k)
    out, deny = _stage(br, b)
    assert deny is not None and deny.reason == NOT_LIVE
    assert out.second_look is None and not asked and not out.live
    # within the phantom band it is a look as before (the fused scores decide)
    scores[0] = sigmoid(logit(0.6) + 0.5)
    out, deny = _stage(br, b)
    assert deny is None and out.second_look == OPENED and asked == [2]


def _chain(branch, burst, cancel_during_frame0=False, t0_ago=0.0):
    """Pipeline._sensor_chain on a stand-in pipeline: the sensor thread's own path."""
    import threading
    import time

    from device.gate.pipeline import Pipeline, _SensorJob
    from device.gate.stage_clock import StageClock
    cfg = SimpleNamespace(liveness=SimpleNamespace(second_look=True, second_look_max_band=None),
                          timeouts={"sensor": 1000, "binding": 1000, "regions": 1000})
    me = SimpleNamespace(cfg=cfg, binding=None, second_look=SecondLook(cfg),
                         sensor=_Callable(branch))
    me._sensor = lambda *a, **k: Pipeline._sensor(me, *a, **k)
    job = _SensorJob(Decision(), threading.Event(), time.perf_counter() - t0_ago)
    if cancel_during_frame0:          # the main thread gave up while frame 0 was judged
        judge = branch.judge

        def slow(frames):
            job.cancelled.set()
            return judge(frames)
        branch.judge = slow
    Pipeline._sensor_chain(me, burst, StageClock(cfg.timeouts), job)
    return job


def test_no_recapture_once_the_decision_gave_up_on_the_sensor_stage(tmp_path):
    # the main thread denied timeout:sensor (job cancelled), or the sensor stage's limit from
    # the chain's submission has passed: the look must not re-capture (an X-ray dose after
    # the decision) nor hold the sensor thread; it ends failed, denied
    for kw in ({"cancel_during_frame0": True}, {"t0_ago": 5.0}):
        b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9), _frame(0.9)],
                      f"c{len(kw)}{list(kw)[0]}")
        asked = []
        more = b.more_sensor
        b.more_sensor = lambda k: asked.append(k) or more(k)
        job = _chain(_Branch(), b, **kw)
        assert not asked, kw
        assert job.deny is not None and job.deny.reason == NOT_LIVE
        assert job.out.second_look == FAILED and not job.out.live
    # in time: the look as before
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9), _frame(0.9)], "intime")
    job = _chain(_Branch(), b)
    assert job.deny is None and job.out.second_look == OPENED


@pytest.mark.parametrize("sensor,liveness,narrow", [
    ("xray", {}, None), ("nir", {}, None),
    ("xray", {"second_look_max_band": 1.5}, 1.5), ("nir", {"second_look": False}, 0.0)])
def test_status_shows_the_second_look_bands_in_force(tmp_path, capsys, sensor, liveness,
                                                     narrow):
    # `palmgate status` shows the signed thresholds of the liveness and phantom files: the
    # signed bands around them (narrowed by the configuration) are security numbers too
    import json

    from device.cli import main
    from device.models.model import DEFAULT_MODELS_DIR
    from tests.conftest import gate_config, write_toml
    cfg = gate_config(tmp_path, DEFAULT_MODELS_DIR, gate={"precision": "int8"},
                      liveness=dict(liveness, sensor=sensor))
    main(["status", "--config", str(write_toml(tmp_path / "p.toml", cfg))])
    models = json.loads(capsys.readouterr().out)["models"]
    files = [n for n in models if n.startswith(("liveness_", "phantom_"))]
    assert len(files) == (2 if sensor == "xray" else 1)
    for n in files:
        signed = models[n]["second_look_band_signed"]
        assert signed == 3.0
        assert models[n]["second_look_band"] == (signed if narrow is None else narrow)


def test_recaptures_of_another_shape_or_results_missing_deny(tmp_path):
    # a re-capture must be a frame like frame 0 (its shape): a frame of another size or
    # channels is not the same sensor's re-capture and would be silently resized; and the
    # branch must judge every re-captured frame (never fuse fewer than three)
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)),
                  [np.full((8, 8), 230, np.uint8), np.full((8, 8), 230, np.uint8)])
    out, deny = _stage(_Branch(), b)
    assert deny is not None and deny.reason == NOT_LIVE and out.second_look == FAILED
    b = _recorded(tmp_path, _frame(sigmoid(-0.3)), [_frame(0.9), _frame(0.9)], "short")
    br = _Branch()
    judge = br.judge
    br.judge = lambda frames: judge(frames)[:1]          # one result for two frames
    out, deny = _stage(br, b)
    assert deny is not None and deny.reason == NOT_LIVE and out.second_look == FAILED

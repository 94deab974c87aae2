"""device.eval.sensor_bursts: the burst hook reproduces the capture, and the pure summaries."""
from __future__ import annotations

import numpy as np

from device.eval import burst_frames as F
from device.eval import sensor_bursts as B
from device.eval.check_margins import passes
from device.synth import sensor as S
from device.synth.attacks import render_attack
from device.synth.hand_geometry import sample_hand_geometry

SIZE = (64, 64)
TH = {"thr": 0.5, "max_score": 10.0, "min_agreement": 0.8, "max_off": 0.05}


def _f(p, b=0.0, a=0.9, s=0.0):
    return {"presence": None, "p_live": p, "binding": b, "agreement": a, "size_off": s}


def test_hook_returns_frame0_and_passes_nested_renders_through():
    geom = sample_hand_geometry(np.random.default_rng(3))
    plain = render_attack("photo", geom, np.random.default_rng(2), "xray", SIZE)
    rng = np.random.default_rng(2)
    with F.sensor_bursts(2, [1, 7]) as got:
        f = render_attack("photo", geom, rng, "xray", SIZE)   # a radiograph inside: content
    assert S.render_scene is not None and S.render_scene.__name__ == "render_scene"
    assert len(got) == 1 and len(got[0]) == 3
    assert f.tobytes() == plain.tobytes() == got[0][0].tobytes()


def test_to_u8_as_write_burst():
    x = np.array([[0.0, 0.5, 1.0, 1.2]], np.float32)
    assert F.to_u8(x).tolist() == [[0, 128, 255, 255]]


def test_pick():
    rows = [dict(_f(0.9), **{"class": "bona_fide"}) for _ in range(10)]
    rows += [dict(_f(0.1), **{"class": "bona_fide"})]
    rows += [dict(_f(0.1), **{"class": "photo"}), dict(_f(0.1, b=20), **{"class": "photo"})]
    got = B.pick(rows, TH, 5)
    assert sum(r["class"] == "bona_fide" for r in got) == 6
    assert sum(r["class"] == "photo" for r in got) == 1


def test_summary_and_rules():
    rows = [
        {"class": "bona_fide", "folder": "a/00001", "frames": [_f(0.4), _f(0.9), _f(0.8),
                                                              _f(0.7), _f(0.9)]},
        {"class": "bona_fide", "folder": "a/00002", "frames": [_f(0.4), _f(0.3), _f(0.2),
                                                              _f(0.45), _f(0.3)]},
        {"class": "bona_fide", "folder": "a/00003", "frames": [_f(0.9)] * 5},
        {"class": "photo", "folder": "b/00001", "frames": [_f(0.45), _f(0.55), _f(0.6),
                                                           _f(0.1), _f(0.1)]},
    ]
    s = B.burst_summary(rows, TH)
    assert s["bona_fide_denied"]["n"] == 2
    assert s["bona_fide_denied"]["extra_frames_passing_all"] == {"0": 1, "1": 0, "2": 0,
                                                                 "3": 0, "4": 1}
    assert s["bona_fide_passed"]["n"] == 1
    assert s["photo"]["extra_frames_passing_all"]["2"] == 1
    r = B.burst_rules(rows, TH)
    assert r["single"]["bona_fide"]["denied"] == 2
    assert r["mean_logit_3"]["bona_fide"]["denied"] == 1     # (0.4, 0.9, 0.8) fuses live
    assert r["median_3"]["bona_fide"]["denied"] == 1
    assert r["median_3"]["photo"]["pass_all"] == 1           # median (0.45, 0.55, 0.6)


def test_fused_mean_logit():
    fr = [_f(0.5), _f(0.5), _f(0.5), _f(0.0)]
    assert abs(B.fused(fr, "mean_logit_3")["p_live"] - 0.5) < 1e-9


def test_denied_on_redraws_and_values():
    rows = [{"class": "bona_fide", "folder": "a/00001",
             "frames": [_f(0.4), _f(0.9), _f(0.8), _f(0.7), _f(0.9)]},
            {"class": "bona_fide", "folder": "a/00002",
             "frames": [_f(0.9, b=20), _f(0.9, b=20), _f(0.9, b=20), _f(0.9, b=2),
                        _f(0.9, b=20)]}]
    g = B.burst_summary(rows, TH)["bona_fide_denied"]
    assert g["denied_on_redraws"] == {"most": 1, "half": 0, "few": 1}
    pp = {p["folder"]: p for p in g["per_presentation"]}
    assert pp["a/00001"]["denied_by_f0"] == ["live"]
    assert pp["a/00002"]["values"]["binding"] == [20, 20, 20, 2, 20]


def test_gate_passes_releases_the_size_term_as_the_gate_does():
    r = dict(_f(0.9, b=30.0), size=25.0)               # 30 > 10, 30 - 25 <= 10
    assert passes(r, TH)["binding"]
    assert not passes(dict(r, agreement=0.5), TH)["binding"]   # bone patch fails
    assert not passes(dict(r, size_off=0.2), TH)["binding"]    # hand size fails
    assert not passes(dict(r, size=5.0), TH)["binding"]        # 25 > 10
    assert not passes(_f(0.9, b=30.0), TH)["binding"]          # no term: NIR


def test_median_3_releases_on_the_median_score_without_the_term():
    fr = [dict(_f(0.9, b=b), size=s) for b, s in ((30, 25), (40, 35), (12, 0.0))]
    row = B.fused(fr, "median_3")
    assert row["binding"] == 30 and row["binding_wo_size"] == 5
    assert passes(row, TH)["binding"]


def test_pick_samples_bona_fide_the_gate_opens_with_the_others():
    # a bona fide whose binding the gate releases (size term; bone patch and hand size pass)
    # is one the gate opens: it belongs to the sampled pool, not to the "denied" ones that are
    # always picked (else the passing sample over-represents released hands)
    rows = [dict(_f(0.9), **{"class": "bona_fide", "folder": f"p/{i:05d}"}) for i in range(10)]
    rows += [dict(_f(0.9, b=30.0), size=25.0, **{"class": "bona_fide", "folder": "p/00010"})]
    got = B.pick(rows, TH, 5)
    assert len(got) == 5
    assert "p/00010" not in [r["folder"] for r in got]

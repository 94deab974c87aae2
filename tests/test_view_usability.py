"""The per-view usability check (device/vision/view_usability.py): a view with no palm texture
is dropped before the views are fused -- at the gate (Pipeline._regions) and in ``palmgate
evaluate`` alike -- and the evaluation's fusion and pair rules see only the usable views."""
import numpy as np
import pytest

from device.config import load_config
from device.eval.capture_scores import combine_view_pairs, fuse_captures
from device.eval.degrade import exposure
from device.vision.quality import PROMPTS, QualityIssue
from device.vision.view_usability import line_contrast, usable_rois, usable_views, view_check

Q = load_config(None).quality


def palm_like(seed=0):
    import cv2
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.random((128, 128)).astype(np.float32), (0, 0), 2)
    return cv2.normalize(x, None, 60, 190, cv2.NORM_MINMAX).astype(np.uint8)


def test_flat_saturated_and_black_views_are_dropped_textured_kept():
    good = palm_like()
    view_check(good, Q)
    assert line_contrast(np.full((128, 128), 120, np.uint8)) == 0.0
    for bad, reason in ((np.full((128, 128), 120, np.uint8), "no_texture"),
                        (np.zeros((128, 128), np.uint8), "no_texture"),
                        (np.full((128, 128), 255, np.uint8), "too_bright")):
        with pytest.raises(QualityIssue) as e:
            view_check(bad, Q)
        assert e.value.reason == reason and e.value.reason in PROMPTS
    # an over-exposure that clips the whole region (device/eval/degrade.py)
    over = np.clip(good.astype(np.float32) * 3, 0, 255).astype(np.uint8)
    with pytest.raises(QualityIssue):
        view_check(over, Q)
    keep, issues = usable_views([good, np.full((128, 128), 90, np.uint8), good], Q)
    assert keep == [0, 2] and [i.reason for i in issues] == ["no_texture"]
    rois, why = usable_rois([good, np.zeros((128, 128), np.uint8)], [QualityIssue("blurred")], Q)
    assert len(rois) == 1 and [i.reason for i in why] == ["no_texture", "blurred"]
    assert exposure(good, np.random.default_rng(0)).shape == good.shape


def test_the_check_can_be_switched_off_and_scales_with_region_size():
    off = load_config(None, quality={"min_texture": 0.0, "max_clipped": 1.0}).quality
    view_check(np.full((128, 128), 120, np.uint8), off)
    import cv2
    big = cv2.resize(palm_like(1), (256, 256), interpolation=cv2.INTER_CUBIC)
    assert line_contrast(big) == pytest.approx(line_contrast(palm_like(1)), rel=0.25)


def test_real_palm_regions_pass_the_check():
    from device.eval.recognition import load_rois
    from device.sources.layout import scan
    from tools.paths import real_dir
    try:
        root = real_dir("tongji")
    except FileNotFoundError:
        pytest.skip("no Tongji data")
    refs = scan(root)[:200:7]
    rois, _ = load_rois(refs)
    keep, issues = usable_views(list(rois), Q)
    assert len(keep) == len(refs), [str(i) for i in issues]


def test_evaluation_fuses_and_pairs_only_usable_views():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((4, 25, 49, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    mem = np.array([[0, 1], [2, 3]])
    ok = np.array([[True, False], [False, False]])
    caps = fuse_captures(v, mem, "mean", usable=ok)
    assert np.allclose(caps[0], v[0], atol=1e-6)          # view 1 dropped
    s = np.arange(16, dtype=float).reshape(4, 4)
    both = np.array([[True, True], [True, False]])
    best = combine_view_pairs(s, np.array([0]), np.array([1]), mem, mem, "best", both, both)
    mean = combine_view_pairs(s, np.array([0]), np.array([1]), mem, mem, "mean", both, both)
    assert best.tolist() == [s[1, 2]] and mean.tolist() == [(s[0, 2] + s[1, 2]) / 2]
    none = combine_view_pairs(s, np.array([0]), np.array([1]), mem, mem, "best", both,
                              np.zeros((2, 2), bool))
    assert none.tolist() == [-np.inf]


def test_the_gate_drops_unusable_views_before_the_fusion():
    """Pipeline._regions (the gate's and enrolment's region stage): an unusable view leaves the
    views to fuse; too few usable views deny with the quality prompt."""
    from types import SimpleNamespace

    from device.gate.decision import Decision, Deny
    from device.gate.pipeline import Pipeline
    good, flat = palm_like(), np.full((128, 128), 128, np.uint8)
    p = Pipeline.__new__(Pipeline)                 # the stage alone, no models loaded
    p.cfg = load_config(None)                      # [gate] min_views = 2
    burst = SimpleNamespace(views=[None] * 3)
    p.regions = lambda views, ok, *a: ([good, flat, good], [])
    out = Decision()
    rois = p._regions(burst, [0, 1, 2], out)
    assert len(rois) == 2 and out.rois == rois
    p.regions = lambda views, ok, *a: ([good, flat, flat], [])
    with pytest.raises(Deny) as e:
        p._regions(burst, [0, 1, 2], Decision())
    assert e.value.reason == "quality:no_texture" and e.value.prompt == PROMPTS["no_texture"]


def test_fusion_table_runs_the_rules_on_the_same_captures(tmp_path):
    from device.synth.palm_sets import write_palms
    from device.synth.palms import PalmSynthesizer
    from tools.fusion_table import ROWS, markdown, table
    root = tmp_path / "palms"
    write_palms(root, subjects=3, sessions=2, samples=3, seed=5, synth=PalmSynthesizer())
    rows = {k: ROWS[k] for k in ("fusion attention", "fusion attention, views not aligned",
                                 "fusion mean, no view check")}
    t = table(root, seeds=(0,), work=tmp_path / "w", rows=rows, log=lambda *_: None)
    assert set(t) == {"3 views, 2 degraded", "3 views clean", "1 view"}
    d = t["3 views, 2 degraded"]
    assert set(d) == set(rows) and d["fusion attention"]["all"]["n_genuine"] == 3
    assert set(t["1 view"]) == {"fusion attention"}
    assert "| 1 view | fusion attention |" in markdown(t)

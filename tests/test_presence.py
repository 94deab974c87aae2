"""Is there a hand in the sensor frame? (issue 21): the no-hand generators, the classical frame
statistics, the shipped presence check (signed threshold and limits), the sensor stage
(presence -> binding seam -> SR -> liveness) and `palmgate evaluate-liveness` with a species
folder ``no_hand``."""
import copy
import json

import cv2
import numpy as np
import pytest

from device.models.model import DEFAULT_MODELS_DIR, ModelError
from device.models.presence import NO_HAND, PresenceCheck, presence_model_name
from device.synth.no_hand import KINDS, SOURCE_OF, block_shuffle, no_hand_frame, pixel_shuffle
from device.models.presence_stats import (STATS, check_limits, failures, frame_stats,
                                           limits_from)

MAN = json.loads((DEFAULT_MODELS_DIR / "manifest.json").read_text())["models"]
SHIPPED = all(presence_model_name(s, p) in MAN for s in ("xray", "nir") for p in ("fp32", "int8"))
needs_models = pytest.mark.skipif(not SHIPPED, reason="presence models not in the manifest")


def _hands(sensor, n, seed=4246):
    """Synthetic bona fide and attack captures of a seed no training used."""
    from device.synth.attacks import BONA_FIDE, SPECIES, scene_for
    from device.synth.sensor import render_scene
    from device.synth.sensor_sets import identity
    classes = (BONA_FIDE,) + SPECIES[sensor]
    return [(c, render_scene(scene_for(c, sensor), identity(seed, i), np.random.default_rng(
        [seed, i]), sensor, (128, 128), 1)) for i in range(n) for c in classes]


def _sources():
    g = np.random.default_rng(0)
    hand = cv2.GaussianBlur(g.random((128, 128)).astype(np.float32), (0, 0), 6)
    return {"photos": [g.integers(0, 255, (240, 320), np.uint8)],
            "visible": [g.integers(0, 255, (128, 128), np.uint8)],
            "hands": [hand], "other": [hand[::-1]]}


def test_every_kind_is_a_capture_and_deterministic():
    src = _sources()
    for k in KINDS:
        a = no_hand_frame(k, np.random.default_rng([1, 2]), src)
        b = no_hand_frame(k, np.random.default_rng([1, 2]), src)
        assert a.shape == (128, 128) and a.dtype == np.float32, k
        assert 0 <= a.min() and a.max() <= 1 and np.array_equal(a, b), k
    with pytest.raises(ValueError, match="unknown no-hand kind"):
        no_hand_frame("cloud", np.random.default_rng(0))
    for k in SOURCE_OF:
        with pytest.raises(ValueError, match="needs sources"):
            no_hand_frame(k, np.random.default_rng(0), {})


def test_shuffles_keep_the_pixels():
    g = np.random.default_rng(3)
    img = g.random((128, 128)).astype(np.float32)
    assert np.array_equal(np.sort(pixel_shuffle(img, g).ravel()), np.sort(img.ravel()))
    b = block_shuffle(img, g, 16)
    assert np.array_equal(np.sort(b.ravel()), np.sort(img.ravel())) and not np.array_equal(b, img)


def test_classical_statistics_tell_noise_and_flat_from_a_hand():
    _, hand = _hands("xray", 1)[0]
    limits = check_limits(limits_from(np.stack([frame_stats(h) for _, h in _hands("xray", 2)])))
    assert failures(frame_stats(hand), limits) == []
    g = np.random.default_rng(0)
    assert "noise" in failures(frame_stats(g.random((128, 128))), limits)
    assert "range" in failures(frame_stats(np.full((128, 128), 0.5)), limits)
    assert "range" in failures(frame_stats(np.zeros((128, 128))), limits)
    assert "autocorr" in failures(frame_stats(pixel_shuffle(hand, g)), limits)
    with pytest.raises(ValueError):
        frame_stats(np.full((8, 8), np.nan))


def test_limits_must_be_complete_and_numeric():
    good = limits_from(np.random.default_rng(0).random((5, len(STATS))))
    check_limits(good)
    for broken in ({}, {**good, "noise": [None, None]}, {**good, "range": "0.2"},
                   {**good, "edge": [True, None]}):
        with pytest.raises(ValueError):
            check_limits(broken)


@needs_models
@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_shipped_entries_carry_a_signed_threshold_and_limits(sensor):
    for precision in ("fp32", "int8"):
        e = MAN[presence_model_name(sensor, precision)]
        assert 0 < e["threshold"] < 1
        check_limits(e["presence_limits"])
        assert (DEFAULT_MODELS_DIR / presence_model_name(sensor, precision)).stat().st_size \
            < 20 * 2 ** 20


@needs_models
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_shipped_check_refuses_no_hand_and_passes_hands(sensor, precision):
    pc = PresenceCheck(sensor, precision)
    g = np.random.default_rng(11)
    other = "nir" if sensor == "xray" else "xray"
    src = {"photos": [g.integers(0, 255, (240, 320), np.uint8)],
           "hands": [h for _, h in _hands(sensor, 1)], "other": [h for _, h in _hands(other, 1)]}
    kinds = ["uniform_noise", "gaussian_noise", "salt_pepper", "flat", "gradient",
             "pixel_shuffle", "blurred"]
    neg = np.stack([no_hand_frame(k, np.random.default_rng([99, i]), src)
                    for i in range(3) for k in kinds])
    assert not any(p.present for p in pc(neg))
    hands = _hands(sensor, 2)
    res = pc(np.stack([h for _, h in hands]))
    assert all(p.present for p in res), [(c, p) for (c, _), p in zip(hands, res)
                                         if not p.present]


@needs_models
def test_tampered_limits_or_threshold_are_refused(tmp_path, trust_test_key):
    import os
    from conftest import sign_models
    d = tmp_path / "models"
    d.mkdir()
    name = presence_model_name("nir")
    os.symlink(DEFAULT_MODELS_DIR / name, d / name)
    for edit in (lambda e: e.pop("presence_limits"), lambda e: e.update(threshold=1.5),
                 lambda e: e["presence_limits"].update(noise=[None, None])):
        entry = copy.deepcopy(MAN[name])
        edit(entry)
        (d / "manifest.json").write_text(json.dumps({"format": 1, "models": {name: entry}}))
        sign_models(d, trust_test_key)
        with pytest.raises(ModelError):
            PresenceCheck("nir", models_dir=d)


@needs_models
def test_the_stage_denies_no_hand_before_liveness():
    from device.models.sensor_branch import SensorBranch
    b = SensorBranch("nir")
    noise = (np.random.default_rng(5).random((128, 128)) * 255).astype(np.uint8)
    r = b(noise)
    assert r.reason == NO_HAND and r.p_live is None and r.sr is None and not r.live
    (_, hand), = _hands("nir", 1)[:1]
    r = b(hand)
    assert r.p_live is not None and r.sr.shape == (256, 256)
    assert r.reason in (None, "not_live") and r.live == (r.reason is None)


@needs_models
def test_evaluate_liveness_scores_a_no_hand_species(tmp_path):
    from device.eval.liveness import DENIED, evaluate_liveness
    from device.synth.sensor_sets import write_liveness
    write_liveness(tmp_path / "set", "nir", 4, 2, seed=4247)
    d = tmp_path / "set" / "attack" / "no_hand"
    d.mkdir()
    g = np.random.default_rng(1)
    for i, k in enumerate(["uniform_noise", "flat", "gradient", "gaussian_noise"]):
        cv2.imwrite(str(d / f"{i}.png"), (no_hand_frame(k, g) * 255).astype(np.uint8))
    rep = evaluate_liveness(tmp_path / "set", "nir", tmp_path / "out")
    assert rep["apcer"]["no_hand"] == 0.0 and rep["n_attack"]["no_hand"] == 4
    assert rep["deny_reasons"]["attack"]["no_hand"] == {NO_HAND: 4}
    assert rep["models"]["presence"] == "presence_nir.onnx"
    s = np.load(tmp_path / "out" / "scores.npz")
    assert list(s["attack_reason"][s["attack_species"] == "no_hand"]) == [NO_HAND] * 4
    assert np.all(s["attack"][s["attack_species"] == "no_hand"] == DENIED)
    assert sum(rep["deny_reasons"]["bona_fide"].values()) == 4

"""Presentation-attack species, liveness/SR set writers, and the no-trivial-cue property."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from device.synth import bound
from device.synth import sensor as S
from device.synth.attacks import (NIR_SPECIES, SPECIES, XRAY_SPECIES, render_attack,
                                 render_bona_fide)
from device.synth.hand_geometry import sample_hand_geometry
from device.synth.nir_prints import SetPalmPrints, textures
from device.synth.sensor_sets import write_liveness, write_sr_pairs

N_CUE = 120            # images per class (the full 128x128, 300-per-class run is in the docs)
CUE_SIZE = (64, 64)    # captures rendered smaller than the 128x128 default to keep tests fast
N_IDS = 40


def test_species_names():
    # the first species keep their places (their set seeds and the demo's attacks depend on the
    # class index); the composite species come after them
    assert XRAY_SPECIES == ("hi_precision_model", "no_bones", "simple_bones",
                            "other_material_bones", "photo", "print_over_live",
                            "skeleton_phantom")
    assert NIR_SPECIES == ("printed_photo", "screen_replay", "silicone_cast",
                           "vein_film_over_live", "display_behind_diffuser")


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_every_species_renders(sensor):
    g = sample_hand_geometry(np.random.default_rng(0), "left")
    for sp in SPECIES[sensor]:
        cap = render_attack(sp, g, np.random.default_rng(1), sensor)
        hr = render_attack(sp, g, np.random.default_rng(1), sensor, scale=2)
        assert cap.shape == S.CAPTURE_SIZE[sensor] and cap.dtype == np.float32, sp
        assert hr.shape == tuple(2 * v for v in S.CAPTURE_SIZE[sensor]), sp
        for im in (cap, hr):
            assert np.isfinite(im).all() and 0 <= im.min() and im.max() <= 1 and im.std() > 0.03
        down = cv2.resize(hr, cap.shape[::-1], interpolation=cv2.INTER_AREA)
        assert np.corrcoef(down.ravel(), cap.ravel())[0, 1] > 0.9, sp   # same content
        assert not np.array_equal(cap, render_attack(sp, g, np.random.default_rng(2), sensor))
    with pytest.raises(ValueError):
        render_attack("no_such_species", g, np.random.default_rng(0), sensor)


@pytest.mark.parametrize("sensor", ["xray", "nir"])
def test_write_liveness_has_every_species(tmp_path, sensor):
    m = write_liveness(tmp_path / "a", sensor, n_bona_fide=3, per_species=2, seed=5)
    assert len(list((tmp_path / "a" / "bona_fide").glob("*.png"))) == 3
    for sp in SPECIES[sensor]:
        files = sorted((tmp_path / "a" / "attack" / sp).glob("*.png"))
        assert len(files) == 2, sp
        img = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.shape == S.CAPTURE_SIZE[sensor]
    assert {f["class"] for f in m["files"]} == {"bona_fide", *SPECIES[sensor]}
    json.loads((tmp_path / "a" / "manifest.json").read_text())
    write_liveness(tmp_path / "b", sensor, n_bona_fide=3, per_species=2, seed=5)
    for f in m["files"]:
        assert (tmp_path / "a" / f["file"]).read_bytes() == \
            (tmp_path / "b" / f["file"]).read_bytes()


def test_write_sr_pairs(tmp_path):
    m = write_sr_pairs(tmp_path, "xray", n=5, seed=1)
    assert {f["class"] for f in m["files"]} >= {"bona_fide"}
    for i in range(5):
        lr = cv2.imread(str(tmp_path / "lr" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        hr = cv2.imread(str(tmp_path / "hr" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert lr.shape == S.XRAY_CAPTURE_SIZE and hr.shape == (256, 256)
        down = cv2.resize(hr.astype(np.float32) / 255, lr.shape[::-1],
                          interpolation=cv2.INTER_AREA)
        mse = np.mean((down - lr.astype(np.float32) / 255) ** 2)
        assert 10 * np.log10(1 / mse) > 25


# ---------------------------------------------------------------------------------------------
# no trivial cue: global grey levels must not tell bona fide from attack


def best_threshold_bacc(a: np.ndarray, b: np.ndarray) -> float:
    """Best balanced accuracy of any single threshold (either polarity) separating a from b."""
    v = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))][np.argsort(v, kind="stable")]
    below0 = np.r_[0, np.cumsum(1 - y)] / len(a)             # class a at or below the cut
    below1 = np.r_[0, np.cumsum(y)] / len(b)
    bacc = 0.5 * (below0 + 1 - below1)
    return float(max(bacc.max(), (1 - bacc).max()))


def _hist(x: np.ndarray) -> np.ndarray:
    return np.histogram(x, 16, (0.0, 1.0))[0] / x.size


def ncm_bacc(fa: np.ndarray, fb: np.ndarray) -> float:
    """Nearest-class-mean classifier fitted on even rows, balanced accuracy on odd rows."""
    ma, mb = fa[0::2].mean(0), fb[0::2].mean(0)
    pa = np.linalg.norm(fa[1::2] - mb, axis=1) < np.linalg.norm(fa[1::2] - ma, axis=1)
    pb = np.linalg.norm(fb[1::2] - mb, axis=1) < np.linalg.norm(fb[1::2] - ma, axis=1)
    return float(0.5 * ((~pa).mean() + pb.mean()))


def lda_bacc(fa: np.ndarray, fb: np.ndarray) -> float:
    """Fisher discriminant fitted on even rows, balanced accuracy on odd rows."""
    ta, tb = fa[0::2], fb[0::2]
    ma, mb = ta.mean(0), tb.mean(0)
    sw = np.cov(np.r_[ta - ma, tb - mb].T) + 1e-4 * np.eye(fa.shape[1])
    w = np.linalg.solve(sw, mb - ma)
    c = w @ (ma + mb) / 2
    return float(0.5 * ((fa[1::2] @ w <= c).mean() + (fb[1::2] @ w > c).mean()))


def _structure(x: np.ndarray) -> np.ndarray:
    """Local-structure features (normalised band-pass and gradient magnitude histograms)."""
    x = (x - x.mean()) / (x.std() + 1e-6)
    out = []
    for s in (0.7, 1.5):
        lap = cv2.Laplacian(cv2.GaussianBlur(x, (0, 0), s), cv2.CV_32F) * s * s
        out.append(np.histogram(np.abs(lap), 12, (0, 1.5))[0] / x.size)
    g = np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1))
    out.append(np.histogram(g, 12, (0, 4))[0] / x.size)
    return np.concatenate(out)


@pytest.fixture(scope="module", params=["xray", "nir", "nir_palm_print"])
def cue_sets(request):
    """Sets of every class; ``nir_palm_print``: the NIR world whose frames show the palm print
    (every frame with the palm print of the hand it shows or copies)."""
    sensor = "nir" if request.param.startswith("nir") else request.param
    on = request.param == "nir_palm_print"
    prints = SetPalmPrints(77) if on else None
    geoms = [sample_hand_geometry(np.random.default_rng([77, i]), "left" if i % 2 else "right")
             for i in range(N_IDS)]
    sets = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bound, "NIR_PALM_PRINT", on)
        for ci, cls in enumerate(("bona_fide",) + SPECIES[sensor]):
            imgs = []
            for i in range(N_CUE):
                rng = np.random.default_rng([2024, ci, i])
                ident = (i + 3 * ci) % N_IDS
                g = geoms[ident]
                tex = textures(prints, ident, ci, i)
                imgs.append(render_bona_fide(g, rng, sensor, CUE_SIZE, palm_texture=tex.get(
                    "palm_texture")) if cls == "bona_fide"
                    else render_attack(cls, g, rng, sensor, CUE_SIZE, **tex))
            sets[cls] = imgs
    return sensor, sets


@pytest.fixture
def palm_print_world(monkeypatch):
    """The NIR world whose frames show the palm print; palm prints of seed 5's identities."""
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", True)
    return SetPalmPrints(5)


def test_a_command_chooses_the_nir_world(monkeypatch):
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", True)    # restored after the test
    bound.use_nir_world("old")
    assert not bound.palm_print_on("nir")
    bound.use_nir_world("palm-print")
    assert bound.palm_print_on("nir") and not bound.palm_print_on("xray")
    with pytest.raises(ValueError, match="unknown NIR world"):
        bound.use_nir_world("infrared")


def test_palm_print_off_ignores_textures(monkeypatch):
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", False)
    g = sample_hand_geometry(np.random.default_rng(0), "left")
    tex, own = SetPalmPrints(5).pair(0)
    for sp in SPECIES["nir"]:
        a = render_attack(sp, g, np.random.default_rng(1), "nir")
        b = render_attack(sp, g, np.random.default_rng(1), "nir", palm_texture=tex,
                          attacker_texture=own)
        assert np.array_equal(a, b), sp


def test_palm_print_on_every_nir_surface_shows_it(palm_print_world):
    """With the palm print every NIR class shows a palm print: the victim's where the scene
    copies the victim's palm (print, screen, cast, display), the attacker's own under a vein
    film (another victim print changes nothing there)."""
    g = sample_hand_geometry(np.random.default_rng(0), "left")
    tex, own = palm_print_world.pair(0)
    other = palm_print_world.texture(3)
    plain = render_bona_fide(g, np.random.default_rng(1), "nir")
    lined = render_bona_fide(g, np.random.default_rng(1), "nir", palm_texture=tex)
    assert not np.array_equal(plain, lined)
    assert np.corrcoef(plain.ravel(), lined.ravel())[0, 1] > 0.8     # only the lines differ
    for sp in SPECIES["nir"]:
        a = render_attack(sp, g, np.random.default_rng(1), "nir")
        b = render_attack(sp, g, np.random.default_rng(1), "nir", palm_texture=tex,
                          attacker_texture=own)
        c = render_attack(sp, g, np.random.default_rng(1), "nir", palm_texture=other,
                          attacker_texture=own)
        assert not np.array_equal(a, b), sp
        assert np.isfinite(b).all() and 0 <= b.min() and b.max() <= 1, sp
        if sp == "vein_film_over_live":
            assert np.array_equal(b, c)               # the palm under the film is the attacker's
        else:
            assert not np.array_equal(b, c), sp       # the copy shows the victim's lines


def test_write_liveness_with_palm_print(tmp_path, palm_print_world, monkeypatch):
    m = write_liveness(tmp_path / "a", "nir", n_bona_fide=2, per_species=1, seed=5)
    write_liveness(tmp_path / "b", "nir", n_bona_fide=2, per_species=1, seed=5)
    for f in m["files"]:
        assert (tmp_path / "a" / f["file"]).read_bytes() == \
            (tmp_path / "b" / f["file"]).read_bytes()
    monkeypatch.setattr(bound, "NIR_PALM_PRINT", False)
    write_liveness(tmp_path / "c", "nir", n_bona_fide=2, per_species=1, seed=5)
    assert all((tmp_path / "a" / f["file"]).read_bytes() !=
               (tmp_path / "c" / f["file"]).read_bytes() for f in m["files"])


def test_no_trivial_global_cue(cue_sets):
    """Mean intensity (best single threshold) and a 16-bin histogram (nearest class mean, fitted
    on half) stay near chance for every species vs bona fide: the exposure, gain and offset are
    randomised from one distribution for every class."""
    sensor, sets = cue_sets
    bf = sets["bona_fide"]
    mean_bf = np.array([x.mean() for x in bf])
    hist_bf = np.stack([_hist(x) for x in bf])
    report = {}
    for sp in SPECIES[sensor]:
        mean_sp = np.array([x.mean() for x in sets[sp]])
        hist_sp = np.stack([_hist(x) for x in sets[sp]])
        report[sp] = (best_threshold_bacc(mean_bf, mean_sp), ncm_bacc(hist_bf, hist_sp))
    print(sensor, {k: tuple(round(v, 3) for v in vals) for k, vals in report.items()})
    for sp, (m, h) in report.items():
        assert m < 0.70, f"{sensor}/{sp}: mean intensity separates (bacc {m:.3f})"
        assert h < 0.70, f"{sensor}/{sp}: grey-level histogram separates (bacc {h:.3f})"


def test_attacks_differ_in_structure(cue_sets):
    """The class information is in the spatial structure (bones, joints, tissue, veins, print
    and screen artefacts), not in the grey levels: simple local-structure statistics (band-pass
    and gradient histograms, Fisher discriminant) separate the species better on average than
    the histogram does, and the gross species (no bones; a cast without veins) almost
    perfectly.  The subtle species are left to the liveness CNN at x2 resolution."""
    sensor, sets = cue_sets
    f_bf = np.stack([_structure(x) for x in sets["bona_fide"]])
    h_bf = np.stack([_hist(x) for x in sets["bona_fide"]])
    struct, hist = {}, {}
    for sp in SPECIES[sensor]:
        struct[sp] = lda_bacc(f_bf, np.stack([_structure(x) for x in sets[sp]]))
        hist[sp] = ncm_bacc(h_bf, np.stack([_hist(x) for x in sets[sp]]))
    print(sensor, "structure", {k: round(v, 3) for k, v in struct.items()})
    assert np.mean(list(struct.values())) > np.mean(list(hist.values())) + 0.1
    gross = {"xray": "no_bones", "nir": "silicone_cast"}[sensor]
    assert struct[gross] > 0.85

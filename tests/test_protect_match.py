"""Protected matching (claims 9-11, checks 11-12), the gallery's closed form and its
coarse-to-fine 1:N search against the exhaustive one, D_sys, and the command contracts."""
import json

import cv2
import numpy as np
import pytest

from device.protect.core import ProtectConfig, enrol, enrol_many, match_score, protect_query
from device.protect.defaults import DEFAULT_CONFIG
from device.eval.protection import dsys
from device.protect.gallery import ProtectedGallery

G, D, S = 49, 16, 25


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(11)


CONFIGS = [ProtectConfig(), ProtectConfig(t=0.5, fill="random"),
           ProtectConfig(t=0.8, key_mode="shared", drop_mode="importance", n_drop=3),
           ProtectConfig(t=0.6, rotation="equal_angle", n_drop=2), DEFAULT_CONFIG,
           ProtectConfig(t=0.9, rotation="orthographic", n_drop=2, fill="key",
                         key_mode="shared"),
           ProtectConfig(t=0.95, rotation="equal_distance", n_drop=3, fill="random")]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_gallery_closed_form_equals_the_claims_step_by_step(rng, cfg):
    w = rng.random(G) + 0.2
    w /= w.sum()
    X = unit(rng.standard_normal((6, G, D)))
    gal = ProtectedGallery(cfg, w)
    tmpls = [enrol(x, cfg, importance=w, rng=rng) for x in X]
    for i, t in enumerate(tmpls):
        gal.add(f"u{i}", t)
    q = unit(X[2][None] + 0.4 * rng.standard_normal((S, G, D)) / 4)
    fast = gal.exact(q)
    for i, t in enumerate(tmpls):
        for s in (0, 12, 24):
            assert fast[i, s] == pytest.approx(match_score(q[s], t, w), abs=2e-6)
        rebuilt = gal.template(i)
        assert np.allclose(rebuilt.data, t.data, atol=1e-6)
    assert gal.search(q).owner == "u2" == gal.search(q, exhaustive=True).owner


@pytest.mark.parametrize("cfg", [DEFAULT_CONFIG, ProtectConfig(t=0.5, fill="random")])
def test_float16_storage_moves_scores_by_less_than_1e4(rng, cfg):
    """The gate keeps cells and keys in float16 (half the memory); scores stay within 1e-4
    of the float32 gallery's and the decisions are the same."""
    w = rng.random(G) + 0.2
    X = unit(rng.standard_normal((8, G, D)))
    tmpls = [enrol(x, cfg, importance=w / w.sum(), rng=rng) for x in X]
    g32, g16 = ProtectedGallery(cfg, w), ProtectedGallery(cfg, w, storage="float16")
    for i, t in enumerate(tmpls):
        g32.add(f"u{i}", t)
        g16.add(f"u{i}", t)
    assert g16.nbytes()["keys"] * 2 == g32.nbytes()["keys"]
    q = unit(X[5][None] + 0.4 * rng.standard_normal((S, G, D)) / 4)
    assert np.abs(g16.exact(q) - g32.exact(q)).max() < 1e-4
    assert g16.search(q).owner == g32.search(q).owner == "u5"
    assert np.allclose(g16.template(3).data, g32.template(3).data, atol=2e-3)
    with pytest.raises(ValueError, match="storage"):
        ProtectedGallery(cfg, w, storage="int4")


@pytest.mark.parametrize("cfg", [ProtectConfig(t=0.9, n_drop=4), DEFAULT_CONFIG])
def test_int8_storage_quarter_memory_close_scores(rng, cfg):
    """int8 storage (device/protect/storage.py): keys and encrypted cells in about a quarter
    of float32's bytes; scores within 5e-4 of float32's and the same best template."""
    w = rng.random(G) + 0.2
    X = unit(rng.standard_normal((8, G, D)))
    tmpls = [enrol(x, cfg, importance=w / w.sum(), rng=rng) for x in X]
    g32, g8 = ProtectedGallery(cfg, w), ProtectedGallery(cfg, w, storage="int8")
    for i, t in enumerate(tmpls):
        g32.add(f"u{i}", t)
        g8.add(f"u{i}", t)
    b32, b8 = g32.nbytes(), g8.nbytes()
    assert b8["keys"] + b8["encrypted"] < 0.32 * (b32["keys"] + b32["encrypted"])
    q = unit(X[5][None] + 0.4 * rng.standard_normal((S, G, D)) / 4)
    assert np.abs(g8.exact(q) - g32.exact(q)).max() < 5e-4
    assert g8.search(q).owner == g32.search(q).owner == "u5"
    t8, t32 = g8.template(3), g32.template(3)
    assert np.allclose(t8.data, t32.data, atol=2e-2) and np.allclose(t8.key, t32.key, atol=5e-3)


def test_matcher_protocol_check_11(rng):
    cfg = ProtectConfig(t=0.9, n_drop=4)
    x = unit(rng.standard_normal((G, D)))
    q = unit(x + 0.3 * rng.standard_normal((G, D)) / 4)
    t = enrol(x, cfg, rng=rng)
    good = match_score(q, t)
    # the query is encrypted with that template's key and mask
    eq = protect_query(q, t)
    assert np.allclose(eq[~t.mask], 0)
    other = enrol(x, cfg, rng=rng)                 # same palm, another key and mask
    wrong_key = type(t)(t.data, other.key, t.mask, t.fill, cfg)
    wrong_mask = type(t)(t.data, t.key, other.mask, t.fill, cfg)
    assert match_score(q, wrong_key) < good - 0.01
    assert match_score(q, wrong_mask) < good - 0.001
    # 1:1 touches only the named subject's templates; 1:N returns the argmax iff >= threshold
    gal = ProtectedGallery(cfg, np.full(G, 1 / G))
    gal.add("alice", t)
    gal.add("alice", enrol(x, cfg, rng=rng))
    for i in range(5):
        gal.add(f"bob{i}", enrol(unit(rng.standard_normal((G, D))), cfg, rng=rng))
    v = gal.verify(q[None], "alice", threshold=good - 1e-3)
    assert v.candidates == 2 and v.accepted and v.owner == "alice"
    assert gal.verify(q[None], "nobody") is None
    m = gal.search(q[None], threshold=good - 1e-3)
    assert m.owner == "alice" and m.accepted
    m2 = gal.search(q[None], threshold=1.01)
    assert m2.owner == "alice" and not m2.accepted
    assert gal.remove_owner("alice") == 2 and len(gal) == 5


def test_importance_weights_check_12(rng):
    cfg = ProtectConfig(t=0.7)
    x = unit(rng.standard_normal((G, D)))
    q = unit(x + 0.5 * rng.standard_normal((G, D)) / 4)
    t = enrol(x, cfg, rng=rng)
    eq = protect_query(q, t)
    cos = np.sum(eq * t.data, 1)
    assert match_score(q, t) == pytest.approx(cos.mean(), abs=1e-6)
    w = np.zeros(G)
    w[5] = 1.0
    assert match_score(q, t, w) == pytest.approx(cos[5], abs=1e-6)


def test_coarse_to_fine_equals_exhaustive_on_structured_features(rng):
    """Synthetic palms with the spatial structure of real ones: each cell pools a 4x4 block
    of a per-palm random map, so neighbouring windows overlap; queries are misaligned by up
    to ±2 map pixels (±8 px) and carry noise."""
    cfg = ProtectConfig(t=0.9, n_drop=2)
    w = np.full(G, 1 / G)
    n_users, n_t = 400, 3
    fine = rng.standard_normal((n_users, 36, 36, D)).astype(np.float32)

    def window(u, oy, ox, noise):
        f = fine[u, oy:oy + 28, ox:ox + 28].reshape(7, 4, 7, 4, D).mean((1, 3))
        return unit(f.reshape(G, D) + noise * rng.standard_normal((G, D)))

    def query(u, dy, dx, noise=0.25):
        return np.stack([window(u, 4 + dy + a, 4 + dx + b, noise)
                         for a in range(-2, 3) for b in range(-2, 3)])

    gal = ProtectedGallery(cfg, w, shortlist=16)
    for u in range(n_users):
        X = np.stack([window(u, 4 + a, 4 + b, 0.2)
                      for a, b in rng.integers(-1, 2, (n_t, 2))]).astype(np.float32)
        gal.add_arrays([u] * n_t, *enrol_many(X, cfg, w, rng)[:3])
    for u in range(0, n_users, 25):
        dy, dx = rng.integers(-2, 3, 2)
        q = query(u, dy, dx)
        fast, full = gal.search(q), gal.search(q, exhaustive=True)
        assert full.owner == u
        assert fast.index == full.index and fast.score == pytest.approx(full.score, abs=1e-6)


def _real(n):
    from tools.paths import real_dir
    try:
        root = real_dir("tongji")
    except FileNotFoundError:
        pytest.skip("real Tongji palms not available")
    return root


def test_coarse_to_fine_loses_nothing_on_real_palms(rng):
    """Held-out Tongji palms (3 session-1 templates each) among chimera distractors made from
    training palms; every session-2 query finds the same template as the exhaustive search."""
    root = _real(0)
    from device.recognition.cells import CellExtractor
    from tools.train.realdata import split_subjects
    ex = CellExtractor()
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    tr, va = split_subjects(len(names), 0.2, 0)
    rd = lambda s, f: cv2.imread(str(root / s / f), cv2.IMREAD_GRAYSCALE)
    cfg = ProtectConfig(t=0.9, n_drop=2)
    w = ex.importance
    gal = ProtectedGallery(cfg, w)
    pool = np.stack([ex.template(rd(names[i], "1_01.png")) for i in tr[:40]])
    chim = pool[rng.integers(0, len(pool), (1500, G)), np.arange(G)[None]]
    gal.add_arrays(["x"] * len(chim), *enrol_many(chim, cfg, w, rng)[:3])
    val = [names[i] for i in va[:12]]
    for s in val:
        T = np.stack([ex.template(rd(s, f"1_0{k}.png")) for k in (1, 2, 3)])
        gal.add_arrays([s] * 3, *enrol_many(T, cfg, w, rng)[:3])
    for s in val:
        q = ex.query(rd(s, "2_05.png"))
        fast, full = gal.search(q), gal.search(q, exhaustive=True)
        assert fast.index == full.index
        assert full.owner == s


def test_dsys_extremes(rng):
    a = rng.normal(0, 1, 5000)
    assert dsys(a, rng.normal(0, 1, 5000)) < 0.1
    assert dsys(rng.normal(10, 1, 5000), rng.normal(0, 1, 5000)) > 0.99


def _write_layout(root, subjects=4, sessions=2, samples=2, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:140, 0:140].astype(np.float32)
    for s in range(subjects):
        base = 150 + 20 * np.sin(x / 17.0 + s)
        lines = [(rng.uniform(-0.02, 0.02), rng.uniform(-1.5, 1.5), rng.uniform(10, 130),
                  rng.uniform(1, 6)) for _ in range(12)]
        for se in range(1, sessions + 1):
            for k in range(1, samples + 1):
                dy, dx = rng.integers(0, 8, 2)
                img = base.copy()
                for a, b, c, wd in lines:
                    d = np.abs(y - (a * (x - 70) ** 2 + b * (x - 70) + c))
                    img -= 60 * np.exp(-d ** 2 / wd)
                img = img[dy:dy + 128, dx:dx + 128] + rng.normal(0, 4, (128, 128))
                p = root / f"{s:03d}" / f"{se}_{k:02d}.png"
                p.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(p), np.clip(img, 0, 255).astype(np.uint8))


def test_evaluate_protection_command_contract(tmp_path):
    from device.cli import main
    _write_layout(tmp_path / "data")
    rc = main(["evaluate-protection", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
               "--sweep", "--sweep-t", "0.5", "0.9", "--sweep-drop", "2",
               "--sweep-budget", "25", "--sweep-rotation", "fraction"])
    assert rc == 0
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    for k in ("eer_protected", "eer_unprotected", "dsys", "dsys_bins",
              "inversion_success_key_unknown", "inversion_success_key_known"):
        assert k in r
    assert 0 <= r["dsys"] <= 1 and r["dsys_bins"] > 0
    sw = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert len(sw["rows"]) == 4 and sw["frontier"]
    assert {(r["drop_mode"], r["drop_total"]) for r in sw["rows"]} == {("random", 98),
                                                                        ("importance", 25)}


def test_bench_match_prints_match_ms(capsys):
    from device.cli import main
    assert main(["bench-match", "--users", "300", "--queries", "5", "--check", "2",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r["match_ms"]) == {"median", "p95"} and r["templates"] == 900
    assert r["exhaustive_agreement"]["same_template"] == 1.0


def test_evaluate_protection_of_the_learned_feature(tmp_path):
    from device.cli import main
    _write_layout(tmp_path / "data")
    assert main(["evaluate-protection", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                 "--feature", "learned"]) == 0
    r = json.loads((tmp_path / "out" / "report.json").read_text())
    assert r["feature"] == "LearnedExtractor" and 0 <= r["eer_protected"] <= 1

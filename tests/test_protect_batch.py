"""The batched protected scorer (device/protect/batch_scores.py) against the claims step by
step (core.match_score) and the gallery's per-query exact pass, for every configuration the
gallery tests use; the evaluation's protected scores against the old pairwise path."""
from dataclasses import replace

import numpy as np
import pytest

from device.eval.capture_scores import protected_scores
from device.protect.batch_scores import (GENERAL, TemplateBlock, best_shift_scores,
                                         window_scores)
from device.protect.core import ProtectConfig, enrol, match_score
from device.protect.defaults import DEFAULT_CONFIG
from device.protect.gallery import ProtectedGallery, enrol_and_score

G, D, S = 49, 16, 25


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


CONFIGS = [ProtectConfig(), ProtectConfig(t=0.5, fill="random"),
           ProtectConfig(t=0.8, key_mode="shared", drop_mode="importance", n_drop=3),
           ProtectConfig(t=0.6, rotation="equal_angle", n_drop=2), DEFAULT_CONFIG,
           ProtectConfig(t=0.9, rotation="orthographic", n_drop=2, fill="key",
                         key_mode="shared"),
           ProtectConfig(t=0.95, rotation="equal_distance", n_drop=3, fill="random"),
           ProtectConfig(t=0.9, rotation="equal_distance", n_drop=0, fill="zero")]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _set(rng, cfg, n=5, nq=3):
    w = rng.random(G) + 0.2
    w /= w.sum()
    X = unit(rng.standard_normal((n, G, D)))
    tmpls = [enrol(x, cfg, importance=w, rng=rng) for x in X]
    Q = unit(X[rng.integers(n, size=nq)][:, None] + 0.3 * rng.standard_normal((nq, S, G, D)))
    return w, tmpls, Q.astype(np.float32)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_batch_scores_equal_the_claims_step_by_step(rng, cfg):
    w, tmpls, Q = _set(rng, cfg)
    gal = ProtectedGallery(cfg, w)
    for k, t in enumerate(tmpls):
        gal.add(k, t)
    block = TemplateBlock.from_gallery(gal)
    win = window_scores(block, Q[0])                       # (S, n)
    for k, t in enumerate(tmpls):
        for s in (0, 12, 24):
            assert win[s, k] == pytest.approx(match_score(Q[0, s], t, w), abs=2e-6)
    best = best_shift_scores(block, Q, block_elements=2 * S * len(tmpls))   # 2 per step
    ref = np.stack([gal.exact(q).max(1) for q in Q])
    assert np.abs(best - ref).max() < 2e-6


def test_a_query_cell_at_its_key_takes_the_general_form(rng):
    """Within alpha of the key the equal_distance shortcut does not hold; that cell of that
    block falls back to the closed form and the score stays exact."""
    w, tmpls, Q = _set(rng, DEFAULT_CONFIG, n=3, nq=1)
    q = Q[0].copy()
    q[4, 0] = tmpls[1].key[0]                 # window 4, cell 0 (whole: no drop there)
    q[4, 48] = tmpls[2].key[48]               # a cell with a drop
    block = TemplateBlock.from_arrays(DEFAULT_CONFIG, w, *[np.stack(a) for a in zip(
        *[(t.data, t.key, t.mask, t.fill) for t in tmpls])])
    assert block.kind[0] != GENERAL
    win = window_scores(block, q)
    for k, t in enumerate(tmpls):
        assert win[4, k] == pytest.approx(match_score(q[4], t, w), abs=2e-6)
    gen = replace(block, kind=np.full(G, GENERAL), const=np.zeros(block.n, np.float32),
                  rhs=[np.concatenate([block.rhs[c][:, :block.n], block.mk[c], block.me[c]],
                                      1) for c in range(G)])
    assert np.abs(window_scores(gen, q) - win).max() < 2e-6


def test_blocks_read_the_gallery_as_stored(rng):
    """A float16 gallery's block scores what the gallery itself scores."""
    w, tmpls, Q = _set(rng, DEFAULT_CONFIG)
    gal = ProtectedGallery(DEFAULT_CONFIG, w, storage="float16")
    for k, t in enumerate(tmpls):
        gal.add(k, t)
    ref = np.stack([gal.exact(q).max(1) for q in Q])
    assert np.abs(best_shift_scores(TemplateBlock.from_gallery(gal), Q) - ref).max() < 2e-6


@pytest.mark.parametrize("threads", [1, 2])
def test_evaluation_scores_equal_the_old_pairwise_path(rng, threads):
    """Same keys (seeded), same templates: the blocked scores of every probe against every
    template are the old path's (the gallery's exact pass one probe at a time)."""
    w = rng.random(G) + 0.2
    w /= w.sum()
    T = unit(rng.standard_normal((11, G, D))).astype(np.float32)
    Q = unit(T[rng.integers(11, size=7)][:, None]
             + 0.3 * rng.standard_normal((7, S, G, D))).astype(np.float32)
    old, _, _ = enrol_and_score(DEFAULT_CONFIG, w, T, Q, np.random.default_rng(3))
    new = protected_scores(T, Q, w, DEFAULT_CONFIG, np.random.default_rng(3), threads=threads,
                           templates_per_block=4)
    assert new.shape == (11, 7)
    assert np.abs(new.T - old).max() < 2e-6

import numpy as np

from device.synth.bezier import sample_candidate
from device.synth.candidate_render import render_candidate
from device.synth.creases import crease_map


def test_crease_map_finds_drawn_lines():
    rng = np.random.default_rng(3)
    cand = render_candidate(sample_candidate(rng))
    palm = (0.7 - 0.35 * cand + rng.normal(0, 0.01, cand.shape)).astype(np.float32)
    m = crease_map(palm)
    assert m.dtype == np.float32 and m.shape == palm.shape
    assert 0 <= m.min() and m.max() <= 1
    on, off = cand > 0.5, cand < 0.01
    assert m[on].mean() > 5 * m[off].mean()

"""The collimator's blurred edge in the X-ray binding's silhouette (docs/results.md, "The
X-ray live-hand tail, round 2"): a strip of the rim's edge over the cut joined the fingers
that cross the field's edge, and the background between them and the strip was filled into
the hand as a hole."""
import numpy as np

from device.gate import binding_background as BB
from device.gate import sensor_binding as B


def _collimated_hand() -> tuple[np.ndarray, np.ndarray]:
    """A bright rim around the exposed field, its blurred edge a row at the top and a ramp
    of six columns at the left (as validation frame 9317/25 shows them), a hand whose palm
    crosses the field's lower edge and whose four fingers cross its upper edge; the hand."""
    h = w = 128
    g = np.full((h, w), 244.0)
    r0, r1, c0, c1 = 4, 120, 14, 114
    g[r0:r1, c0:c1] = 24.0
    g[r0, c0:c1] = 132.0
    for k, v in enumerate((188.0, 133.0, 126.0, 116.0, 99.0, 40.0)):
        g[r0:r1, c0 + k] = v
    g[r1 - 1, c0:c1] = 190.0
    hand = np.zeros((h, w), bool)
    hand[50:r1 - 1, 32:108] = True
    for c in (32, 50, 68, 86):
        hand[r0 + 1:50, c:c + 12] = True
    g[hand] = 150.0
    rng = np.random.default_rng(0)
    return np.clip(g + rng.normal(0, 2, g.shape), 0, 255).astype(np.uint8), hand


def test_the_rims_edge_does_not_close_the_background_into_the_hand():
    g, hand = _collimated_hand()
    old, field = B.sensor_hand(g, 0.2, 1.0, 1.0, True, True)          # holes filled as before
    assert old[30:60, 22:30].all() and old[20:45, 46:48].all()         # background taken in
    new = B.sensor_silhouette(g, "xray")
    assert not new[30:60, 22:30].any()                  # the background left of the hand
    assert not new[20:45, 46:48].any()                  # the gaps between the fingers
    assert not (hand & field & ~new).any()              # the whole hand kept
    assert (new & field & ~hand).sum() < (old & field & ~hand).sum() / 2
    assert BB.RIM_BAND_PX == {"xray": 3, "nir": 0}


def test_a_hole_inside_the_hand_is_still_filled():
    m = np.zeros((64, 64), np.uint8)
    m[10:50, 10:50] = 1
    m[25:30, 25:30] = 0                                  # a dark spot in the palm
    field = np.ones(m.shape, bool)
    out = BB.largest_inside(m, field, 3)
    assert out[25:30, 25:30].all() and out.sum() == 40 * 40
    edge = m.copy()
    edge[20:30, 10:12] = 0                               # a notch open to the field: kept open
    assert not BB.largest_inside(edge, field, 3)[20:30, 10:12].any()
    assert not BB.largest_inside(np.zeros((8, 8), np.uint8), np.ones((8, 8), bool), 3).any()


def test_the_bone_patch_cuts_the_hand_as_the_binding_does(monkeypatch):
    """The X-ray bone patch (the identity check) weighs the frame inside the binding's
    silhouette: the same rim band, not the silhouette from before it."""
    from types import SimpleNamespace

    from device.gate import xray_bone_patch as X
    g, _ = _collimated_hand()
    seen = {}

    def capture(grey, hand, field, lm, px_mm, size):
        seen["hand"] = hand
        return None
    monkeypatch.setattr(X, "bone_patch", capture)
    lm = np.stack([np.linspace(40, 90, 21), np.linspace(30, 100, 21)], 1)
    X.probe_bone_patch(g, SimpleNamespace(landmarks=lm, px_mm=1.0, height_mm=0.0))
    assert np.array_equal(seen["hand"], B.sensor_silhouette(g, "xray"))

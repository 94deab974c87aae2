"""The gate's sensor identity feature (device/gate/sensor_identity.py): the NIR palm patch as
bytes, the best of a person's templates, the signed numbers."""
import numpy as np
import pytest

from device.gate import binding_texture as T
from device.gate import sensor_identity as S
from device.gate.sensor_binding import HandProbes
from tests.test_sensor_identity import _lines, _palm_landmarks


def _patch(seed=3, shift=(0.0, 0.0)):
    return S.palm_patch(_lines(np.random.default_rng(seed)), _palm_landmarks(shift), 1.0,
                        veins_out=False)


def test_patch_bytes_round_trip_keeps_the_weights_and_the_lines_to_float16():
    p = _patch()
    blob = S.patch_to_bytes(p)
    assert len(blob) < 14_000                       # 80 x 80: float16 lines + weight bits
    lines, w = S.patch_from_bytes(blob)
    np.testing.assert_array_equal(w, (p[1] > 0).astype(np.float32))
    np.testing.assert_allclose(lines, p[0], atol=1e-3)
    # the comparison does not move through the store's precision
    assert abs(S.patch_agreement((lines, w), p) - S.patch_agreement(p, p)) < 1e-3


@pytest.mark.parametrize("bad", [b"", b"PGSP", b"XXXX\x01\x00\x50" + bytes(13600),
                                 b"PGSP\x02\x00\x50" + bytes(13600),
                                 b"PGSP\x01\x00\x50" + bytes(100)])
def test_patch_from_bytes_refuses_anything_else(bad):
    with pytest.raises(ValueError):
        S.patch_from_bytes(bad)


def test_best_agreement_is_the_best_over_the_persons_templates():
    own, other = _patch(3), _patch(4)
    probe = _patch(3, (2.0, -1.0))
    assert S.best_agreement([other, own], probe) == S.patch_agreement(own, probe)
    assert S.best_agreement([other], probe) < 0.5 < S.best_agreement([own], probe)
    assert np.isnan(S.best_agreement([], probe))


def test_probe_patch_only_for_a_placed_hand_of_a_sensor_with_the_feature():
    g = _lines(np.random.default_rng(3))
    lm = _palm_landmarks()
    probes = HandProbes(np.zeros(3), lm, 3, float("nan"), px_mm=1.0)
    got = S.probe_patch(g, probes, "nir", veins_out=False)
    np.testing.assert_array_equal(got[0], S.palm_patch(g, lm, 1.0, veins_out=False)[0])
    assert S.probe_patch(g, probes, "xray") is None
    assert S.probe_patch(g, None, "nir") is None
    nan = HandProbes(np.zeros(3), np.full((21, 2), np.nan), 3, 0.0)
    assert S.probe_patch(g, nan, "nir") is None


def test_identity_numbers_checked():
    assert S.identity_numbers({}) is None
    n = S.identity_numbers({"sensor_identity": {"min_agreement": 0.29}})
    assert n == {"min_agreement": 0.29, "shift_mm": S.SHIFT_MM, "patch_mm": S.PATCH_MM,
                 "veins_out": True, "hand_size": None, "cohort": None, "refine_deg": None,
                 "lookalikes": None,                             # absent: no such check
                 "line_sigma_mm": tuple(T.LINE_SIGMA_MM)}       # absent: the binding's scale
    for bad in ({"min_agreement": "0.3"}, {"min_agreement": float("nan")}, {},
                {"min_agreement": 0.3, "shift_mm": -1}, {"min_agreement": 0.3, "patch_mm": 8},
                {"min_agreement": 0.3, "veins_out": 1}, [0.3]):
        with pytest.raises(ValueError):
            S.identity_numbers({"sensor_identity": bad})

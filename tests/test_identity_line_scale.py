"""The NIR identity patch's line scale: a signed ``line_sigma_mm`` of ``sensor_identity``
(absent: the binding's :data:`~device.gate.binding_texture.LINE_SIGMA_MM`, as before), passed
to the palm patch by the identity stage (branch nid, docs/results.md "The NIR identity stage's
person tail")."""
import numpy as np
import pytest

from device.gate import binding_texture as T
from device.gate import sensor_identity as S


def _doc(**kw):
    return {"sensor_identity": {"min_agreement": 0.3, **kw}}


def test_line_scale_defaults_to_the_binding_scale():
    assert S.identity_numbers(_doc())["line_sigma_mm"] == tuple(T.LINE_SIGMA_MM)


def test_line_scale_is_read_from_the_signed_numbers():
    assert S.identity_numbers(_doc(line_sigma_mm=[0.7, 2.0]))["line_sigma_mm"] == (0.7, 2.0)


@pytest.mark.parametrize("bad", [[2.0, 0.7], [0.0, 1.0], [0.5], "0.5,1.5", [0.5, 11.0],
                                 [True, 2.0]])
def test_malformed_line_scale_is_refused(bad):
    with pytest.raises(ValueError):
        S.identity_numbers(_doc(line_sigma_mm=bad))


def _palm():
    rng = np.random.default_rng(3)
    img = np.full((200, 200), 150, np.float32)
    for _ in range(40):
        x0, y0, x1, y1 = rng.uniform(40, 160, 4)
        import cv2
        cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), 110, int(rng.integers(1, 4)))
    lm = np.zeros((21, 2))
    lm[0], lm[5], lm[9], lm[13], lm[17] = (100, 170), (70, 40), (95, 35), (120, 38), (140, 45)
    lm[1] = (60, 150)
    return img, lm


def test_palm_patch_uses_the_line_scale_it_is_given():
    img, lm = _palm()
    fine = S.palm_patch(img, lm, 1.0, veins_out=False)
    same = S.palm_patch(img, lm, 1.0, veins_out=False, sigma_mm=T.LINE_SIGMA_MM)
    coarse = S.palm_patch(img, lm, 1.0, veins_out=False, sigma_mm=(1.0, 3.0))
    assert np.array_equal(fine[0], same[0])
    assert not np.allclose(fine[0], coarse[0])

"""The X-ray bone patch (device/gate/xray_bone_patch.py, re-exported by
device/eval/xray_identity.py): the bones' image on the palm grid."""
import numpy as np

from device.gate import xray_bone_patch as X
from device.gate.sensor_identity import patch_agreement


def _hand(xs, widths, size=200):
    """A drawn X-ray at 1 px a mm: a bright hand (tissue) with bright vertical bones at ``xs``
    of ``widths``, the landmarks of a palm centred near (100, 110) pointing up."""
    img = np.full((size, size), 20.0, np.float32)
    img[20:190, 40:160] = 80.0
    for x, w in zip(xs, widths):
        img[30:180, int(x - w / 2):int(x + w / 2)] = 160.0
    hand = img > 50
    lm = np.zeros((21, 2))
    lm[:] = (100, 110)
    lm[0] = (100, 170)
    lm[5], lm[9], lm[13], lm[17] = (130, 90), (110, 90), (90, 90), (70, 90)
    return img, hand, np.ones_like(hand), lm


def test_bone_patch_same_bones_shifted_high_other_layout_lower():
    img, hand, field, lm = _hand((60, 85, 110, 135), (9, 9, 8, 7))
    a = X.bone_patch(img, hand, field, lm, 1.0, offset_mm=0.0, edge_mm=4.0)
    # the same frame, the landmarks 3 px off: found by the shifts
    b = X.bone_patch(img, hand, field, lm + (3.0, -2.0), 1.0, offset_mm=0.0, edge_mm=4.0)
    img2, hand2, field2, _ = _hand((55, 88, 118, 140), (7, 11, 6, 9))
    c = X.bone_patch(img2, hand2, field2, lm, 1.0, offset_mm=0.0, edge_mm=4.0)
    same = patch_agreement(a, b, shift_mm=4.0)
    diff = patch_agreement(a, c, shift_mm=4.0)
    assert same > 0.95
    assert diff < same - 0.1
    assert a[0].shape == (X.BONE_PATCH_MM, X.BONE_PATCH_MM)


def test_bone_patch_none_without_a_placed_palm():
    img, hand, field, lm = _hand((60, 85, 110, 135), (9, 9, 8, 7))
    assert X.bone_patch(img, hand, field, np.full((21, 2), np.nan), 1.0) is None
    assert X.bone_patch(img, hand, field, lm, 0.0) is None
    assert X.bone_patch(img, np.zeros_like(hand), field, lm, 1.0) is None


def test_the_evaluation_uses_the_gates_feature_and_a_missing_hand_gives_none():
    from types import SimpleNamespace

    from device.eval import xray_identity
    assert xray_identity.bone_patch is X.bone_patch
    img, hand, field, lm = _hand([80, 100, 120], [8, 8, 8])
    assert X.probe_bone_patch(img.astype(np.uint8), None) is None
    p = SimpleNamespace(landmarks=np.full((21, 2), np.nan), px_mm=1.0, height_mm=0.0)
    assert X.probe_bone_patch(img.astype(np.uint8), p) is None


def test_a_patch_turned_between_the_searched_turns_is_found_by_the_refinement():
    # the bone patch's comparison: the turns of TURNS_DEG, then REFINE_DEG around the best one
    rng = np.random.default_rng(3)
    import cv2
    blob = cv2.GaussianBlur(rng.normal(0, 1, (80, 80)).astype(np.float32), (0, 0), 1.2)
    w = np.ones((80, 80), np.float32)
    M = cv2.getRotationMatrix2D((39.5, 39.5), 4.0, 1.0)   # 4 deg: between the 3 and 6 searched
    turned = cv2.warpAffine(blob, M, (80, 80), flags=cv2.INTER_LINEAR)
    coarse = patch_agreement((blob, w), (turned, w), shift_mm=2.0)
    fine = patch_agreement((blob, w), (turned, w), shift_mm=2.0, refine=X.REFINE_DEG)
    assert X.REFINE_DEG == (-1.0, 1.0)
    assert fine > coarse + 0.02
    # nothing to refine: the same as before
    assert patch_agreement((blob, w), (turned, w), shift_mm=2.0, refine=()) == coarse


def test_the_gates_xray_identity_stage_refines_the_turn_by_the_signed_number_nir_does_not(
        monkeypatch):
    from device.gate import sensor_identity as S
    from device.gate.sensor_identity_stage import SensorIdentityStage
    seen = []
    monkeypatch.setattr(S, "best_agreement",
                        lambda t, p, shift_mm, refine=(): seen.append(refine) or 0.5)
    for sensor, n in (("xray", {"refine_deg": (-0.5, 0.5)}),   # signed: the file's
                      ("xray", {"refine_deg": ()}),            # signed: none
                      ("xray", {"refine_deg": None}),          # an older file: the code's
                      ("xray", {}),
                      ("nir", {"refine_deg": None})):          # NIR compares unrefined
        st = SensorIdentityStage.__new__(SensorIdentityStage)
        st.sensor, st.pair = sensor, None       # no cohort pair: the raw agreement
        st.patch = lambda frame, probes: None
        st.agreement([], None, None, dict(n, shift_mm=6.0))
    assert seen == [(-0.5, 0.5), (), X.REFINE_DEG, X.REFINE_DEG, ()]


def test_a_malformed_signed_refine_deg_denies_liveness_unavailable_not_a_crash(tmp_path,
                                                                               monkeypatch):
    import pytest

    import device.gate.binding_numbers as BN
    from device.gate.decision import Decision, Deny
    from device.gate.sensor_identity_stage import SensorIdentityStage
    from tests.conftest import gate_config
    real = BN.load_binding_numbers

    def malformed(sensor, models_dir=None, trusted_keys=None):
        n = real(sensor, models_dir, trusted_keys)
        n.doc = dict(n.doc, sensor_identity=dict(n.doc["sensor_identity"], refine_deg="1"))
        return n
    monkeypatch.setattr(BN, "load_binding_numbers", malformed)
    stage = SensorIdentityStage(gate_config(tmp_path, liveness={"sensor": "xray"}))
    assert stage.numbers is None and "refine_deg" in stage.error
    stage.templates = lambda uid, version=None: [(np.zeros((80, 80), np.float32),
                                                  np.ones((80, 80), np.float32))]
    with pytest.raises(Deny) as e:
        stage(np.zeros((10, 10), np.uint8), None, Decision(user_id="alice"))
    assert e.value.reason == "liveness_unavailable" and "refine_deg" in e.value.detail

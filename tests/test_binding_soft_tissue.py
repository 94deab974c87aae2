"""The X-ray binding's silhouette in a frame with the console's hard bone window: the soft
tissue a few grey levels over the background, the bones bright (docs/results.md "The X-ray
binding's cut in bone-window frames")."""
import numpy as np

from device.gate.binding_silhouette import binding_hand_and_field, sensor_hand_and_field


def _hand_and_bones(size=192):
    hand = np.zeros((size, size), bool)
    bones = np.zeros((size, size), bool)
    hand[70:115, 35:95] = True                        # palm
    bones[74:78, 38:92] = True                        # a bar joining the metacarpals
    for x in (38, 53, 68, 83):                        # four fingers and their metacarpals
        hand[20:70, x:x + 10] = True
        bones[23:74, x + 1:x + 9] = True
        bones[74:112, x + 2:x + 7] = True
    return hand, bones


def _frame(soft, bone, seed=0):
    hand, bones = _hand_and_bones()
    rng = np.random.default_rng(seed)
    f = 12.0 + 1.0 * rng.standard_normal(hand.shape)
    f[hand] += soft
    f[bones] += bone
    return np.clip(f, 0, 255).astype(np.uint8), hand, bones


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_bone_window_frame_gives_the_hand_not_the_bones():
    frame, hand, bones = _frame(soft=12.0, bone=140.0)
    old, _ = sensor_hand_and_field(frame, "xray")
    assert _iou(old, hand) < 0.75                     # today's cut: the bones
    sil, _ = binding_hand_and_field(frame, "xray")
    assert _iou(sil, hand) > 0.85


def test_frame_without_a_soft_tissue_class_is_unchanged():
    frame, hand, _ = _frame(soft=90.0, bone=60.0)
    old, f0 = sensor_hand_and_field(frame, "xray")
    sil, f1 = binding_hand_and_field(frame, "xray")
    assert _iou(old, hand) > 0.85
    assert np.array_equal(sil, old) and np.array_equal(f0, f1)


def test_nir_binding_silhouette_is_the_sensor_hand():
    frame, _, _ = _frame(soft=9.0, bone=140.0)
    assert np.array_equal(binding_hand_and_field(frame, "nir")[0],
                          sensor_hand_and_field(frame, "nir")[0])

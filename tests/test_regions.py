"""Palm regions (device.vision.regions, seed 000 claim 7): finger valleys, the palm frame, the first
region (palm centre) and the second region (the rest of the palm), failures, ROI-level input and
``palmgate evaluate --level hand``."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from device.vision.regions import (FIRST_SIZE, REASONS, SECOND_SIZE, VISIBLE_GEOMETRY, RegionError,
                            extract_regions, find_valleys, frame_corners, read_hand_image,
                            rectify, regions_from_roi)

H, W = 480, 640


def drawn_hand(cx=320.0, cy=300.0, angle=0.0, fingers_apart=True, thumb=True, grey=False,
               shape=(H, W), middle_ring_gap=True):
    """A hand drawn from capsules on a plain background, upright (fingers up) and rotated by
    ``angle`` degrees about (cx, cy); the thumb on the image right (a right palm). Returns the
    image and the exact valleys (index-middle, middle-ring, ring-little)."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    top = cy - 80
    cv2.rectangle(mask, (int(cx - 90), int(top)), (int(cx + 90), int(cy + 100)), 1, -1)
    cv2.rectangle(mask, (int(cx - 70), int(cy + 90)), (int(cx + 70), h + 50), 1, -1)  # wrist
    xs = [cx - 67.5, cx - 22.5, cx + 22.5, cx + 67.5]          # little, ring, middle, index
    tilts = [-14, -5, 5, 14] if fingers_apart else [0, 0, 0, 0]
    lengths = [95, 130, 140, 125]
    for k, (x, t, L) in enumerate(zip(xs, tilts, lengths)):
        tip = (x + L * np.sin(np.radians(t)), top - L * np.cos(np.radians(t)))
        base = (x, top + 20)
        fw = 34 if fingers_apart else 48               # wider than their spacing: touching
        cv2.line(mask, tuple(int(round(v)) for v in base), tuple(int(round(v)) for v in tip),
                 1, fw)
        cv2.circle(mask, tuple(int(round(v)) for v in tip), fw // 2, 1, -1)
    if not middle_ring_gap:  # the middle-ring web 20 px higher than the others
        cv2.rectangle(mask, (int(cx - 30), int(top - 20)), (int(cx + 30), int(top + 2)), 1, -1)
    # the bottom of each gap: the palm's top edge midway between the capsules there
    at_top = [x + 20 * np.tan(np.radians(t)) for x, t in zip(xs, tilts)]
    valleys = np.array([[(at_top[3] + at_top[2]) / 2, top], [(at_top[2] + at_top[1]) / 2, top],
                        [(at_top[1] + at_top[0]) / 2, top]], np.float64)
    if thumb:
        cv2.line(mask, (int(cx + 70), int(cy + 40)), (int(cx + 170), int(cy - 50)), 1, 38)
        cv2.circle(mask, (int(cx + 170), int(cy - 50)), 19, 1, -1)
    if angle:
        R = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        mask = cv2.warpAffine(mask, R, (w, h), flags=cv2.INTER_NEAREST)
        valleys = valleys @ R[:, :2].T + R[:, 2]
    rng = np.random.default_rng(0)
    if grey:
        img = np.where(mask > 0, 150, 15).astype(np.float32)
        img += rng.normal(0, 2, img.shape)
        img = np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 255).astype(np.uint8)
    else:
        skin = np.array([120, 150, 205], np.float32)      # BGR
        back = np.array([170, 120, 60], np.float32)       # a blue-grey wall
        img = np.where(mask[..., None] > 0, skin, back)
        yy = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
        img = img * yy + rng.normal(0, 3, img.shape)
        img = np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 255).astype(np.uint8)
    return img, valleys, mask


# --------------------------------------------------------------------------------------------
# valleys and frame on drawn hands


@pytest.mark.parametrize("grey", [False, True])
def test_valleys_of_a_drawn_hand(grey):
    img, valleys, _ = drawn_hand(grey=grey)
    reg = extract_regions(img)
    assert reg.modality == ("nir" if grey else "visible")
    got = reg.keypoints.valleys[:3]
    # colour photos are segmented at half size (320 px), NIR frames at full size
    assert np.abs(got - valleys).max() < (1.5 if grey else 3.0), (got, valleys)
    assert reg.keypoints.hand == "right"
    assert np.isfinite(reg.keypoints.valleys[3]).all()      # thumb-index found
    # palm centre: ``offset`` spans below the valley line, midway between the outer valleys
    span = np.hypot(*(valleys[0] - valleys[2]))
    want = (valleys[0] + valleys[2]) / 2 + np.array([0, 1]) * VISIBLE_GEOMETRY.offset * span
    if grey:
        from device.vision.regions import NIR_GEOMETRY
        want = (valleys[0] + valleys[2]) / 2 + np.array([0, 1]) * NIR_GEOMETRY.offset * span
    assert np.hypot(*(reg.keypoints.palm_centre - want)) < 3.0
    assert reg.roi.shape == (FIRST_SIZE, FIRST_SIZE) and reg.roi.dtype == np.uint8
    assert reg.second_region.shape == (SECOND_SIZE, SECOND_SIZE)
    assert 0.0 <= reg.quality <= 1.0 and reg.quality > 0.5


def test_mirrored_hand_is_a_left_palm_with_the_same_labels():
    img, valleys, _ = drawn_hand()
    reg = extract_regions(img[:, ::-1].copy())
    mirrored = valleys.copy()
    mirrored[:, 0] = W - 1 - mirrored[:, 0]
    assert reg.keypoints.hand == "left"
    assert np.abs(reg.keypoints.valleys[:3] - mirrored).max() < 3.0


def test_labels_without_a_thumb_follow_the_right_hand_convention():
    img, valleys, _ = drawn_hand(thumb=False)
    reg = extract_regions(img)
    assert reg.keypoints.hand is None and np.isnan(reg.keypoints.valleys[3]).all()
    assert np.abs(reg.keypoints.valleys[:3] - valleys).max() < 3.0


@pytest.mark.parametrize("angle", [-35.0, 25.0, 90.0])
def test_the_first_region_turns_and_moves_with_the_hand(angle):
    """Acceptance check 3 of the spec: the first region follows the palm keypoints."""
    img0, v0, _ = drawn_hand()
    img1, v1, _ = drawn_hand(angle=angle)
    r0, r1 = extract_regions(img0), extract_regions(img1)
    assert np.abs(r1.keypoints.valleys[:3] - v1).max() < 5.0
    R = cv2.getRotationMatrix2D((320.0, 300.0), angle, 1.0)
    moved = r0.keypoints.palm_centre @ R[:, :2].T + R[:, 2]
    assert np.hypot(*(r1.keypoints.palm_centre - moved)) < 5.0
    # the rectified first region is a rotation of the image, never a reflection: same content
    a, b = r0.roi.astype(np.float32), r1.roi.astype(np.float32)
    assert np.abs(a - b).mean() < 6.0


def test_translation_moves_the_regions_by_the_same_amount():
    img0, _, _ = drawn_hand(cx=300, cy=300)
    img1, _, _ = drawn_hand(cx=340, cy=320)
    r0, r1 = extract_regions(img0), extract_regions(img1)
    assert np.allclose(r1.keypoints.palm_centre - r0.keypoints.palm_centre, [40, 20], atol=1.5)
    assert np.allclose(r1.roi_corners - r0.roi_corners, [40, 20], atol=1.5)


def test_hidden_middle_ring_valley():
    """Fingers leaving the image just above the valleys, the middle-ring web higher than the
    others: its gap is too shallow for a convexity defect. Only with allow_hidden_middle the
    middle-ring valley is taken as the deepest outline point between the other two."""
    _, valleys, mask = drawn_hand(cy=110, middle_ring_gap=False)
    assert valleys[0, 1] == 30 and mask[0].any()        # fingers cut by the top border
    with pytest.raises(RegionError) as e:
        find_valleys(mask)
    assert e.value.reason == "too_few_valleys"
    fit = find_valleys(mask, allow_hidden_middle=True)
    assert np.hypot(*(fit.index_middle - valleys[0])) < 2.0
    assert np.hypot(*(fit.ring_little - valleys[2])) < 2.0
    assert abs(fit.middle_ring[1] - 10) < 2.0 and abs(fit.middle_ring[0] - valleys[1, 0]) < 12


# --------------------------------------------------------------------------------------------
# the two regions


def test_regions_partition_and_share_one_scale():
    img, _, mask = drawn_hand()
    reg = extract_regions(img)
    m0 = (SECOND_SIZE - FIRST_SIZE) // 2
    # the central FIRST_SIZE square of the second region's square is the first region
    centre = reg.second_region[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE].astype(np.float32)
    assert np.abs(centre - reg.roi).mean() < 1.0
    assert not reg.second_mask[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE].any()
    assert reg.second_mask.mean() > 0.2
    # at image level: disjoint, the first contains the palm centre, the second is on the hand
    first, second = reg.image_masks()
    assert first.shape == second.shape == (H, W)
    assert not (first & second).any()
    x, y = np.round(reg.keypoints.palm_centre).astype(int)
    assert first[y, x]
    assert (second & ~mask.astype(bool)).sum() < 0.01 * second.sum()   # on the hand
    assert second.sum() > first.sum() > 0
    # roi_corners follow the synthetic hands' convention: rectify() reproduces the ROI
    assert np.array_equal(rectify(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), reg.roi_corners,
                                  FIRST_SIZE), reg.roi)


def test_frame_corners_are_a_proper_rotation():
    c, centre = frame_corners(np.array([400.0, 200.0]), np.array([300.0, 200.0]),
                              np.array([350.0, 400.0]), VISIBLE_GEOMETRY)
    e1, e2 = c[1] - c[0], c[3] - c[0]
    assert e1[0] * e2[1] - e1[1] * e2[0] > 0       # same handedness as the image axes
    assert np.allclose(np.hypot(*e1), np.hypot(*e2)) and abs(np.dot(e1, e2)) < 1e-6
    assert np.allclose(centre, [350, 200 + 0.875 * 100])
    assert np.allclose(np.hypot(*e1), 1.25 * 100)


def test_regions_from_roi():
    rng = np.random.default_rng(3)
    roi = cv2.GaussianBlur(rng.integers(0, 255, (128, 128)).astype(np.uint8), (0, 0), 2)
    reg = regions_from_roi(roi)
    assert reg.roi.shape == (FIRST_SIZE, FIRST_SIZE)
    assert reg.second_region.shape == reg.second_mask.shape == (SECOND_SIZE, SECOND_SIZE)
    m0 = (SECOND_SIZE - FIRST_SIZE) // 2
    assert not reg.second_mask[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE].any()
    assert reg.second_mask.sum() == SECOND_SIZE ** 2 - FIRST_SIZE ** 2
    centre = reg.second_region[m0:m0 + FIRST_SIZE, m0:m0 + FIRST_SIZE].astype(np.float32)
    assert np.abs(centre - reg.roi).mean() < 1.0
    first, second = reg.image_masks()            # the crop: disjoint and covering it
    assert first.shape == (128, 128) and not (first & second).any() and (first | second).all()
    assert 0.35 < first.mean() < 0.55             # the central (2/3)^2 of the crop
    colour = regions_from_roi(cv2.cvtColor(roi, cv2.COLOR_GRAY2BGR))
    assert np.array_equal(colour.roi, reg.roi)
    with pytest.raises(RegionError):
        regions_from_roi(np.zeros((4, 4), np.uint8))


# --------------------------------------------------------------------------------------------
# failures


def _reason(img):
    with pytest.raises(RegionError) as e:
        extract_regions(img)
    assert e.value.reason in REASONS and isinstance(e.value, ValueError)
    return e.value.reason


def test_failures_name_their_reason():
    assert _reason(np.full((H, W, 3), 90, np.uint8)) == "no_hand"
    assert _reason(np.full((H, W), 10, np.uint8)) == "no_hand"
    assert _reason(np.zeros((10, 10), np.uint8)) == "bad_input"
    fist = np.full((H, W), 15, np.uint8)
    cv2.ellipse(fist, (320, 260), (120, 150), 0, 0, 360, 150, -1)
    assert _reason(fist) == "too_few_valleys"
    img, _, _ = drawn_hand(fingers_apart=False)          # fingers together: no gaps
    assert _reason(img) == "too_few_valleys"
    low, _, _ = drawn_hand(cy=430)                       # the palm leaves the image
    assert _reason(low) in ("hand_cut_off", "roi_off_hand")
    with pytest.raises(RegionError) as e:
        extract_regions(drawn_hand()[0], min_quality=1.01)
    assert e.value.reason == "low_quality"


# --------------------------------------------------------------------------------------------
# synthetic hands of the data engine (ground truth from the renderer)


def _texture(subject: int, sample: int, rng: np.random.Generator) -> np.ndarray:
    r = np.random.default_rng(1000 + subject)
    t = 0.72 + 0.04 * cv2.GaussianBlur(r.standard_normal((128, 128)).astype(np.float32),
                                       (0, 0), 2)
    return np.clip(t + 0.01 * rng.standard_normal((128, 128)), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def synth_hands(tmp_path_factory):
    from device.synth.sensor_sets import write_hands
    root = tmp_path_factory.mktemp("hands")
    write_hands(root, subjects=4, sessions=2, samples=1, views=1, seed=2024,
                palm_texture_fn=_texture)
    return root


def test_synthetic_hands_keypoint_error(synth_hands):
    errs, centre_errs, fails = [], [], 0
    for png in sorted(synth_hands.rglob("*.png")):
        gt = json.loads(png.with_suffix(".json").read_text())
        try:
            reg = extract_regions(read_hand_image(png))
        except RegionError:
            fails += 1
            continue
        errs += list(np.hypot(*(reg.keypoints.valleys[:3] - np.array(gt["valleys"][:3])).T))
        centre_errs.append(np.hypot(*(reg.keypoints.palm_centre - gt["palm_centre"])))
    assert fails <= 2                                   # of 8
    assert np.median(errs) < 5.0 and np.median(centre_errs) < 10.0


def test_evaluate_hand_level(synth_hands, tmp_path):
    """palmgate evaluate --level hand: region failures count toward fta and leave the pairs."""
    import shutil

    from device.eval.recognition import evaluate
    root = tmp_path / "set"
    shutil.copytree(synth_hands, root)
    cv2.imwrite(str(root / "0000" / "1_02.png"), np.full((H, W, 3), 90, np.uint8))
    rep = evaluate(root, level="hand", matcher="bocv", out=tmp_path / "out")
    assert rep["level"] == "hand" and rep["n_images"] == 9
    assert rep["fta"] >= 1 / 9 and rep["fta_reasons"].get("no_hand", 0) == 1
    assert rep["n_genuine"] >= 1 and rep["n_impostor"] >= 1
    assert (tmp_path / "out" / "report.json").exists()
    with pytest.raises(ValueError):
        evaluate(root, level="wrist")


# --------------------------------------------------------------------------------------------
# real data (skipped where ../shared/data is absent)


def test_real_polyu_nir_frames():
    from tools.paths import real_dir
    try:
        root = real_dir("polyu_nir")
    except FileNotFoundError:
        pytest.skip("PolyU NIR not available")
    paths = [root / s / f"{k}_01.jpg" for s in ("0002", "0050", "0120", "0240") for k in (1, 2)]
    for p in paths:
        im = read_hand_image(p)
        assert im.ndim == 2
        reg = extract_regions(im)
        assert reg.modality == "nir"
        c = reg.roi_corners
        assert (c >= 0).all() and (c[:, 0] < im.shape[1]).all() and (c[:, 1] < im.shape[0]).all()
        # the valley line runs down the image (fingers to the left), the palm centre right of it
        assert reg.keypoints.palm_centre[0] > reg.keypoints.valleys[:3, 0].max() + 40

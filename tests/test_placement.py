"""Where the hand lies on the transmission sensor: the placement of sensor frames alone
(device/synth/placement.py) and the gate's sensor stage on a live hand that lies off-centre."""
from dataclasses import replace

import numpy as np
import pytest

from device.synth import placement
from device.synth.hand_geometry import perturb_pose


@pytest.fixture
def restore_placement(monkeypatch):
    monkeypatch.setattr(placement, "PLACEMENT", placement.PLACEMENT)


def test_placements_and_suffix(restore_placement):
    assert placement.PLACEMENT == "centred" and placement.placement_suffix() == ""
    placement.use_placement("wide")
    assert placement.placement_suffix() == "_wide"
    with pytest.raises(ValueError, match="unknown placement"):
        placement.use_placement("anywhere")
    assert placement.PLACEMENT == "wide"            # a bad name changes nothing


def test_scene_pose_scales_the_same_draws(restore_placement):
    a = placement.scene_pose(np.random.default_rng(3), 0.6)
    assert a == perturb_pose(np.random.default_rng(3), 0.6)     # centred: the draw as before
    placement.use_placement("wide")
    b = placement.scene_pose(np.random.default_rng(3), 0.6)
    k = placement.PLACEMENTS["wide"]
    assert b.rotation == pytest.approx(a.rotation * k)
    assert np.allclose(b.translation, np.multiply(a.translation, k))
    assert np.allclose(b.tilt, np.multiply(a.tilt, k))


def test_wide_frames_differ_only_by_pose_and_centred_ones_stay(restore_placement):
    from device.synth.sensor_sets import identity, liveness_frame
    g = identity(5, 1)
    frame = lambda cls, ci: liveness_frame("xray", 5, ci, cls, 3, 1, g, (128, 128))  # noqa: E731
    before = [frame("bona_fide", 0), frame("no_bones", 2)]
    placement.use_placement("wide")
    wide = [frame("bona_fide", 0), frame("no_bones", 2)]      # every class alike
    placement.use_placement("centred")
    again = [frame("bona_fide", 0), frame("no_bones", 2)]
    for b, w, a in zip(before, wide, again):
        assert np.array_equal(b, a) and not np.array_equal(b, w)
        assert abs(float(b.mean()) - float(w.mean())) < 0.05   # same exposure, other pose


def test_synth_placement_is_for_frames_alone(tmp_path, capsys):
    from tools.synth.__main__ import main
    rc = main(["liveness", "--sensor", "xray", "--out", str(tmp_path / "p"), "--bona-fide",
               "1", "--per-species", "0", "--presentations", "--placement", "wide"])
    assert rc == 2 and "--placement is for sensor frames alone" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_sensor_stage_decides_a_live_hand_off_centre_as_centred(precision):
    """The gate's sensor stage (presence -> SR -> liveness) on one live hand in one pose at the
    sensor's centre and turned and shifted on it (as a presentation places it: the views'
    hand where it lies in the gate): the same decision, live."""
    from device.models.sensor_branch import SensorBranch
    from device.synth.bound import bona_fide_scene, render_placed
    from device.synth.sensor_sets import identity
    branch = SensorBranch("xray", precision, threads=1)
    frames = []
    for i in range(3):
        geom = identity(4321, i)
        pose = perturb_pose(np.random.default_rng([77, i]), 0.8)
        for rot, shift in ((0.0, (0.0, 0.0)), (11.0, (8.0, -6.0)), (-11.0, (-8.0, 6.0))):
            frames.append(render_placed(bona_fide_scene("xray"), geom,
                                        np.random.default_rng([78, i]), "xray",
                                        replace(pose, rotation=rot, translation=shift), 0.0))
    out = branch.judge(frames)
    for k in range(0, len(out), 3):
        centred, *placed = out[k:k + 3]
        assert centred.live and centred.reason is None
        for r in placed:
            assert (r.live, r.reason) == (centred.live, centred.reason), (k, r.p_live)

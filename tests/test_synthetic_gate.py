"""device.eval.synthetic_gate: which enrolment presentations each try takes (the enrolment
itself runs the real gate: tests/test_liveness_enrol.py)."""
import pytest

from device.eval import synthetic_gate
from device.eval.synthetic_gate import ENROL_PRESENTATIONS, enrol_people, enrolment_bursts


def test_two_presentations_take_the_pairs_every_earlier_run_took():
    assert ENROL_PRESENTATIONS == 2
    assert [list(enrolment_bursts(t)) for t in range(3)] == [[0, 1], [2, 3], [4, 5]]


def test_each_try_takes_fresh_presentations():
    assert [list(enrolment_bursts(t, 3)) for t in range(2)] == [[0, 1, 2], [3, 4, 5]]
    assert list(enrolment_bursts(1, 1)) == [1]
    with pytest.raises(ValueError):
        enrolment_bursts(0, 0)


class People:
    seed = 0

    def burst(self, person, kind, n):
        return (person, kind, n)


class Pipe:
    def load_gallery(self, store):
        self.loaded = True


def test_enrol_people_enrols_from_the_asked_presentations_and_retries_with_fresh_ones(
        monkeypatch):
    import device.gate.enrol as enrol
    calls = []

    def fake_enrol(pipe, store, uid, bursts):
        calls.append((uid, list(bursts)))
        if uid == "p001" and len(calls) == 2:
            raise enrol.EnrolError("refused")

    monkeypatch.setattr(enrol, "enrol_user", fake_enrol)
    pipe = Pipe()
    enrolled, refused = enrol_people(pipe, None, People(), [0, 1], presentations=3)
    assert enrolled == [0, 1] and pipe.loaded
    assert calls[0] == ("p000", [(0, "enrol", 0), (0, "enrol", 1), (0, "enrol", 2)])
    assert calls[1] == ("p001", [(1, "enrol", 0), (1, "enrol", 1), (1, "enrol", 2)])
    assert calls[2] == ("p001", [(1, "enrol", 3), (1, "enrol", 4), (1, "enrol", 5)])
    assert refused == [{"person": 1, "try": 0, "reason": "refused"}]
    assert synthetic_gate.ENROL_TRIES == 3


def test_check_margins_refuses_fewer_than_one_enrolment_presentation(capsys):
    from device.eval.check_margins import main
    with pytest.raises(SystemExit):
        main(["set", "--classes", "bona_fide", "--out", "x.json", "--enrol-presentations", "0"])
    assert "at least 1" in capsys.readouterr().err


def test_both_enrolling_measurements_share_the_enrol_presentations_option(capsys):
    """check_margins and sensor_identity_gate: one option (default ENROL_PRESENTATIONS), one
    refusal of fewer than one, before anything is rendered or enrolled."""
    import argparse

    from device.eval import sensor_identity_gate
    from device.eval.synthetic_gate import (ENROL_PRESENTATIONS, add_enrol_presentations,
                                            check_enrol_presentations)
    ap = argparse.ArgumentParser()
    add_enrol_presentations(ap)
    a = ap.parse_args([])
    assert a.enrol_presentations == ENROL_PRESENTATIONS
    check_enrol_presentations(ap, a)
    with pytest.raises(SystemExit):
        sensor_identity_gate.main(["--seed", "1", "--out", "x.json",
                                   "--enrol-presentations", "0"])
    assert "at least 1" in capsys.readouterr().err

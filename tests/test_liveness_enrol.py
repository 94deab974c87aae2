"""`palmgate evaluate-liveness SET --enrol` (device/eval/liveness_enrol.py): the set's people
enrolled through the real enrolment path, every presentation decided by the gate with 1:N,
so the reasons and the rates are the gate's; the mode's bad inputs are refused clearly."""
import json
import shutil

import pytest
from conftest import SHIPPED, shipped_sensor_models_listed

pytestmark = pytest.mark.skipif(
    not (shipped_sensor_models_listed("xray") and (SHIPPED / "binding_xray.json").exists()),
    reason="no shipped X-ray sensor models or binding numbers")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from device.synth.presentation_sets import write_presentations
    d = tmp_path_factory.mktemp("enrolset")
    write_presentations(d, "xray", 2, 1, seed=4243, people=3)
    return d


def _cli(*args):
    from device.cli import main
    return main(["evaluate-liveness", *map(str, args)])


def test_enrol_decides_every_presentation_as_the_gate(tiny_set, tmp_path, capsys):
    assert _cli(tiny_set, "--sensor", "xray", "--precision", "int8", "--threads", "1",
                "--enrol", "--out", tmp_path) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    rows = json.loads((tmp_path / "rows.json").read_text())
    man = json.loads((tiny_set / "manifest.json").read_text())
    people = max(max(f["person"], f.get("other_person", -1)) for f in man["files"]) + 1
    assert rep["mode"] == "enrol" and rep["enrolment"]["people"] == people
    assert rep["enrolment"]["presentations"] == 3        # as palmgate enroll --capture
    assert rep["enrolment"]["enrolled"] + len({r["person"] for r in
                                                rep["enrolment"]["refused"]}) >= people
    assert rep["gate"]["fte"]["n"] == people and "bpcer_enrolled" in rep["gate"]
    assert len(rows) == 4 and rep["n_attack"] == {"mixed_replica_views": 1,
                                                  "mixed_replica_sensor": 1}
    for r in rows:
        assert r["expected_user"] == f"p{r['person']:03d}" and r["reason"]
        assert (r["decision"] == "open") == (r["reason"] == "match")
    bona = [r for r in rows if r["live"]]
    # the set's person is the enrolled one: a bona fide presentation opens as its own person
    assert any(r["decision"] == "open" and r["user_id"] == r["expected_user"] for r in bona)
    g = rep["gate"]
    assert g["bona_fide"]["n"] == 2 and "bpcer_acquired" in g["bona_fide"]
    assert g["bpcer_all"] == g["bona_fide"]["bpcer_all"]["rate"]
    for sp in ("mixed_replica_views", "mixed_replica_sensor"):
        c = g["attack"][sp]
        assert c["apcer"]["k"] == sum(r["decision"] == "open" for r in rows
                                      if r["class"] == sp)
    assert set(rep["stage"]["apcer"]) == set(rep["n_attack"])       # the stage columns
    assert rep["ms_per_presentation"]["cpu_median"] > 0


def test_per_class_takes_the_first_of_each_class(tiny_set, tmp_path):
    assert _cli(tiny_set, "--sensor", "xray", "--precision", "int8", "--enrol",
                "--per-class", "1", "--enrol-presentations", "2", "--out", tmp_path) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["folder"].split("/")[-1] for r in rows] == ["00000"] * 3
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["subset"].startswith("first 1") and rep["enrolment"]["presentations"] == 2


def test_bad_input_is_refused_clearly(tiny_set, tmp_path, capsys):
    assert _cli(tiny_set, "--sensor", "xray", "--per-class", "1", "--out", tmp_path) == 2
    assert "--per-class is taken only with --enrol" in capsys.readouterr().err
    assert _cli(tiny_set, "--sensor", "xray", "--enrol-presentations", "3",
                "--out", tmp_path) == 2
    assert "--enrol-presentations takes a number >= 1, with --enrol" in capsys.readouterr().err
    assert _cli(tiny_set, "--sensor", "xray", "--enrol", "--enrol-presentations", "0",
                "--out", tmp_path) == 2
    assert "--enrol-presentations takes a number >= 1" in capsys.readouterr().err
    assert _cli(tiny_set, "--sensor", "nir", "--enrol", "--out", tmp_path) == 2
    assert "rendered for the xray sensor, not nir" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(tiny_set / "bona_fide", bare / "bona_fide")
    assert _cli(bare, "--sensor", "xray", "--enrol", "--out", tmp_path / "o") == 2
    assert "synthetic_seed" in capsys.readouterr().err
    assert not (tmp_path / "o" / "report.json").exists()


def test_set_plan_is_what_the_gate_path_measurements_decide(tiny_set, tmp_path):
    """One plan of a set's classes and presentation folders for ``--enrol``, check_margins and
    identity_lines_sum: classes in the asked order, the first N of each, the set's people."""
    from device.eval.liveness_enrol import set_plan
    info, plan = set_plan(tiny_set)
    assert [c for c, _ in plan] == ["bona_fide"] * 2 + ["mixed_replica_sensor",
                                                        "mixed_replica_views"]
    assert all((f / "sensor.png").is_file() for _, f in plan) and info["people"] >= 3
    _, plan = set_plan(tiny_set, ["mixed_replica_views", "bona_fide"], {"bona_fide": 1})
    assert [c for c, _ in plan] == ["mixed_replica_views", "bona_fide"]
    with pytest.raises(ValueError, match="no class 'glove'"):
        set_plan(tiny_set, ["glove"])
    with pytest.raises(ValueError, match="rendered for the xray sensor, not nir"):
        set_plan(tiny_set, sensor="nir")
    bare = tmp_path / "bare"
    shutil.copytree(tiny_set, bare)
    for f in (bare / "bona_fide").rglob("view_0.png"):
        f.unlink()
    with pytest.raises(ValueError, match="not bare sensor frames"):
        set_plan(bare)

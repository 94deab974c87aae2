"""Every attack species as a whole presentation (issue 21 item 4): the victim's replica before
the cameras, the species under the sensor; a species laid on the attacker's own live hand lies
where the replica is. The plain presentation sets stay byte-identical."""
import json
import subprocess
from dataclasses import replace
import sys

import numpy as np
import pytest
from conftest import ROOT, SHIPPED, shipped_sensor_models_listed


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def nir_sets(tmp_path_factory):
    from device.synth.presentation_sets import write_presentations
    plain, full = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("full")
    write_presentations(plain, "nir", 1, 1, seed=4244, views=2)
    write_presentations(full, "nir", 1, 1, seed=4244, views=2, species=True)
    return plain, full


def test_the_species_come_after_and_change_nothing_before(nir_sets):
    from device.synth.attacks import SPECIES
    plain, full = nir_sets
    a, b = _files(plain), _files(full)
    assert a and all(b[k] == v for k, v in a.items())          # bona fide + mixed, byte for byte
    extra = {k.parts[1] for k in set(b) - set(a)}
    assert extra == set(SPECIES["nir"])
    m = json.loads((full / "manifest.json").read_text())
    assert m["classes"] == json.loads((plain / "manifest.json").read_text())["classes"] + list(
        SPECIES["nir"])
    for sp in SPECIES["nir"]:
        meta = json.loads((full / "attack" / sp / "00000" / "burst.json").read_text())
        assert meta["class"] == sp and meta["species"] == sp
        assert meta["placement"] == ("on_live_hand" if sp == "vein_film_over_live" else "own")
        assert meta["other_person"] != meta["person"]


@pytest.mark.parametrize("sensor,species", [("xray", "print_over_live"),
                                            ("nir", "vein_film_over_live")])
def test_a_copy_on_a_live_hand_lies_where_the_replica_is(sensor, species, monkeypatch):
    """The attacker's live hand under the sensor is drawn in the gate's placement of the pose
    and depth the views show (the replica lies on it), and the copy on the film in the
    placement of the victim's hand there; the frame alone draws both centred."""
    from device.synth import sensor as S
    from device.synth.bound import scene_placement
    from device.synth.hands import sample_rig
    from device.synth.sensor_sets import identity
    from device.synth.species_presentations import render_species
    name = f"bona_fide_{sensor}_scene"
    calls, real = [], getattr(S, name)

    def spy(geom, rng, base, pose=None, zoom=None, **kw):
        calls.append((geom, pose, zoom))
        return real(geom, rng, base, pose=pose, zoom=zoom, **kw)

    monkeypatch.setattr(S, name, spy)
    rig = sample_rig(np.random.default_rng([7, 4]), 2, (480, 640))
    tex = np.full((128, 128), 0.5, np.float32)
    victim, attacker = identity(7, 0), identity(7, 1)     # a right hand, a left hand
    shot, meta = render_species(species, victim, tex, attacker, tex,
                                np.random.default_rng(7), rig, sensor)
    assert meta == {"species": species, "placement": "on_live_hand"}
    same_side = replace(attacker, hand=victim.hand)       # the attacker's other hand
    assert victim.hand != attacker.hand == "left"
    pa, za = scene_placement(same_side, shot.pose, shot.depth, sensor)
    g, p, z = calls[0]
    assert (g.hand, g.size, g.palm_width, g.vein_seed) == (
        victim.hand, attacker.size, attacker.palm_width, attacker.vein_seed)
    assert (p, z) == (pa, za)
    if sensor == "xray":                        # the victim's radiograph on the film
        pv, zv = scene_placement(victim, shot.pose, shot.depth, sensor)
        assert calls[1] == (victim, pv, zv)
    assert shot.sensor.shape == S.CAPTURE_SIZE[sensor] and np.isfinite(shot.sensor).all()


def test_unknown_species_is_refused():
    from device.synth.species_presentations import render_species
    with pytest.raises(ValueError, match="unknown species"):
        render_species("photo", None, None, None, None, np.random.default_rng(0), [], "nir")


def test_the_synth_flag_needs_presentations(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools.synth", "liveness", "--sensor", "nir",
                        "--out", str(tmp_path), "--bona-fide", "1", "--per-species", "1",
                        "--attack-species"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 2 and "--presentations" in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not (shipped_sensor_models_listed("nir")
                         and (SHIPPED / "binding_nir.json").exists()),
                    reason="no shipped NIR sensor models or binding numbers")
def test_evaluate_liveness_reports_each_species_at_the_gate(nir_sets, tmp_path):
    from device.eval.liveness import evaluate_liveness
    from device.synth.attacks import SPECIES
    _, full = nir_sets
    rep = evaluate_liveness(full, "nir", tmp_path)
    gate_reasons = {"passed", "no_hand_in_sensor", "not_live", "sensor_mismatch"}
    for sp in SPECIES["nir"]:
        assert rep["n_attack"][sp] == 1 and sp in rep["apcer"]
        assert rep["binding"]["attack"][sp]["presentations"] == 1
        assert set(rep["deny_reasons"]["attack"][sp]) <= gate_reasons, rep["deny_reasons"]

"""The sensor binding's threshold and probe ranges come from the signed manifest
(models/binding_<sensor>.json, issue 21 item 5): a missing, tampered or unsigned file is
refused and the binding stage denies (fail secure); a configured threshold may only be
stricter."""
import json
import os

import numpy as np
import pytest
from conftest import SHIPPED, binding_stage, sign_models

from device.gate.binding_numbers import (load_binding_numbers, numbers_file, parse_numbers,
                                         stricter_max_score)
from device.models.model import ModelError

pytestmark = pytest.mark.skipif(not (SHIPPED / "binding_nir.json").exists(),
                                reason="no shipped binding numbers")


def _burst():
    from device.sources.replay import Burst
    frame = np.zeros((128, 128), np.uint8)
    frame[30:100, 40:90] = 200
    return Burst([np.zeros((480, 640, 3), np.uint8)] * 3, frame, {})


def _deny(stage):
    from device.gate.decision import Decision, Deny
    with pytest.raises(Deny) as e:
        stage(_burst(), Decision())
    return e.value


def test_shipped_numbers_are_signed_and_agree_with_their_entry():
    man = json.loads((SHIPPED / "manifest.json").read_text())["models"]
    for s in ("xray", "nir"):
        n = load_binding_numbers(s)
        assert n.max_score == man[numbers_file(s)]["threshold"] > 0
        assert len(n.stats["lo"]) == len(n.stats["hi"]) and n.stats["clip"] > 0
        assert n.doc["probe_ranges"] is n.stats and "command" in n.entry


def test_malformed_numbers_are_refused():
    good = json.loads((SHIPPED / "binding_nir.json").read_text())
    assert parse_numbers(dict(good, extra={"w": 1}), "nir", "f").doc["extra"] == {"w": 1}
    for bad in (dict(good, sensor="xray"), dict(good, format=2), dict(good, max_score=-1),
                dict(good, max_score=float("nan")), dict(good, max_score=10 ** 400), dict(good, probe_ranges={"lo": [1.0]}),
                dict(good, probe_ranges=dict(good["probe_ranges"], lo=["x"] * len(
                    good["probe_ranges"]["lo"])))):
        with pytest.raises(ModelError):
            parse_numbers(bad, "nir", "f")
    with pytest.raises(ModelError, match="differs from the manifest"):
        parse_numbers(good, "nir", "f", {"threshold": good["max_score"] + 1})


def _signed_in_force(models) -> float:
    """The outline threshold the signed file puts in force (with the palm lines: theirs)."""
    from device.gate.binding_numbers import in_force
    return in_force(load_binding_numbers("nir", models)).max_score


def _without_palm_lines(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "palm_lines"}


def test_a_configured_threshold_may_only_be_stricter(tiny_models):
    signed = _signed_in_force(tiny_models)
    assert stricter_max_score(signed / 2, signed, "f") == signed / 2
    assert binding_stage("nir", tiny_models).max_score == signed
    tighter = binding_stage("nir", tiny_models, binding_max_distance=signed / 2)
    assert tighter.max_score == signed / 2
    looser = binding_stage("nir", tiny_models, binding_max_distance=signed + 1)
    assert looser.max_score is None and "above the signed" in looser.error
    d = _deny(looser)
    assert d.reason == "liveness_unavailable" and "above the signed" in d.detail


def test_missing_tampered_or_unsigned_numbers_deny_and_the_stage_recovers(tiny_models):
    f = tiny_models / "binding_nir.json"
    text = f.read_text()
    os.unlink(f)                                 # a link to the shipped file: replace it
    d = _deny(binding_stage("nir", tiny_models))
    assert d.reason == "liveness_unavailable" and "not found" in d.detail
    doc = json.loads(text)
    doc["max_score"] = 1000.0                    # the threshold loosened, hash not updated
    f.write_text(json.dumps(doc))
    stage = binding_stage("nir", tiny_models)
    assert "sha256" in _deny(stage).detail
    f.write_text(text)                           # the signed file is back: the stage recovers
    assert _deny(stage).reason == "sensor_mismatch" and stage.max_score is not None
    (tiny_models / "manifest.sig").unlink()
    assert "not signed" in _deny(binding_stage("nir", tiny_models)).detail


def test_the_fitting_command_writes_numbers_and_entry(tiny_models, trust_test_key):
    from device.eval.binding_release import write_numbers
    old = load_binding_numbers("nir", tiny_models)
    os.unlink(tiny_models / "binding_nir.json")
    (tiny_models / "binding_nir.json").write_text(json.dumps(old.doc))
    entry = write_numbers("nir", {"max_score": 12.5, "new_term": {"w": 0.5}}, command="cmd",
                          data="d", metrics={"m": 1}, models_dir=tiny_models)
    assert entry["threshold"] == 12.5 and entry["metrics"] == {"m": 1}
    with pytest.raises(ModelError):              # changed: refused until re-signed
        load_binding_numbers("nir", tiny_models)
    sign_models(tiny_models, trust_test_key)
    n = load_binding_numbers("nir", tiny_models)
    assert n.max_score == 12.5 and n.doc["new_term"] == {"w": 0.5} and n.stats == old.stats
    with pytest.raises(ModelError):              # malformed numbers are never written
        write_numbers("nir", {"max_score": -1.0}, command="c", data="d",
                      models_dir=tiny_models)


def test_the_health_report_names_a_refused_binding_file(tiny_models):
    from device.config import load_config
    from device.gate.pipeline import Pipeline
    os.unlink(tiny_models / "binding_nir.json")
    cfg = load_config(None, gate={"views": 3}, paths={"models": str(tiny_models)},
                      liveness={"sensor": "nir"})
    p = Pipeline(cfg, extractor=object())
    try:
        assert "sensor binding" in p.liveness_error and "binding_nir.json" in p.liveness_error
    finally:
        p.close()


def test_status_shows_the_binding_threshold_in_force(tmp_path, tiny_models, capsys):
    from conftest import gate_config, write_toml

    from device.cli import main
    signed = _signed_in_force(tiny_models)
    f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models))
    assert main(["status", "--config", str(f)]) == 0
    rep = json.loads(capsys.readouterr().out)["models"]["binding_nir.json"]
    assert rep["ok"] and rep["threshold"] == signed
    f = write_toml(tmp_path / "q.toml", gate_config(
        tmp_path, tiny_models, liveness={"binding_max_distance": signed + 5}))
    assert main(["status", "--config", str(f)]) == 1
    rep = json.loads(capsys.readouterr().out)["models"]["binding_nir.json"]
    assert not rep["ok"] and "above the signed" in rep["error"]


def test_status_shows_the_palm_line_check_in_force(tmp_path, tiny_models, capsys):
    """With the signed palm-line numbers `palmgate status` shows the check in force beside
    the outline threshold chosen with it (the looser 35.6 never appears alone)."""
    from conftest import gate_config, write_toml

    from device.cli import main
    pl = load_binding_numbers("nir", tiny_models).palm_lines
    if pl is None:
        pytest.skip("the shipped binding_nir.json carries no palm-line numbers")
    f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models))
    main(["status", "--config", str(f)])
    rep = json.loads(capsys.readouterr().out)["models"]["binding_nir.json"]
    assert rep["ok"] and rep["threshold"] == pl["max_score"]
    assert rep["min_palm_lines"] == pl["min_agreement"]
    f = write_toml(tmp_path / "q.toml", gate_config(
        tmp_path, tiny_models, liveness={"binding_min_palm_lines": pl["min_agreement"] - 0.01}))
    main(["status", "--config", str(f)])
    rep = json.loads(capsys.readouterr().out)["models"]["binding_nir.json"]
    assert not rep["ok"] and "below the signed" in rep["error"]


def test_palm_line_numbers_are_checked_and_only_nir_has_them():
    good = _without_palm_lines(json.loads((SHIPPED / "binding_nir.json").read_text()))
    pl = {"min_agreement": 0.05, "max_score": 30.0}
    n = parse_numbers(dict(good, palm_lines=pl), "nir", "f")
    assert n.palm_lines == pl and parse_numbers(good, "nir", "f").palm_lines is None
    for bad in ({"min_agreement": "x", "max_score": 30.0}, {"min_agreement": 0.05},
                {"min_agreement": 0.05, "max_score": -1.0}, [0.05, 30.0]):
        with pytest.raises(ModelError, match="palm_lines"):
            parse_numbers(dict(good, palm_lines=bad), "nir", "f")
    xray = json.loads((SHIPPED / "binding_xray.json").read_text())
    with pytest.raises(ModelError, match="no palm-line check"):
        parse_numbers(dict(xray, palm_lines=pl), "xray", "f")


def test_the_thresholds_in_force():
    from device.gate.binding_numbers import in_force
    good = _without_palm_lines(json.loads((SHIPPED / "binding_nir.json").read_text()))
    off = parse_numbers(good, "nir", "f")
    on = parse_numbers(dict(good, palm_lines={"min_agreement": 0.05, "max_score": 30.0}),
                       "nir", "f")
    assert in_force(off).min_agreement is None and in_force(off).max_score == off.max_score
    f = in_force(on)
    assert (f.max_score, f.min_agreement, f.from_config) == (30.0, 0.05, False)
    f = in_force(on, 20.0, 0.1)
    assert (f.max_score, f.min_agreement, f.from_config) == (20.0, 0.1, True)
    for args in ((31.0, None), (None, 0.04)):
        with pytest.raises(ModelError):
            in_force(on, *args)
    assert in_force(off, None, 0.3).min_agreement == 0.3


def test_a_configured_nan_is_refused_with_a_clear_error():
    """NaN passes every min/max comparison: the configuration refuses it when loaded, and the
    thresholds in force refuse it with a ModelError (`palmgate status` names it) even where
    the signed file has no palm-line numbers (it raised a TypeError there)."""
    from device.config import ConfigError, load_config
    from device.gate.binding_numbers import in_force
    nan = float("nan")
    for key in ("binding_min_palm_lines", "binding_max_distance", "threshold"):
        with pytest.raises(ConfigError, match="not a number"):
            load_config(None, liveness={key: nan})
    off = parse_numbers(_without_palm_lines(json.loads((SHIPPED / "binding_nir.json")
                                                      .read_text())), "nir", "f")
    assert off.palm_lines is None
    for args in ((None, nan), (nan, None)):
        with pytest.raises(ModelError):
            in_force(off, *args)


def test_status_names_the_security_checks_the_configuration_turned_off(tmp_path, tiny_models,
                                                                        capsys):
    """`[liveness] binding = false` (bring-up only) leaves the gate without the binding, and
    `enabled = false` without liveness: `palmgate status` says so instead of staying silent."""
    from conftest import gate_config, write_toml

    from device.cli import main
    f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models))
    main(["status", "--config", str(f)])
    assert "checks_off" not in json.loads(capsys.readouterr().out)
    for key, name in (("binding", "[liveness] binding"), ("enabled", "[liveness] enabled")):
        f = write_toml(tmp_path / f"{key}.toml", gate_config(tmp_path, tiny_models,
                                                            liveness={key: False}))
        main(["status", "--config", str(f)])
        off = json.loads(capsys.readouterr().out)["checks_off"]
        assert any(name in x for x in off)


def test_identity_numbers_of_another_sensors_feature_are_refused():
    """The signed sensor_identity numbers name the feature they were chosen for: X-ray's
    threshold (0.86, the bone patch) on NIR's palm patch, or NIR's (0.29) on the bone patch
    (far looser), would be a release mix-up the gate must refuse, not decide with."""
    xray = json.loads((SHIPPED / "binding_xray.json").read_text())
    assert xray["sensor_identity"]["feature"] == "xray_bone_patch"
    parse_numbers(xray, "xray", "f")
    wrong = dict(xray["sensor_identity"], feature="nir_palm_patch")
    with pytest.raises(ModelError, match="feature"):
        parse_numbers(dict(xray, sensor_identity=wrong), "xray", "f")
    nir = json.loads((SHIPPED / "binding_nir.json").read_text())
    for bad in ("xray_bone_patch", 3, ""):
        with pytest.raises(ModelError, match="feature"):
            parse_numbers(dict(nir, sensor_identity=dict(nir["sensor_identity"],
                                                         feature=bad)), "nir", "f")
    parse_numbers(dict(nir, sensor_identity=dict(nir["sensor_identity"],
                                                 feature="nir_palm_patch")), "nir", "f")

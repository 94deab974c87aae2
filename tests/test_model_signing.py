"""Models and thresholds are authenticated (issue 18, item 4): the manifest carries an Ed25519
signature by a key the package trusts; a threshold edit, a model swapped with its hash
rewritten, a removed signature or an unknown key is refused, and the gate denies."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED, gate_config, sign_models, write_toml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.models import signing
from device.models.model import (SIGNATURE_FILE, Model, ModelError, load_manifest,
                                 load_signed_manifest, verified_file)
from device.models.sensor_branch import SensorBranch
from device.models.trust import package_keys, trusted_keys
from device.models.trusted_keys import RELEASE_KEYS


def _sensor_files():
    man = json.loads((SHIPPED / "manifest.json").read_text())["models"]
    return man, [n for n in ("sr_nir.onnx", "liveness_nir.onnx") if n in man]


needs_nir = pytest.mark.skipif(len(_sensor_files()[1]) < 2 or not all(
    (SHIPPED / n).exists() for n in _sensor_files()[1]), reason="no shipped NIR models")


# ----------------------------------------------------------------------------- pure functions
def test_canonical_bytes_ignore_layout_not_values():
    a = {"format": 1, "models": {"x.onnx": {"sha256": "ab", "threshold": 0.5}}}
    b = json.loads(json.dumps(a, indent=4))
    assert signing.canonical_bytes(a) == signing.canonical_bytes(b)
    assert signing.canonical_bytes(a).startswith(signing.DOMAIN)
    c = json.loads(json.dumps(a))
    c["models"]["x.onnx"]["threshold"] = 0.001
    assert signing.canonical_bytes(a) != signing.canonical_bytes(c)
    with pytest.raises(signing.SignatureError, match="canonical"):
        signing.canonical_bytes({"t": float("nan")})
    with pytest.raises(signing.SignatureError):
        signing.canonical_bytes([1, 2])


def test_sign_and_verify():
    k, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    kid = signing.key_id(k.public_key())
    m = {"format": 1, "models": {"x.onnx": {"sha256": "ab", "threshold": 0.5}}}
    doc = signing.sign(m, k)
    assert signing.verify(m, doc, {kid: k.public_key()}) == kid
    changed = json.loads(json.dumps(m))
    changed["models"]["x.onnx"]["threshold"] = 0.001
    with pytest.raises(signing.SignatureError, match="changed after it was signed"):
        signing.verify(changed, doc, {kid: k.public_key()})
    with pytest.raises(signing.SignatureError, match="does not trust"):
        signing.verify(m, doc, {signing.key_id(other.public_key()): other.public_key()})
    forged = dict(doc, signatures=[{"key_id": kid,
                                    "signature": signing.sign(m, other)["signatures"][0][
                                        "signature"]}])
    with pytest.raises(signing.SignatureError, match="not valid"):
        signing.verify(m, forged, {kid: k.public_key()})
    for bad in ({}, dict(doc, format="x"), dict(doc, algorithm="rsa"),
                dict(doc, signatures=[]), dict(doc, signatures=[{"key_id": kid}]), [doc]):
        with pytest.raises(signing.SignatureError):
            signing.verify(m, bad, {kid: k.public_key()})
    text = signing.public_key_text(k.public_key())
    assert signing.key_id(signing.public_key_from_text(text)) == kid
    with pytest.raises(signing.SignatureError):
        signing.public_key_from_text("not a key")


def test_one_trusted_signature_is_enough_for_a_key_rotation():
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    m = {"format": 1, "models": {}}
    doc = signing.sign(m, [old, new])
    for k in (old, new):
        assert signing.verify(m, doc, {signing.key_id(k.public_key()): k.public_key()}) == \
            signing.key_id(k.public_key())


# ----------------------------------------------------------------------------- shipped
def test_shipped_manifest_verifies_with_the_shipped_key():
    keys = package_keys()
    assert keys and set(keys) == set(RELEASE_KEYS)
    manifest, kid = load_signed_manifest(SHIPPED, trusted_keys=keys)
    assert kid in RELEASE_KEYS and manifest["models"]
    assert load_manifest(SHIPPED) == manifest                  # the default trust


def test_no_private_key_and_no_trust_knob_in_the_package():
    """The runtime reads no private key, loads nothing unchecked, and nothing outside the
    process (environment, file, configuration) can add a trusted key: only
    trust_in_this_process, which no device/ module calls."""
    site_pki = ROOT / "device" / "site" / "tls.py"   # the site's own CA (gate certificates)
    for f in (ROOT / "device").rglob("*.py"):
        text = f.read_text()
        if f != site_pki:
            assert "PRIVATE KEY" not in text and "load_pem_private_key" not in text, f
        if f.name != "trust.py":
            assert "trust_in_this_process(" not in text, f
        assert "PALMGATE_SIGN_KEY" not in text, f
        assert "verify=False" not in text, f           # unchecked loading: tools/tests only
    for f in (ROOT / "models").iterdir():
        assert b"PRIVATE KEY" not in f.read_bytes()[:4096], f


# ----------------------------------------------------------------------------- a release copy
@pytest.fixture
def release_copy(tmp_path) -> Path:
    """The shipped models folder (links; the sensor files and the manifest copied) with the
    release signature: what an attacker with write access to the models folder starts from."""
    d = tmp_path / "models"
    d.mkdir()
    for f in SHIPPED.iterdir():
        if f.name.startswith(("liveness_", "sr_")) or f.name in ("manifest.json", SIGNATURE_FILE):
            shutil.copy(f, d / f.name)
        else:
            os.symlink(f, d / f.name)
    return d


def _edit_manifest(d: Path, edit) -> None:
    m = json.loads((d / "manifest.json").read_text())
    edit(m["models"])
    (d / "manifest.json").write_text(json.dumps(m, indent=2))


@needs_nir
def test_release_copy_loads(release_copy):
    b = SensorBranch("nir", models_dir=release_copy)
    assert b.threshold == b.signed_threshold == _sensor_files()[0]["liveness_nir.onnx"]["threshold"]


@needs_nir
def test_threshold_edit_is_refused(release_copy):
    _edit_manifest(release_copy, lambda m: m["liveness_nir.onnx"].update(threshold=0.001))
    with pytest.raises(ModelError, match="changed after it was signed") as e:
        SensorBranch("nir", models_dir=release_copy)
    assert "No model or threshold is used" in str(e.value)


@needs_nir
def test_swapped_model_with_rewritten_hash_is_refused(release_copy):
    from conftest import _tiny_sensor_models
    entries = _tiny_sensor_models(release_copy)          # other liveness/SR files in place
    _edit_manifest(release_copy, lambda m: [m[n].update(sha256=entries[n]["sha256"])
                                            for n in entries if n in m])
    with pytest.raises(ModelError, match="changed after it was signed"):
        Model("liveness_nir.onnx", release_copy)
    # the file swapped, hash left alone: the sha256 check refuses it as before
    shutil.copy(SHIPPED / "manifest.json", release_copy / "manifest.json")
    with pytest.raises(ModelError, match="sha256"):
        Model("liveness_nir.onnx", release_copy)


def test_removed_signature_is_refused(release_copy):
    (release_copy / SIGNATURE_FILE).unlink()
    with pytest.raises(ModelError, match="is not signed"):
        load_manifest(release_copy)
    with pytest.raises(ModelError, match="is not signed"):
        verified_file("cells_pca.npz", release_copy)
    (release_copy / SIGNATURE_FILE).write_text("{")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_manifest(release_copy)


def test_unknown_key_is_refused(release_copy):
    _edit_manifest(release_copy, lambda m: m["cells_pca.npz"].update(notes="re-signed"))
    sign_models(release_copy, Ed25519PrivateKey.generate())     # an insider's own key
    with pytest.raises(ModelError, match="does not trust"):
        load_manifest(release_copy)


def test_valid_signature_by_a_trusted_key_is_accepted(release_copy, signing_key):
    _edit_manifest(release_copy, lambda m: m["cells_pca.npz"].update(notes="re-signed"))
    sign_models(release_copy, signing_key)
    with pytest.raises(ModelError, match="does not trust"):
        load_manifest(release_copy)                       # not trusted by default
    pub = signing_key.public_key()
    assert load_manifest(release_copy, trusted_keys=[pub])["models"]["cells_pca.npz"][
        "notes"] == "re-signed"
    assert verified_file("cells_pca.npz", release_copy, trusted_keys=trusted_keys([pub]))
    # an explicit set replaces the default one: the release manifest is not signed by it
    with pytest.raises(ModelError, match="does not trust"):
        load_manifest(SHIPPED, trusted_keys=[pub])


def test_trust_in_this_process_is_scoped_to_the_test(release_copy, signing_key):
    from device.models.trust import forget_in_this_process, trust_in_this_process
    sign_models(release_copy, signing_key)
    kid = trust_in_this_process(signing_key.public_key())
    try:
        assert load_manifest(release_copy)
    finally:
        forget_in_this_process(kid)
    with pytest.raises(ModelError, match="does not trust"):
        load_manifest(release_copy)


# ----------------------------------------------------------------------------- thresholds
def test_configured_threshold_can_only_be_stricter(tiny_models):
    b = SensorBranch("nir", models_dir=tiny_models)
    assert b.threshold == b.signed_threshold == 0.02
    assert SensorBranch("nir", models_dir=tiny_models, threshold=0.4).threshold == 0.4
    assert SensorBranch("nir", models_dir=tiny_models, threshold=0.02).threshold == 0.02
    with pytest.raises(ModelError, match="below the signed threshold"):
        SensorBranch("nir", models_dir=tiny_models, threshold=0.001)
    with pytest.raises(ModelError, match="not below 1"):
        SensorBranch("nir", models_dir=tiny_models, threshold=1.0)


def test_gate_denies_on_a_tampered_manifest_and_recovers(tmp_path, tiny_models,
                                                         synthetic_bursts, caplog):
    from device.gate.gate import Gate
    from device.relays.factory import MemoryRelay
    relay = MemoryRelay()
    gate = Gate(gate_config(tmp_path, tiny_models), relay=relay)
    try:           # the sensor models load at the first presentation: after the edit
        _edit_manifest(tiny_models, lambda m: m["liveness_nir.onnx"].update(threshold=0.001))
        b = synthetic_bursts["genuine"][0]
        d = gate.present(b)
        assert (d.decision, d.reason) == ("deny", "liveness_unavailable")
        assert "changed after it was signed" in caplog.text and relay.events == []
        _edit_manifest(tiny_models, lambda m: m["liveness_nir.onnx"].update(threshold=0.02))
        d = gate.present(b)                             # the signed manifest is back
        assert d.reason != "liveness_unavailable" and d.p_live is not None
    finally:
        gate.close()


def test_gate_refuses_a_looser_configured_threshold(tmp_path, tiny_models, synthetic_bursts,
                                                    caplog):
    from device.gate.gate import Gate
    from device.relays.factory import MemoryRelay
    relay = MemoryRelay()
    gate = Gate(gate_config(tmp_path, tiny_models, liveness={"threshold": 0.001}), relay=relay)
    try:
        d = gate.present(synthetic_bursts["attack"][0])
        assert (d.decision, d.reason) == ("deny", "liveness_unavailable")
        assert "below the signed threshold" in caplog.text and relay.events == []
    finally:
        gate.close()


def test_status_reports_the_refused_manifest(tmp_path, tiny_models, capsys):
    from device.cli import main
    f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models))
    assert main(["status", "--config", str(f)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["manifest_signature"]["ok"] and rep["models"]["liveness_nir.onnx"]["ok"]
    assert rep["models"]["liveness_nir.onnx"]["threshold"] == 0.02
    _edit_manifest(tiny_models, lambda m: m["liveness_nir.onnx"].update(threshold=0.001))
    assert main(["status", "--config", str(f)]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is False and not rep["manifest_signature"]["ok"]
    assert "changed after it was signed" in rep["models"]["liveness_nir.onnx"]["error"]
    _edit_manifest(tiny_models, lambda m: m["liveness_nir.onnx"].update(threshold=0.02))
    f = write_toml(tmp_path / "q.toml", gate_config(tmp_path, tiny_models,
                                                   liveness={"threshold": 0.001}))
    assert main(["status", "--config", str(f)]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert "below the signed threshold" in rep["models"]["liveness_nir.onnx"]["error"]


def test_health_report_names_a_bad_signature(tiny_models):
    from device.ops.health import model_report
    cache = {}
    assert model_report(tiny_models, cache=cache)["signature"]["ok"]
    (tiny_models / SIGNATURE_FILE).unlink()
    rep = model_report(tiny_models, cache=cache)
    assert rep["ok"] is False and rep["problems"][0].startswith("model manifest signature:")


def test_run_does_not_start_on_an_unsigned_manifest(tmp_path, tiny_models, capsys):
    from device.cli import main
    (tiny_models / SIGNATURE_FILE).unlink()
    f = write_toml(tmp_path / "p.toml", gate_config(tmp_path, tiny_models))
    assert main(["run", "--config", str(f), "--limit", "1"]) != 0
    assert "is not signed" in capsys.readouterr().err


# ----------------------------------------------------------------------------- release tools
def test_generate_and_sign_cli(tmp_path, signing_key):
    from tools.sign_manifest import main as sign_main
    key = tmp_path / "keys" / "k.pem"
    assert sign_main(["--generate", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    kid = Path(str(key) + ".pub").read_text().split('"')[1]
    with pytest.raises(SystemExit, match="overwrite"):
        sign_main(["--generate", str(key)])
    with pytest.raises(SystemExit, match="inside the git checkout"):
        sign_main(["--generate", str(ROOT / "models" / "k.pem")])
    d = tmp_path / "models"
    d.mkdir()
    (d / "a.onnx").write_bytes(b"a")
    (d / "manifest.json").write_text(json.dumps({"format": 1, "models": {
        "a.onnx": {"sha256": hashlib.sha256(b"a").hexdigest()}}}))
    assert sign_main(["--key", str(key), str(d)]) == 0
    doc = json.loads((d / SIGNATURE_FILE).read_text())
    assert [s["key_id"] for s in doc["signatures"]] == [kid]
    assert sign_main(["--check", str(d)]) == 1                  # not a release key
    (d / "a.onnx").write_bytes(b"b")
    with pytest.raises(SystemExit, match="refusing to sign"):
        sign_main(["--key", str(key), str(d)])


def test_training_entries_sign_with_a_key_or_drop_the_signature(tmp_path, capsys):
    from tools.manifest import update_entry
    from tools.sign_manifest import generate_key
    key, kid = generate_key(tmp_path / "keys" / "train.pem")
    d = tmp_path / "models"
    d.mkdir()
    (d / "a.npz").write_bytes(b"x")
    update_entry("a.npz", metrics={}, command="test", data="test",
                 manifest_path=d / "manifest.json", sign_key=tmp_path / "keys" / "train.pem")
    assert load_manifest(d, trusted_keys=[key.public_key()])["models"]["a.npz"]
    update_entry("a.npz", metrics={"n": 1}, command="test", data="test",
                 manifest_path=d / "manifest.json")
    assert not (d / SIGNATURE_FILE).exists()
    assert "not signed" in capsys.readouterr().err
    with pytest.raises(ModelError, match="is not signed"):
        load_manifest(d, trusted_keys=[key.public_key()])


def test_wheel_build_carries_the_signature(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("device", "calibration"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    (src / "models").mkdir()
    for f in SHIPPED.iterdir():
        os.symlink(f, src / "models" / f.name)
    out = tmp_path / "build"
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
                       cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    files = out / "device" / "model_files"
    assert (files / SIGNATURE_FILE).is_file() and (files / "manifest.json").is_file()
    assert (out / "device" / "models" / "trusted_keys.py").is_file()
    _, kid = load_signed_manifest(files, trusted_keys=package_keys())
    assert kid in RELEASE_KEYS

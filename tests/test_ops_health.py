"""The health/status report: model hashes against the manifest, devices, database and disk,
decisions, the whole report, and its atomic file."""
import hashlib
import json
import time

import pytest
from conftest import sign_models

from device.ops.health import (build_status, camera_report, check_models, database_report,
                               decisions_report, file_hashes, model_report, read_status,
                               relay_report, write_status)
from device.relays.serial import LcusRelay


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def models_dir(tmp_path, trust_test_key):
    d = tmp_path / "models"
    d.mkdir()
    (d / "a.onnx").write_bytes(b"model a")
    (d / "b.onnx").write_bytes(b"model b")
    manifest = {"format": 1, "models": {
        "a.onnx": {"sha256": sha(b"model a"), "bytes": 7},
        "b.onnx": {"sha256": sha(b"model b"), "bytes": 7},
        "c.onnx": {"sha256": sha(b"model c"), "bytes": 7}}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return sign_models(d, trust_test_key)


def test_check_models_pure():
    manifest = {"models": {"x.onnx": {"sha256": "11"}, "y.onnx": {"sha256": "22"},
                           "z.onnx": {"sha256": "33"}}}
    rep = check_models(manifest, {"x.onnx": "11", "y.onnx": "99", "z.onnx": None},
                       loaded={"x.onnx": "11"})
    by = {m["name"]: m for m in rep["models"]}
    assert by["x.onnx"]["match"] and by["x.onnx"]["loaded"] is True
    assert not by["y.onnx"]["match"] and by["y.onnx"]["present"]
    assert not by["z.onnx"]["present"] and by["z.onnx"]["loaded"] is False
    assert rep["ok"] is False and rep["problems"] == [
        "model y.onnx: sha256 does not match the manifest", "model z.onnx: file missing"]


def test_model_report_on_files(models_dir):
    cache = {}
    rep = model_report(models_dir, cache=cache)
    assert [m["match"] for m in rep["models"]] == [True, True, False]
    assert rep["problems"] == ["model c.onnx: file missing"] and len(cache) == 3
    assert rep["signature"]["ok"] and rep["signature"]["key_id"]
    (models_dir / "b.onnx").write_bytes(b"tampered")           # changed on disk
    rep = model_report(models_dir, loaded={"b.onnx": sha(b"model b")}, cache=cache)
    assert "model b.onnx: sha256 does not match the manifest" in rep["problems"]
    assert "model b.onnx: the file changed after it was loaded" in rep["problems"]
    (models_dir / "manifest.json").write_text("{")
    assert model_report(models_dir)["ok"] is False
    assert file_hashes(models_dir, ["a.onnx", "nope"]) == {"a.onnx": sha(b"model a"),
                                                           "nope": None}


class Cam:
    def __init__(self, name, running=True):
        self.name, self.running = name, running

    def describe(self):
        return {"kind": "fake", "name": self.name, "running": self.running}


def test_camera_and_relay_reports():
    rep = camera_report([Cam("left"), Cam("right", running=False), Cam("ir")],
                        last_frame_at={"left": 99.5, "ir": 50.0}, now=100.0)
    assert rep["cameras"]["left"]["last_frame_age_s"] == 0.5
    assert rep["problems"] == ["camera right: not running", "camera ir: no frame for 50 s"]
    r = LcusRelay("loop://", channels=2)
    r.on(2)
    rep = relay_report(r)
    assert rep["driver"] == "LcusRelay" and rep["states"] == {"1": False, "2": True}
    assert rep["ok"] and rep["channels"] == 2
    r.close()
    assert relay_report(r)["problems"] == ["relay: closed"]
    assert relay_report(None)["ok"] is False


def test_database_report(tmp_path):
    db = tmp_path / "templates.db"
    assert database_report(db)["problems"] == [f"database {db}: missing"]
    db.write_bytes(b"x" * 10)
    (tmp_path / "templates.db-wal").write_bytes(b"y" * 3)
    rep = database_report(db, users=12)
    assert rep["ok"] and rep["bytes"] == 10 and rep["wal_bytes"] == 3 and rep["users"] == 12
    assert rep["generation_counter"] is False and rep["free_bytes"] > 0
    full = database_report(db, min_free_bytes=1 << 62)          # "disk full"
    assert not full["ok"] and full["problems"][0].startswith("disk:")


def test_decisions_keep_only_plain_fields():
    ds = [{"decision": "grant", "user_id": "u1", "total_ms": 80.0, "at": 1.0},
          {"decision": "deny", "reason": "liveness", "features": [0.1] * 256, "at": 2.0},
          {"decision": "deny", "reason": "no_match", "image": b"...", "at": 3.0}]
    rep = decisions_report(ds, last=2)
    assert rep["total"] == 3 and rep["by_outcome"] == {"grant": 1, "deny": 2}
    assert rep["by_reason"] == {"liveness": 1, "no_match": 1}
    assert rep["last"] == [{"at": 2.0, "decision": "deny", "reason": "liveness"},
                           {"at": 3.0, "decision": "deny", "reason": "no_match"}]


def test_build_write_read_status(tmp_path, models_dir):
    class WD:
        def describe(self):
            return {"tripped": True, "expirations": 1}

    st = build_status(models=model_report(models_dir), relay={"ok": True, "problems": []},
                      decisions=decisions_report([]), watchdog=WD(),
                      door={"open": True, "alarm": "held_open"}, started_at=time.time() - 5)
    assert st["ok"] is False and st["format"] == "palmgate-status/1"
    assert st["problems"] == ["model c.onnx: file missing",
                              "watchdog: tripped (the loop stopped petting it; relay forced off)",
                              "door: held_open"]
    assert 4 <= st["uptime_s"] <= 60 and st["version"]
    p = tmp_path / "run" / "status.json"
    write_status(p, st)
    assert read_status(p) == json.loads(json.dumps(st))
    assert not list(p.parent.glob(".status-*"))                  # no temp file left
    st["time"] = time.time() - 3600
    write_status(p, st)
    stale = read_status(p, max_age_s=60)
    assert stale["ok"] is False and "is the gate running?" in stale["problems"][-1]

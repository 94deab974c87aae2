"""The gate-path measurement's counts (device/eval/sensor_identity_gate.py): binding alone is
the gate's decisions less the identity stage's denials."""
from device.eval.sensor_identity_gate import summary


def _row(kind, reason, agreement=None, who=0, user=None):
    return {"kind": kind, "reason": reason, "decision": "open" if reason == "match" else "deny",
            "user_id": user, "claimed_person": f"p{who:03d}", "agreement": agreement,
            "sensor_identity": {"match": "checked", "sensor_identity": "denied"}.get(reason),
            "identity_ms": 3.0, "identity_cpu_ms": 2.0}


def test_summary_counts():
    rows = [_row("genuine", "match", 0.6), _row("genuine", "sensor_identity", 0.2),
            _row("genuine", "not_live"),
            _row("mixed_replica_views", "sensor_mismatch"),
            _row("mixed_replica_views", "sensor_identity", 0.2),
            _row("mixed_replica_sensor", "match", 0.5, user="p000")]
    s = summary({"rows": rows, "enrolled": 1, "enrol_refused": []}, choose=0.5)
    assert s["genuine"]["frr"] == {"k": 2, "n": 3, "rate": 0.6667}
    assert s["genuine"]["denied_sensor_identity"]["k"] == 1
    v = s["mixed_replica_views"]
    assert v["denied"]["k"] == 2 and v["denied_without_identity"]["k"] == 1
    assert s["mixed_replica_sensor"]["opened_as_victim"] == 1
    assert s["compared"] == 4 and s["identity_cpu_ms_median"] == 2.0
    assert s["choose"]["n"] == 2 and abs(s["choose"]["threshold"] - 0.4) < 1e-9

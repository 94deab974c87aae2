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


def test_summary_by_variant():
    rows = [dict(_row("mixed_replica_sensor", "sensor_identity", 0.1), variant="other_hand"),
            dict(_row("mixed_replica_sensor", "not_live"), variant="species",
                 attack_species="screen_replay"),
            dict(_row("mixed_replica_sensor", "match", 0.7, user="p000"), variant="offset"),
            dict(_row("mixed_replica_views", "sensor_mismatch"), variant="offset")]
    s = summary({"rows": rows, "enrolled": 1, "enrol_refused": [],
                 "species": ["mixed_replica_views", "mixed_replica_sensor"]})
    m = s["mixed"]
    assert m["denied"] == {"k": 3, "n": 4, "rate": 0.75}
    assert m["denied_without_identity"]["k"] == 2
    assert m["variants"]["offset"]["denied"] == {"k": 1, "n": 2, "rate": 0.5}
    assert m["variants"]["other_hand"]["denied_sensor_identity"]["k"] == 1
    assert m["attack_species"]["screen_replay"]["reasons"] == {"not_live": 1}
    assert s["mixed_replica_sensor"]["opened_as_victim"] == 1


def test_variant_choices_and_species():
    from device.eval.sensor_identity_gate import species_for, variant_choices
    from device.synth.mixed import VARIANTS
    assert variant_choices() == ("sets",) + VARIANTS
    assert species_for("sets") == species_for("offset") == \
        ("mixed_replica_views", "mixed_replica_sensor")
    assert species_for("species") == ("mixed_replica_sensor",)


def test_mixed_burst_draws_the_sets_variants():
    """``sets`` draws the variant as render_mixed does; a named variant is rendered as asked;
    the victim is enrolled, the other someone else."""
    from device.eval.sensor_identity_gate import _mixed_burst
    from device.synth.source import SyntheticPeople
    people = SyntheticPeople(seed=11, views=3, sensor="nir")
    burst, victim, other, meta = _mixed_burst(people, "mixed_replica_sensor", 0, [0, 1],
                                              "species")
    assert meta["variant"] == "species" and meta["attack_species"]
    assert victim in (0, 1) and other != victim and 0 <= other < 4
    assert len(burst.views) == 3 and burst.sensor.dtype.name == "uint8"
    _, _, _, meta = _mixed_burst(people, "mixed_replica_views", 1, [0, 1], "sets")
    assert meta["variant"] in ("offset", "rotation", "scale", "other_hand")

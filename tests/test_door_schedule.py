"""Access times through the command line on a real store (palmgate init): users schedule,
holidays, users unlock, what users list/show print, the audit records with the operator; and the
gate's decision on its clock (validity, weekly zones, holidays) -- in the pipeline's access
check, and end to end with `palmgate run`."""
import datetime as dt
import json
import os

import numpy as np
import pytest

from device.cli import main
from device.gate.decision import Decision, Deny


def _init(tmp_path, *sets):
    unit = tmp_path / "unit"
    assert main(["init", "--dir", str(unit), *sets]) == 0
    return ["--config", str(unit / "palmgate.toml")]


def _store(c):
    from device.commands.common import open_store
    from device.config import load_config
    return open_store(load_config(c[1]))


def _enrol(c, *names):
    """Users with real protected templates (random unit features) in the unit's store."""
    from device.protect.core import enrol
    rng = np.random.default_rng(5)
    with _store(c) as st:
        for n in names:
            f = rng.standard_normal((49, 16))
            st.enrol(n, [enrol(f / np.linalg.norm(f, axis=-1, keepdims=True))])


def _json(capsys):
    out = capsys.readouterr().out
    try:
        return json.loads(out)
    except ValueError:
        return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def _audit(c, capsys, kind):
    capsys.readouterr()
    assert main(["audit", "show", *c]) == 0
    return [r for r in _json(capsys) if r["kind"] == kind]


def test_users_schedule_show_list_clear_and_audit(tmp_path, capsys):
    c = _init(tmp_path)
    _enrol(c, "alice", "bob")
    capsys.readouterr()
    assert main(["users", "schedule", "alice", "--weekly", "mon-fri 07:00-19:00",
                 "--weekly", "sat 08:00-12:00", "--valid-from", "2026-01-01",
                 "--valid-until", "2030-06-30", "--operator", "ops-desk", *c]) == 0
    r = _json(capsys)
    assert r["weekly"] == ["mon-fri 07:00-19:00", "sat 08:00-12:00"]
    assert r["valid_from_local"] == "2026-01-01T00:00"
    assert r["valid_until_local"] == "2030-07-01T00:00"      # the whole of June 30
    assert r["valid_until"] == dt.datetime(2030, 7, 1).timestamp()
    assert r["holidays"] == "closed" and len(r["schedule"]) == 6
    assert main(["users", "show", "alice", *c]) == 0
    show = _json(capsys)
    assert show["weekly"] == r["weekly"] and show["access_now"] in (
        "ok", "outside_schedule", "holiday")
    assert main(["users", "list", *c]) == 0
    rows = {u["user_id"]: u for u in _json(capsys)}
    assert rows["alice"]["weekly"] == r["weekly"] and rows["bob"]["weekly"] == ["any time"]
    assert rows["bob"]["access_now"] == "ok" and rows["bob"]["active_now"] is True
    rec = _audit(c, capsys, "user_update")
    assert rec[-1]["user_id"] == "alice" and rec[-1]["operator"] == "ops-desk"
    assert "schedule" in rec[-1]["reason"] and "valid_from" in rec[-1]["reason"]

    # one bound removed, the holiday policy changed; the rest stays
    assert main(["users", "schedule", "alice", "--valid-until", "none", "--holidays", "allow",
                 *c]) == 0
    r = _json(capsys)
    assert r["valid_until"] is None and r["valid_from"] is not None
    assert r["holidays"] == "allow" and len(r["weekly"]) == 2
    # --clear: any time again
    assert main(["users", "schedule", "alice", "--clear", *c]) == 0
    r = _json(capsys)
    assert r["weekly"] == ["any time"] and r["valid_from"] is None and r["holidays"] == "closed"
    assert r["access_now"] == "ok"


def test_schedule_errors_name_the_option_and_lose_nothing(tmp_path, capsys):
    c = _init(tmp_path)
    _enrol(c, "alice")
    assert main(["users", "schedule", "alice", "--weekly", "mon-fri 07:00-19:00", *c]) == 0
    before = len(_audit(c, capsys, "user_update"))
    for args, words in (
            (["--weekly", "weekdays 7-19"], "--weekly"),
            (["--valid-from", "next week"], "bad date"),
            (["--valid-from", "2027-01-02", "--valid-until", "2027-01-01"],
             "--valid-until (2027-01-02T00:00) must come after --valid-from"),
            ([], "users schedule needs --valid-from"),
    ):
        capsys.readouterr()
        assert main(["users", "schedule", "alice", *args, *c]) == 2
        err = capsys.readouterr().err
        assert words in err and "=True" not in err, err
    assert main(["users", "schedule", "ghost", "--clear", *c]) == 2
    assert "no user 'ghost'" in capsys.readouterr().err
    with _store(c) as st:
        assert st.get_user("alice").schedule == [[d, "07:00", "19:00"] for d in range(5)]
    assert len(_audit(c, capsys, "user_update")) == before      # no change, no record


def test_holidays_add_list_remove_audited(tmp_path, capsys):
    c = _init(tmp_path)
    assert main(["holidays", "add", "2026-12-25", "--label", "Christmas Day",
                 "--operator", "hr", *c]) == 0
    assert main(["holidays", "add", "2027-01-01", *c]) == 0
    capsys.readouterr()
    assert main(["holidays", "list", *c]) == 0
    assert _json(capsys) == [{"date": "2026-12-25", "label": "Christmas Day"},
                             {"date": "2027-01-01", "label": ""}]
    assert main(["holidays", "remove", "2027-01-01", *c]) == 0
    assert main(["holidays", "remove", "2027-01-01", *c]) == 2
    assert "not a holiday" in capsys.readouterr().err
    assert main(["holidays", "add", "2026-12-25T10:00", *c]) == 2
    assert "whole day" in capsys.readouterr().err
    assert main(["holidays", "add", *c]) == 2
    adds = _audit(c, capsys, "holiday_add")
    assert [(r["reason"], r["operator"]) for r in adds][0] == ("2026-12-25", "hr")
    assert len(adds) == 2 and len(_audit(c, capsys, "holiday_remove")) == 1
    with _store(c) as st:
        assert st.audit.verify() == 3


def test_users_unlock_clears_the_users_lockout(tmp_path, capsys):
    c = _init(tmp_path)
    _enrol(c, "bob")
    from device.commands.attempts import limiter_for
    from device.config import load_config
    cfg = load_config(c[1])
    with _store(c) as st:
        lim = limiter_for(cfg, st)
        for _ in range(lim.max_failures + 1):
            lim.record(False, user="bob")
        assert not lim.check(user="bob").allowed
    capsys.readouterr()
    assert main(["users", "unlock", "bob", "--operator", "ops-desk", *c]) == 0
    r = _json(capsys)
    assert r["unlocked"] and r["failures_cleared"] >= 1
    with _store(c) as st:
        assert limiter_for(cfg, st).check(user="bob").allowed
    rec = _audit(c, capsys, "attempts_reset")
    assert rec[-1]["user_id"] == "bob" and rec[-1]["operator"] == "ops-desk"
    assert main(["users", "unlock", "nobody", *c]) == 2


def test_pipeline_access_check_on_the_gates_clock():
    """The decision path's own check (device.gate.pipeline.Pipeline._access): the matched
    user's validity, zones and the site's holidays at the moment of the decision."""
    from device.gate.pipeline import Pipeline
    from device.store.schedule import parse_weekly
    from device.store.user import User
    p = Pipeline.__new__(Pipeline)
    monday_9 = dt.datetime(2026, 12, 7, 9, 0).timestamp()
    zones = parse_weekly("mon-fri 07:00-19:00")
    p.users = {"day": User("day", schedule=zones),
               "later": User("later", valid_from=monday_9 + 3600),
               "gone": User("gone", valid_until=monday_9),
               "any": User("any")}
    p.holidays = frozenset()

    def reason(uid, when):
        p.clock = lambda: when
        try:
            p._access(Decision(decision="open", user_id=uid))
        except Deny as d:
            return d.reason
        return None

    assert reason("day", monday_9) is None and reason("any", monday_9) is None
    assert reason("day", monday_9 + 11 * 3600) == "outside_schedule"     # 20:00: no reload
    assert reason("later", monday_9) == "not_yet_valid"
    assert reason("later", monday_9 + 3600) is None
    assert reason("gone", monday_9) == "expired"
    assert reason("split-user", monday_9) is None         # no record in the store
    p.holidays = frozenset({"2026-12-07"})
    assert reason("day", monday_9) == "holiday" and reason("any", monday_9) is None


@pytest.mark.skipif(os.environ.get("PALMGATE_FAST") == "1", reason="runs the gate")
def test_run_denies_outside_the_schedule_with_its_reason(tmp_path, tiny_models, capsys):
    """`palmgate run` on the synthetic source: alice (person 0, the 10th presentation) has
    weekly zones today but today is a site holiday; carol (person 1, the 7th) expired
    yesterday. Both are denied with their own reason and audited as such."""
    from device.eval.demo import DEMO_THRESHOLD
    c = _init(tmp_path, "--set", f"paths.models={tiny_models}",
              "--set", f"match.threshold={DEMO_THRESHOLD}", "--set", "gate.cooldown_s=0.0")
    assert main(["enroll", "alice", "--synthetic", "0", *c]) == 0
    assert main(["enroll", "carol", "--synthetic", "1", *c]) == 0
    today = dt.date.today()
    assert main(["users", "schedule", "alice", "--weekly", "daily 00:00-24:00", *c]) == 0
    assert main(["holidays", "add", today.isoformat(), "--label", "test day", *c]) == 0
    assert main(["users", "schedule", "carol", "--valid-until",
                 (today - dt.timedelta(days=1)).isoformat(), *c]) == 0
    capsys.readouterr()
    assert main(["run", "--limit", "10", "--plain-log", *c]) == 0
    d = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert (d[6]["decision"], d[6]["reason"]) == ("deny", "expired")       # carol
    assert (d[9]["decision"], d[9]["reason"]) == ("deny", "holiday")       # alice
    assert not any(x["decision"] == "open" for x in d)
    dec = _audit(c, capsys, "decision")
    assert dec[6]["reason"] == "expired" and dec[6]["user_id"] == "carol"
    assert dec[9]["reason"] == "holiday" and dec[9]["user_id"] == "alice"
    # the holiday policy "allow" opens the zones again, for alice only
    assert main(["users", "schedule", "alice", "--holidays", "allow", *c]) == 0
    # the impostors' no-matches of the first run counted against their closest user
    assert main(["attempts", "reset", "alice", "--terminal", *c]) == 0
    capsys.readouterr()
    assert main(["run", "--limit", "10", "--plain-log", *c]) == 0
    d = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert d[9]["reason"] in ("match", "not_live") and d[6]["reason"] == "expired"


def test_card_claim_and_palm_refused_by_the_schedule(tmp_path, tiny_models, synthetic_bursts):
    """The gate itself (real loop, Wiegand card input on gpiozero mock pins): a card read of a
    user outside their access times is refused with the reason before any palm is matched;
    the palm alone is denied with the reason after it matched."""
    pytest.importorskip("gpiozero")
    import time

    from conftest import gate_config
    from conftest import wait_until as _wait
    from gpiozero.pins.mock import MockConnectedPin, MockFactory
    from test_door_gate import _enrol

    from device.gate.gate import Gate, open_store
    from device.relays.factory import MemoryRelay
    from device.relays.wiegand import WiegandOutput
    from device.store.holidays import add_holiday
    from device.store.schedule import parse_weekly
    f = MockFactory()
    f.pin(22, pin_class=MockConnectedPin, input_pin=f.pin(12))
    f.pin(23, pin_class=MockConnectedPin, input_pin=f.pin(13))
    reader = WiegandOutput(22, 23, pin_factory=f, frame_timeout_ms=200)
    cfg = gate_config(tmp_path, tiny_models,
                      wiegand={"enabled": True, "d0_pin": 5, "d1_pin": 6, "input_d0_pin": 12,
                               "input_d1_pin": 13, "frame_timeout_ms": 200.0},
                      card={"facility_code": 3})
    relay = MemoryRelay()
    now = dt.datetime.now()
    # a zone that is not now: the same hours, on another weekday
    other = [[(now.weekday() + 3) % 7, "00:00", "24:00"]]
    try:
        with open_store(cfg) as st:
            _enrol(cfg, st, synthetic_bursts, {"person-000": (3, 500)})
            st.update_user("person-000", valid_from=time.time() + 3600)
        with Gate(cfg, relay=relay, pin_factory=f) as gate:
            reader.send("wiegand26", 3, 500)
            assert _wait(lambda: gate.door._card is not None)
            d = gate.present(synthetic_bursts["genuine"][0])
            assert (d.decision, d.reason) == ("deny", "not_yet_valid")
            # changes from another connection, as `palmgate users schedule` / `holidays`
            # make them: the gate sees them at its next presentation
            with open_store(cfg) as st:
                st.update_user("person-000", valid_from=None,
                               schedule=parse_weekly("daily 00:00-24:00"))
                add_holiday(st, now.date().isoformat())
            reader.send("wiegand26", 3, 500)
            assert _wait(lambda: gate.door._card is not None)
            d = gate.present(synthetic_bursts["genuine"][0])
            assert (d.decision, d.reason) == ("deny", "holiday")
            with open_store(cfg) as st:
                st.update_user("person-000", schedule=other, holidays="allow")
            d = gate.present(synthetic_bursts["genuine"][0])           # the palm alone
            assert (d.decision, d.reason, d.user_id) == ("deny", "outside_schedule",
                                                         "person-000")
            with open_store(cfg) as st:
                st.update_user("person-000", schedule=[])
            d = gate.present(synthetic_bursts["genuine"][0])
            assert d.opened or d.reason == "not_live", d.summary()
            assert sum(1 for _, _, on in relay.events if on) == (1 if d.opened else 0)
    finally:
        reader.close()

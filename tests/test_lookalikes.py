"""The look-alikes' check (device/gate/lookalikes.py, lookalike_lists.py,
device/store/lookalike_rows.py): the pure functions, the lists made at enrolment both ways in
its transaction, kept like the sensor templates (a list removed outside the store denies), the
stage's decision, and the build for people enrolled before the lists."""
import math
import sqlite3

import numpy as np
import pytest

from device.gate import lookalikes as LA
from device.gate.decision import Decision, Deny
from device.gate.enrol import enrol_user
from device.gate.gate import open_store
from device.gate.pipeline import Pipeline
from device.store import lookalike_rows as LR
from device.store import sensor_templates as ST
from tests.conftest import gate_config

NUMBERS = {"min_pair_agreement": 0.8, "lead": 0.0, "most": 4}


# ------------------------------------------------------------------ pure functions
def test_numbers_parse_and_refuse_what_is_malformed():
    assert LA.lookalike_numbers({}) is None
    assert LA.lookalike_numbers({"lookalikes": dict(NUMBERS)}) == NUMBERS
    for bad in ({"min_pair_agreement": 0.7, "lead": 0.0, "most": 4},     # under the floor
                {"min_pair_agreement": 0.8, "lead": -0.1, "most": 4},
                {"min_pair_agreement": 0.8, "lead": 0.0, "most": 0},
                {"min_pair_agreement": 0.8, "lead": 0.0, "most": True},
                {"min_pair_agreement": float("nan"), "lead": 0.0, "most": 4}, [1]):
        with pytest.raises(ValueError, match="lookalikes"):
            LA.lookalike_numbers({"lookalikes": bad})


def test_pair_agreement_is_the_best_of_both_ways_and_nan_when_nothing_compares():
    table = {("a1", ("b1", "b2")): 0.7, ("a2", ("b1", "b2")): float("nan"),
             ("b1", ("a1", "a2")): 0.9, ("b2", ("a1", "a2")): 0.2}
    agree = lambda tmpls, probe: table[(probe, tuple(tmpls))]     # noqa: E731
    assert LA.pair_agreement(["a1", "a2"], ["b1", "b2"], agree) == 0.9
    assert LA.pair_agreement(["b1", "b2"], ["a1", "a2"], agree) == 0.9
    assert math.isnan(LA.pair_agreement(["a2"], ["b1", "b2"],
                                        lambda t, p: float("nan")))


def test_merged_replaces_drops_under_the_floor_and_keeps_the_closest(monkeypatch):
    e = LA.merged({}, "bob", 0.9)
    assert e == {"bob": 0.9}
    assert LA.merged(e, "bob", 0.5) == {} == LA.merged(e, "bob", float("nan"))
    assert LA.merged(e, "bob", None) == {}
    assert LA.merged(e, "carol", 0.81234) == {"bob": 0.9, "carol": 0.8123}
    monkeypatch.setattr(LA, "MOST_KEPT", 2)
    assert LA.merged({"a": 0.8, "b": 0.95}, "c", 0.85) == {"b": 0.95, "c": 0.85}


def test_lists_round_trip_and_anything_else_is_refused():
    e = {"bob": 0.91, "carol": 0.8}
    assert LA.list_from_bytes(LA.list_to_bytes(e)) == e
    assert LA.list_from_bytes(LA.list_to_bytes({})) == {}
    for bad in (b"", b"\xff", b"[]", b'{"format":"x","lookalikes":{}}',
                b'{"format":"palmgate/lookalikes/1","lookalikes":{"a":"x"}}'):
        with pytest.raises(ValueError):
            LA.list_from_bytes(bad)


def test_a_decision_compares_the_closest_over_the_limit_and_a_lead_decides():
    e = {"a": 0.79, "b": 0.95, "c": 0.85, "d": 0.85, "e": 0.9, "me": 0.99}
    assert LA.to_compare(e, NUMBERS, "me") == ["b", "e", "c", "d"]
    assert LA.to_compare(e, {**NUMBERS, "most": 2}, "me") == ["b", "e"]
    assert LA.out_agreed(0.9, {"b": 0.91, "e": 0.95, "c": float("nan")}, 0.0) == "e"
    assert LA.out_agreed(0.9, {"b": 0.9}, 0.0) is None           # a tie is the claimed one's
    assert LA.out_agreed(0.9, {"b": 0.92}, 0.05) is None
    assert LA.out_agreed(0.9, {}, 0.0) is None


def test_the_stage_denies_when_a_listed_lookalike_agrees_more():
    """The stage's check on patches made here: the frame's patch is the look-alike's own
    template (agreement 1), the claimed person's raw agreement 0.9: denied by the look-alike;
    a look-alike whose template is unrelated: checked."""
    from device.gate.sensor_identity_stage import SensorIdentityStage
    rng = np.random.default_rng(0)
    frame = (rng.standard_normal((80, 80)).astype(np.float32), np.ones((80, 80), np.float32))
    other = (rng.standard_normal((80, 80)).astype(np.float32), np.ones((80, 80), np.float32))
    stage = SensorIdentityStage.__new__(SensorIdentityStage)
    stage.sensor, stage.probe = "xray", frame
    stage.newcomers = lambda la: []                     # everyone has a list
    n = {"shift_mm": 2.0, "refine_deg": [], "lookalikes": dict(NUMBERS)}
    for them, want in ((frame, "denied"), (other, "checked")):
        stage.listed = {"bob": 0.9, "carol": 0.7}       # carol: under the limit, not compared
        asked = []
        stage.person = lambda v: asked.append(v) or [them]
        out = Decision(user_id="alice")
        if want == "denied":
            with pytest.raises(Deny) as e:
                stage.check_lookalikes(out, n, 0.9)
            assert e.value.reason == "sensor_identity"
            assert (out.sensor_identity_by, out.lookalikes) == ("lookalike", "denied")
        else:
            stage.check_lookalikes(out, n, 0.9)
            assert out.lookalikes == "checked" and out.sensor_identity_by is None
        assert asked == ["bob"]
    # dan, received from another gate, has no list yet and is on no one's: compared too
    stage.listed = {"bob": 0.9}
    stage.newcomers = lambda la: ["dan", "alice", "bob"]
    asked = []
    stage.person = lambda v: asked.append(v) or [frame if v == "dan" else other]
    out = Decision(user_id="alice")
    with pytest.raises(Deny):
        stage.check_lookalikes(out, n, 0.9)
    assert asked == ["bob", "dan"] and out.sensor_identity_by == "lookalike"
    # the pure choice: all of them while at most `most`, none when more (an upgrade)
    assert LA.newcomers(["d", "e"], NUMBERS, "a", ["e"]) == ["d"]
    assert LA.newcomers(list("bcdef"), NUMBERS, "a", []) == []
    assert LA.newcomers(None, NUMBERS, "a", []) == []
    stage.listed = None                                 # enrolled before the lists
    out = Decision(user_id="alice")
    stage.check_lookalikes(out, n, 0.9)
    assert out.lookalikes == "not_listed"
    out = Decision(user_id="alice")                     # no signed numbers: no check
    stage.check_lookalikes(out, {**n, "lookalikes": None}, 0.9)
    assert out.lookalikes is None


# ------------------------------------------------------------------ through the product
@pytest.fixture(scope="module")
def xray_people():
    """X-ray: enrolment bursts (2) of persons 0, 1 and a genuine presentation of person 0."""
    from device.synth.source import SyntheticPeople
    people = SyntheticPeople(seed=0, views=3, sensor="xray", threads=1)
    return {"enrol": {i: [people.burst(i, "enrol", k) for k in range(2)] for i in (0, 1)},
            "genuine": people.burst(0, "genuine", 0)}


def _with_lookalikes(monkeypatch, numbers=NUMBERS):
    import device.gate.binding_numbers as BN
    real = BN.load_binding_numbers

    def signed(sensor, models_dir=None, trusted_keys=None):
        n = real(sensor, models_dir, trusted_keys)
        si = dict(n.doc["sensor_identity"])
        if numbers is None:
            si.pop("lookalikes", None)
        else:
            si["lookalikes"] = dict(numbers)
        n.doc = {**n.doc, "sensor_identity": si}
        return n
    monkeypatch.setattr(BN, "load_binding_numbers", signed)


def _gate(tmp_path):
    cfg = gate_config(tmp_path, liveness={"sensor": "xray", "sensor_identity": "when_enrolled"})
    pipe = Pipeline(cfg)
    st = open_store(cfg)
    pipe.attach_store(st)
    return pipe, st


def _lists(st):
    feats, lists = LR.gallery(st, "xray_bone_patch")
    return {u: LA.list_from_bytes(b) for u, b in lists.items()}


def test_enrolment_makes_the_lists_both_ways_and_a_list_removed_outside_denies(
        tmp_path, xray_people, monkeypatch):
    _with_lookalikes(monkeypatch)
    b = xray_people
    pipe, st = _gate(tmp_path)
    try:
        assert pipe.identity.numbers["lookalikes"] == NUMBERS
        r = enrol_user(pipe, st, "alice", b["enrol"][0])
        assert r["lookalike_lists"] == 1 and _lists(st) == {"alice": {}}
        enrol_user(pipe, st, "bob", b["enrol"][1])
        lists = _lists(st)
        assert set(lists) == {"alice", "bob"}
        s = lists["bob"].get("alice")
        assert lists["alice"].get("bob") == s       # one entry both ways (or none, under
        #                                             the floor: two different people)
        # a twin: person 0's bones again under another id (allowed as a duplicate): each is on
        # the other's list, and alice's own list gets carol's entry in carol's enrolment
        r = enrol_user(pipe, st, "carol", b["enrol"][0][:1], allow_duplicate=True)
        lists = _lists(st)
        assert lists["carol"]["alice"] == lists["alice"]["carol"] > 0.95
        assert r["lookalike_lists"] == 2 + (1 if "carol" in lists["bob"] else 0)
        recs = [p for k, p in st.conn.execute("SELECT kind, payload FROM audit")
                if k == "lookalike_lists_written"]
        assert len(recs) == 3 and '"user_id":"carol"' in recs[-1]
        pipe.load_gallery(st)
        d = pipe.decide(b["genuine"])
        assert d.user_id in ("alice", "carol") and d.lookalikes in ("checked", "denied"), \
            d.reason
        # a re-enrolment replaces the person's list and updates the others'
        enrol_user(pipe, st, "carol", b["enrol"][1][:1], replace=True, allow_duplicate=True)
        lists = _lists(st)
        assert lists["alice"].get("carol") == lists["carol"].get("alice")
        assert (lists["alice"].get("carol") or 0) < 0.95
        assert ST.count(st) == 2 + 2 + 1                # the templates; and one list each:
        assert st.conn.execute("SELECT COUNT(*) FROM sensor_templates WHERE kind="
                               "'xray_bone_lookalikes'").fetchone()[0] == 3
        # alice's list removed outside the store while the gate runs: denied, never
        # read as "no look-alikes"
        pipe.load_gallery(st)
        d = pipe.decide(b["genuine"])
        assert d.user_id == "alice" and d.decision == "open", (d.reason, d.lookalikes)
        c = sqlite3.connect(st.path)
        c.execute("DELETE FROM sensor_templates WHERE user_id='alice' AND "
                  "kind='xray_bone_lookalikes'")
        c.commit()
        c.close()
        d = pipe.decide(b["genuine"])
        assert (d.decision, d.reason) == ("deny", "error:identity")
    finally:
        pipe.close()
        st.close()


def test_people_enrolled_before_the_lists_are_not_listed_until_built(
        tmp_path, xray_people, monkeypatch, caplog):
    from device.commands.gate import _sensor_templates
    from device.gate.lookalike_lists import report
    from device.gate.lookalike_upkeep import ListUpkeep
    b = xray_people
    _with_lookalikes(monkeypatch, None)
    pipe, st = _gate(tmp_path)
    try:
        enrol_user(pipe, st, "alice", b["enrol"][0])
        enrol_user(pipe, st, "carol", b["enrol"][0][1:], allow_duplicate=True)
        enrol_user(pipe, st, "bob", b["enrol"][1])
        assert _lists(st) == {}
    finally:
        pipe.close()
        st.close()
    _with_lookalikes(monkeypatch)
    with caplog.at_level("WARNING", logger="palmgate.gate"):
        pipe, st = _gate(tmp_path)
    assert "3 people have no look-alike list" in caplog.text      # said at the gate's start
    try:
        pipe.load_gallery(st)
        d = pipe.decide(b["genuine"])
        assert d.lookalikes == "not_listed" and d.sensor_identity == "checked", d.reason
        rep = report(st, "xray_bone_patch", NUMBERS)
        assert (rep["people"], rep["people_with_a_list"], rep["people_without_a_list"]) == \
            (3, 0, 3)
        status: dict = {}                       # palmgate status names them
        _sensor_templates(status, st, pipe.cfg, "when_enrolled")
        assert status["users_without_lookalike_list"] == 3
        out = ListUpkeep(pipe.identity, st, {"operator": "test"}).run()
        # each pair compared once: alice's turn gives bob's and carol's entries of her
        assert out == {"people_without_a_list": 3, "lists_made": 3, "lists_written": 3,
                       "pairs_compared": 3, "pairs_stopped_by_prefilter": 0, "people": 3}
        lists = _lists(st)
        assert lists["alice"]["carol"] == lists["carol"]["alice"] > 0.95
        assert lists["alice"].get("bob") == lists["bob"].get("alice")
        assert lists["bob"].get("carol") == lists["carol"].get("bob")
        rep = report(st, "xray_bone_patch", NUMBERS)
        assert rep["people_without_a_list"] == 0 and rep["lookalikes_compared_max"] >= 1
        assert ListUpkeep(pipe.identity, st).run()["lists_made"] == 0
        assert pipe.identity.warn_unlisted() == 0
        status = {}
        _sensor_templates(status, st, pipe.cfg, "when_enrolled")
        assert status["users_without_lookalike_list"] == 0
        assert status["sensor_templates"] == {"xray_bone_lookalikes": 3, "xray_bone_patch": 5}
        rec = st.conn.execute("SELECT payload FROM audit WHERE kind='lookalike_lists_built' "
                              "ORDER BY seq").fetchall()
        assert len(rec) == 3 and all('"operator":"test"' in r[0] for r in rec)
        assert [u for u in ("alice", "bob", "carol") if f'"user_id":"{u}"' in rec[1][0]] == \
            ["bob"]
        d = pipe.decide(b["genuine"])
        assert d.lookalikes in ("checked", "denied"), d.reason
        st.verify()
    finally:
        pipe.close()
        st.close()


def _alice_and_bob(tmp_path, b):
    """A gate with persons 0 and 1 enrolled as alice and bob (their lists made): (pipeline,
    store, their sensor templates' bytes)."""
    pipe, st = _gate(tmp_path)
    enrol_user(pipe, st, "alice", b["enrol"][0])
    enrol_user(pipe, st, "bob", b["enrol"][1])
    return pipe, st, {u: LR.templates(st, u, "xray_bone_patch")[1] for u in ("alice", "bob")}


class _Ticks:
    """A clock that moves one second at each reading."""
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


def _receive(st, uid, blobs, replace=False):
    """A person as the site sync client applies a received enrolment
    (device.site.client.GateSync._apply_batch): the palm and sensor templates in one
    transaction, no look-alike list (the client has no identity stage)."""
    from device.protect.core import enrol as protect
    from device.protect.defaults import DEFAULT_CONFIG
    x = np.random.default_rng(len(uid)).standard_normal((1, 49, 16))
    with st.transaction():
        v = st.enrol(uid, [protect(x[0] / np.linalg.norm(x[0], axis=-1, keepdims=True),
                                   DEFAULT_CONFIG)], replace=replace)
        ST.insert(st, uid, v, blobs, "xray_bone_patch")
    return v


def test_the_gate_makes_received_peoples_lists_between_presentations_in_slices(
        tmp_path, xray_people, monkeypatch):
    """People received from another gate (no list) get theirs from the running gate's upkeep,
    a slice at a time, and go on everyone's list; a decision between slices is not_listed;
    someone re-enrolled meanwhile is compared at their new templates."""
    from device.gate.lookalike_upkeep import ListUpkeep, upkeep_for_gate
    _with_lookalikes(monkeypatch)
    b = xray_people
    pipe, st, rows = _alice_and_bob(tmp_path, b)
    try:
        # a site change of the same bones keeps the person's list; of others, not
        assert LA.list_from_bytes(LR.unchanged_list(st, "alice", ("xray_bone_patch",
                                                                  rows["alice"]))) == \
            _lists(st)["alice"]
        assert LR.unchanged_list(st, "alice", ("xray_bone_patch", rows["bob"])) is None
        assert LR.unchanged_list(st, "alice", ("xray_bone_patch", rows["alice"][:1])) is None
        _receive(st, "carol", rows["alice"][:1])            # alice's twin, from gate g1
        _receive(st, "dan", rows["bob"][1:])                # bob's twin, from gate g1
        assert set(_lists(st)) == {"alice", "bob"}
        # until they are listed, a decision compares the frame with them too (on no list)
        pipe.load_gallery(st)
        asked, real = [], pipe.identity.person
        monkeypatch.setattr(pipe.identity, "person", lambda v: asked.append(v) or real(v))
        d = pipe.decide(b["genuine"])
        assert d.user_id == "alice" and d.lookalikes == "checked", d.reason
        assert sorted(asked) == ["carol", "dan"]
        monkeypatch.setattr(pipe.identity, "person", real)
        up = ListUpkeep(pipe.identity, st, {"operator": "test"}, clock=_Ticks())
        assert up.step(1.5) is True                 # carol taken, one comparison done
        assert up.cur[0] == "carol" and len(up.cur[3]) == 2
        assert set(_lists(st)) == {"alice", "bob"}  # nothing written before the end
        # dan is re-enrolled (another site change) while carol is half made: carol's write
        # compares his new templates, not the ones of the round's start
        _receive(st, "dan", rows["alice"][1:], replace=True)
        while up.step(1.5):
            pass
        # dan changed since the round began: his turn came in the next round, at once
        lists = _lists(st)
        assert set(lists) == {"alice", "bob", "carol", "dan"}
        assert lists["carol"]["alice"] > 0.95 and lists["alice"]["carol"] > 0.95
        assert lists["carol"].get("dan", 0) > 0.95        # his new bones are alice's
        assert lists["dan"]["alice"] == lists["alice"]["dan"] > 0.95
        assert lists["dan"]["carol"] == lists["carol"]["dan"]
        assert "dan" not in lists["bob"] or lists["bob"]["dan"] < 0.95
        assert up.stats["lists_made"] == 2 and up.pending() is False
        assert up.step(100.0) is False                    # nothing more to do
        st.verify()
        # the gate's own: only with the check (a gate object needs only these two)
        from types import SimpleNamespace
        gate = SimpleNamespace(pipeline=pipe, store=st, cfg=pipe.cfg)
        assert upkeep_for_gate(gate).active
        _with_lookalikes(monkeypatch, None)
        pipe.identity.load()
        assert upkeep_for_gate(gate) is None
    finally:
        pipe.close()
        st.close()


def test_a_list_transaction_compares_few_people_more_wait_for_the_next_slices(
        tmp_path, xray_people, monkeypatch):
    """Someone received between the upkeep's last look and its transaction: compared in the
    transaction when few (device.gate.lookalike_upkeep.RESIDUAL_MOST), else left for the next
    slices, the transaction writing nothing."""
    from device.gate import lookalike_lists as LL
    from device.gate import lookalike_upkeep as U
    _with_lookalikes(monkeypatch)
    b = xray_people
    pipe, st, rows = _alice_and_bob(tmp_path, b)
    try:
        _receive(st, "carol", rows["alice"][:1])
        up = U.ListUpkeep(pipe.identity, st, clock=_Ticks())
        assert up.step(1.5) and up.cur[0] == "carol"
        _receive(st, "dan", rows["alice"][1:])              # after carol's round began
        real = LL.missing
        monkeypatch.setattr(LL, "missing", lambda *a: [])    # the last look misses him
        monkeypatch.setattr(U, "RESIDUAL_MOST", 0)
        written = st.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        assert up.step(3.5) is True and up.cur[0] == "carol" and up.cur[3] == ["dan"]
        assert st.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == written
        assert "carol" not in _lists(st)
        while up.step(100.0):
            pass
        assert _lists(st)["carol"]["dan"] > 0.95                # compared before the write
        monkeypatch.setattr(LL, "missing", real)
        up.next_look = 0.0
        while up.step(100.0):
            pass
        assert set(_lists(st)) == {"alice", "bob", "carol", "dan"}
    finally:
        pipe.close()
        st.close()


def test_the_prefilter_grids_and_its_numbers():
    from device.gate import bone_prefilter as BP
    rng = np.random.default_rng(1)
    a = [(rng.standard_normal((80, 80)).astype(np.float32), np.ones((80, 80), np.float32))
         for _ in range(2)]
    b = [(rng.standard_normal((80, 80)).astype(np.float32), np.ones((80, 80), np.float32))]
    da, db = BP.describe(a), BP.describe(b)
    assert da["grid16"][0].shape == (2, 16, 16) and da["grid32s"][0].shape == (2, 32, 32)
    assert BP.similarity(da["grid16"], BP.describe(a[1:])["grid16"], 0) == pytest.approx(1.0)
    shifted = [(np.roll(a[0][0], 5, axis=1), a[0][1])]     # 2 cells of 2.5 mm
    assert BP.similarity(da["grid32s"], BP.describe(shifted)["grid32s"], 2) > 0.9
    from device.gate.binding_texture import turned
    dt = BP.describe([(turned(a[0][0], 3.0), turned(a[0][1], 3.0, nearest=True))])
    s2, s3 = (BP.stage_similarity(da, dt, st) for st in BP.STAGES[1:])
    assert s3 > 0.99 and s3 > s2                     # the turned stage finds a turned copy
    assert abs(BP.similarity(da["grid16"], db["grid16"], 0)) < 0.5
    empty = [(a[0][0], np.zeros((80, 80), np.float32))]     # nothing weighed: passed on
    assert math.isnan(BP.similarity(da["grid16"], BP.describe(empty)["grid16"], 0))
    pre = {"grid16": 0.9, "grid32s": 0.9, "grid32st": 0.9, "for_min_pair_agreement": 0.8}
    assert BP.passes(da, BP.describe(a[:1]), pre) and not BP.passes(da, db, pre)
    assert BP.passes(da, db, None) and BP.passes(da, BP.describe(empty), pre)
    assert LA.lookalike_numbers({"lookalikes": {**NUMBERS, "prefilter": pre}})["prefilter"] \
        == pre
    assert "prefilter" not in LA.lookalike_numbers({"lookalikes": NUMBERS})
    for bad in ({"grid16": 0.5}, {**pre, "grid16": 2.0}, [0.1, 0.2],
                {**pre, "for_min_pair_agreement": 0.85}, {**pre, "for_min_pair_agreement": None}):
        with pytest.raises(ValueError):
            LA.lookalike_numbers({"lookalikes": {**NUMBERS, "prefilter": bad}})


def test_with_a_signed_prefilter_only_the_pairs_it_passes_are_compared_in_full(
        tmp_path, xray_people, monkeypatch):
    from device.gate.lookalike_upkeep import ListUpkeep
    _with_lookalikes(monkeypatch, {**NUMBERS, "prefilter": {
        "grid16": 0.99, "grid32s": 0.99, "grid32st": 0.99, "for_min_pair_agreement": 0.8}})
    b = xray_people
    pipe, st, rows = _alice_and_bob(tmp_path, b)
    try:
        assert _lists(st) == {"alice": {}, "bob": {}}       # bob's look at alice: stopped
        _receive(st, "carol", rows["alice"][1:])            # alice's twin
        out = ListUpkeep(pipe.identity, st).run()
        assert (out["pairs_compared"], out["pairs_stopped_by_prefilter"]) == (2, 1)
        lists = _lists(st)
        assert lists["carol"]["alice"] == lists["alice"]["carol"] > 0.95
        assert lists["bob"] == {} and "bob" not in lists["carol"]
    finally:
        pipe.close()
        st.close()


def test_palmgate_run_makes_the_missing_lists_between_presentations(
        tmp_path, xray_people, monkeypatch, capsys):
    """``palmgate run`` (device/service.py): people without a list get theirs from the
    running gate after its presentations, audited as the gate's."""
    from conftest import write_toml

    from device.cli import main
    from device.sources.replay import write_burst
    b = xray_people
    for n in range(3):
        write_burst(tmp_path / "replay" / f"{n:02d}", b["genuine"])
    _with_lookalikes(monkeypatch, None)                 # enrolled while the check was off
    cfg = gate_config(tmp_path, liveness={"sensor": "xray",
                                          "sensor_identity": "when_enrolled"},
                      source={"kind": "replay", "replay_dir": str(tmp_path / "replay")})
    pipe = Pipeline(cfg)
    try:
        with open_store(cfg) as st:
            enrol_user(pipe, st, "alice", b["enrol"][0])
            enrol_user(pipe, st, "bob", b["enrol"][1])
            assert _lists(st) == {}
    finally:
        pipe.close()
    _with_lookalikes(monkeypatch)
    f = write_toml(tmp_path / "p.toml", cfg)
    assert main(["run", "--config", str(f), "--plain-log"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    with open_store(cfg) as st:
        marks = [p.split('"lookalikes":"')[1].split('"')[0]
                 for (p,) in st.conn.execute("SELECT payload FROM audit ORDER BY seq")
                 if '"lookalikes":"' in p]
        assert marks[0] == "not_listed" and marks[-1] in ("checked", "denied"), marks
        lists = _lists(st)
        assert set(lists) == {"alice", "bob"}
        assert lists["alice"].get("bob") == lists["bob"].get("alice")
        rec = [p for k, p in st.conn.execute("SELECT kind, payload FROM audit")
               if k == "lookalike_lists_built"]
        assert len(rec) == 2 and all("palmgate run (look-alike lists)" in p for p in rec)


def test_a_failed_slice_is_logged_and_never_stops_the_gate(monkeypatch, caplog):
    from device.gate import lookalike_upkeep as U
    up = U.ListUpkeep(type("I", (), {"numbers": {"lookalikes": NUMBERS}, "kind":
                                     "xray_bone_patch"})(), store=None, clock=_Ticks())
    with caplog.at_level("ERROR", logger="palmgate.gate"):
        assert up.tick() is False
    assert "look-alike lists" in caplog.text and up.next_look > up.clock() + 50


def test_the_command_reports_and_builds_only_with_signed_numbers(tmp_path, capsys, monkeypatch):
    import json
    from device.cli import main
    unit = tmp_path / "unit"
    assert main(["init", "--dir", str(unit), "--set", 'liveness.sensor="xray"']) == 0
    c = ["--config", str(unit / "palmgate.toml")]
    capsys.readouterr()
    _with_lookalikes(monkeypatch, None)                 # as shipped today: no check
    assert main(["lookalikes", *c]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["kind"] == "xray_bone_patch" and rep["check"].startswith("off")
    assert main(["lookalikes", "--build", *c]) == 2
    assert "lookalikes" in capsys.readouterr().err
    _with_lookalikes(monkeypatch)
    assert main(["lookalikes", "--build", "--operator", "tester", *c]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["built"] == {"people_without_a_list": 0, "lists_made": 0, "lists_written": 0,
                            "pairs_compared": 0, "pairs_stopped_by_prefilter": 0, "people": 0}
    assert rep["check"] == NUMBERS


def test_a_held_back_binding_deny_keeps_which_identity_check_denied_for_evaluations():
    from device.gate.pipeline import _dropped
    out = Decision(user_id="alice", sensor_identity="denied", sensor_identity_by="lookalike",
                   lookalikes="denied")
    _dropped(out)          # the binding's held-back sensor_mismatch decides
    assert (out.user_id, out.sensor_identity, out.sensor_identity_by, out.lookalikes) == \
        (None, None, None, None)
    assert out.identity_by_held == "lookalike"


def test_the_attack_summary_counts_the_checks_denials_under_a_held_back_binding_too():
    from device.eval.lookalike_attacks import summary
    def row(kind, decision, user, by, cpu=None, un=None, compared=0):
        return {"kind": kind, "decision": decision, "user_id": user, "claimed_person": "p1",
                "by": by, "reason": "match" if decision == "open" else "sensor_identity",
                "lookalikes": "checked", "identity_cpu_ms": cpu,
                "unchecked_identity_cpu_ms": un, "unchecked_decision": decision,
                "compared": compared}
    rows = [row("attack", "open", "p1", None), row("attack", "deny", "p1", "lookalike"),
            row("attack", "deny", None, "lookalike"),          # held back: user id dropped
            row("attack", "deny", None, "patch"),
            row("genuine", "open", "p1", None, 12.0, 7.0, 1),
            row("genuine", "open", "p1", None, 6.0, 6.0, 0)]
    s = summary({"rows": rows, "pairs": [], "enrolled": 2, "enrol_refused": [], "enrol_s": 1})
    assert (s["opened"], s["stopped_by_lookalikes"], s["opened_without_the_check"]) == (1, 2, 3)
    assert s["added_identity_cpu_ms_median_paired"] == {"all": 2.5, "with_lookalikes": 5.0}

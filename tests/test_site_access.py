"""Access times set at the site reach the gates, on a real Mosquitto: a user's weekly zones,
validity and holiday policy (``update``), the site's holiday list (``holidays``), both in the
gates' own stores with their audit records, carried to a gate that joins later, refused at the
service when malformed, and never replaced by an older list."""
from __future__ import annotations

import datetime as dt

import pytest

from test_site_e2e import Site, person, wait                   # skips without a broker

from device.site import access as A                             # noqa: E402
from device.site import provision as P                          # noqa: E402
from device.site import service as S                            # noqa: E402
from device.store.holidays import holidays                      # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("site_access"))
    yield s
    s.close()


def on(site, g, fn):
    return site.gates[g].submit(lambda s: fn(s.store)).result(10)


def audit_kinds(site, g):
    return on(site, g, lambda st: [r.kind for r in st.audit.records()])


def test_a_schedule_set_at_the_site_reaches_every_gate_and_decides(site):
    site.gates["g1"].enrol_local("carol", person(3)).result(10)
    wait(lambda: "carol" in site.users("g2"), what="carol on g2")
    sched = [[0, "08:00", "12:00"]]                             # Mondays 08-12 only
    r = site.svc.call(A.update_user, "carol", {"schedule": sched, "holidays": "allow"})
    assert r["attrs"] == {"schedule": sched, "holidays": "allow"}
    for g in ("g1", "g2"):
        wait(lambda: on(site, g, lambda st: st.get_user("carol").schedule) == sched,
             what=f"carol's schedule on {g}")
        u = on(site, g, lambda st: st.get_user("carol"))
        assert u.holidays == "allow"
        monday_9 = dt.datetime(2026, 12, 7, 9, 0).timestamp()
        tuesday_9 = dt.datetime(2026, 12, 8, 9, 0).timestamp()
        assert u.access(monday_9) is None
        assert u.access(tuesday_9) == "outside_schedule"
        assert "user_update" in audit_kinds(site, g)
    # the attributes ride along with a later enrolment of the same user
    site.gates["g2"].enrol_local("carol", person(3, noise=0.01)).result(10)
    wait(lambda: on(site, "g1", lambda st: st.get_user("carol").version) >= 2,
         what="carol re-enrolled on g1")
    wait(lambda: on(site, "g1", lambda st: st.get_user("carol").schedule) == sched,
         what="carol's schedule after re-enrolment")


def test_bad_access_times_are_refused_at_the_service(site):
    site.gates["g1"].enrol_local("dave", person(4)).result(10)
    wait(lambda: "dave" in site.users("g2"), what="dave on g2")
    for bad in ({"schedule": [[9, "08:00", "12:00"]]}, {"holidays": "maybe"},
                {"enabled": "yes"}, {"label": "x"}, {"valid_from": 20.0, "valid_until": 10.0},
                {}):
        with pytest.raises(ValueError):
            site.svc.call(A.update_user, "dave", bad)
    with pytest.raises(KeyError):
        site.svc.call(A.update_user, "nobody", {"enabled": False})
    with pytest.raises(ValueError):
        site.svc.call(A.set_holidays, {"2026-13-01": "no such month"})
    assert site.svc.call(S.snapshot)["holidays"] == {}


def test_the_site_holiday_list_replaces_each_gates_list(site):
    on(site, "g2", lambda st: __import__("device.store.holidays", fromlist=["x"])
       .add_holiday(st, "2026-11-11", "local only"))
    days = {"2026-12-25": "Christmas Day", "2026-12-26": "Boxing Day"}
    r = site.svc.call(A.set_holidays, days)
    assert r["gates"] == ["g1", "g2"]
    for g in ("g1", "g2"):
        wait(lambda: on(site, g, holidays) == days, what=f"the list on {g}")
        assert "holiday_sync" in audit_kinds(site, g)
    assert site.svc.call(S.snapshot)["holidays"] == days
    # an older list delivered late (a resend) does not replace the newer one
    older = r["version"] - 1
    site.svc.call(_write_change, "g1", older, {"2026-01-01": "stale"})
    site.svc.call(A.set_holidays, dict(days, **{"2027-01-01": "New Year"}))
    wait(lambda: "2027-01-01" in on(site, "g1", holidays), what="the newest list on g1")
    notes = site.gates["g1"].submit(lambda s: [r[0] for r in s.db.execute(
        "SELECT note FROM applied WHERE user_id=? ORDER BY gseq", (A.HOLIDAYS_ID,))]).result(10)
    assert any(n.startswith("skipped older than version") for n in notes), notes
    assert "2026-01-01" not in on(site, "g1", holidays)


@A.writes
def _write_change(svc, gate, version, days, out=None):
    svc._change(gate, "holidays", A.HOLIDAYS_ID, version, {"holidays": days}, out)


def test_a_gate_that_joins_later_gets_the_list(site):
    days = site.svc.call(S.snapshot)["holidays"]
    assert days
    P.add_gate(site.dir, "g4")
    site.broker.reload()
    site.svc.call(S.sync_gates)
    site.start_gate("g4")
    wait(lambda: on(site, "g4", holidays) == days, what="the list on g4")


def test_the_json_api_sets_holidays_and_refuses_bad_input(site):
    import json
    import urllib.error
    import urllib.request

    from device.site.provision import admin_token
    from device.site.web import render, serve
    httpd = serve(site.svc, "127.0.0.1", 0, admin_token(site.dir))
    try:
        def post(path, body, token=admin_token(site.dir)):
            req = urllib.request.Request(f"http://127.0.0.1:{httpd.server_port}{path}",
                                         json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        days = {"2027-03-26": "Good Friday"}
        assert post("/api/holidays", {"holidays": days}, token="wrong")[0] == 401
        code, r = post("/api/holidays", {"holidays": days})
        assert code == 200 and r["holidays"] == days
        code, r = post("/api/holidays", {"holidays": {"soon": ""}})
        assert code == 400 and "soon" in r["error"]
        code, r = post("/api/user", {"user_id": "dave", "valid_until": "tomorrow"})
        assert code == 400 and "valid_until" in r["error"]
        code, r = post("/api/user", {"user_id": "dave", "enabled": False})
        assert code == 200 and r["attrs"] == {"enabled": False}
        wait(lambda: on(site, "g2", lambda st: st.get_user("dave").enabled) is False,
             what="dave disabled on g2")
        page = render(site.svc.call(S.snapshot), "t")
        assert "Good Friday" in page and "enabled false" in page
    finally:
        httpd.shutdown()

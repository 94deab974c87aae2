"""``palmgate fleet-demo --gates N --users M --json``: a whole site on this machine.

Starts Mosquitto, the management service (``palmgate site-service``) and N gate processes
(:mod:`device.site.gateproc`, each with its own sealed store and sync client), then:

1. sample: ``--sample`` synthetic people rendered (device.synth) and put through the real
   pipeline (palm regions -> cell templates), enrolled at one gate each; their genuine
   presentations' features are what "opens for that palm" is checked with on every gate;
2. bulk: the other users enrolled from random unit cell features (G=49, d=16; no images),
   spread over the gates as fast as the site takes them (throughput, latency under backlog);
3. steady state: ``--measure`` enrolments and ``--revokes`` revocations paced at ``--rate``
   per second over the site: ``enrol_visible_p95_s`` (local enrolment done -> applied in the
   store of every other gate) and ``revoke_effective_p95_s`` (revocation issued at the
   service -> deleted from every gate's store); a gate decides from its store's gallery;
4. offline: one gate cut from the broker while ``--offline-changes`` changes (enrolments
   elsewhere, revocations) happen and it decides offline, then back: time to catch up,
   changes lost, its audit chain at the service;
5. broker restart (SIGTERM, persistence on) with enrolments and revocations while it is down;
6. checks: every sample palm opens on every gate as its owner, a revoked one nowhere, every
   gate's audit chain verified at the service; ``lost_changes`` counts every change the
   service numbered for a gate that the gate has not applied, plus uploads stuck in outboxes.
"""
from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from device.site import provision as P
from device.site.broker import Broker, free_port

G, D = 49, 16


def _log(msg: str) -> None:
    print(f"fleet: {msg}", file=sys.stderr, flush=True)


class GateProc:
    def __init__(self, site_dir, gate, work):
        self.gate, self.work = gate, Path(work)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        self.p = subprocess.Popen([sys.executable, "-m", "device.site.gateproc", "--site-dir",
                                   str(site_dir), "--gate", gate, "--work", str(work)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env, bufsize=1)

    def send(self, **cmd) -> None:
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()

    def recv(self) -> dict:
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"gate {self.gate} exited (rc {self.p.poll()})")
        r = json.loads(line)
        if "error" in r:
            raise RuntimeError(f"gate {self.gate}: {r['error']}")
        return r

    def call(self, **cmd) -> dict:
        self.send(**cmd)
        return self.recv()

    def applied(self) -> dict:
        """{(kind, user): ts} of the changes this gate applied (its sync state, read-only)."""
        c = sqlite3.connect(f"file:{self.work / 'sync.db'}?mode=ro", uri=True, timeout=30)
        try:
            return {(k, u): ts for k, u, ts in c.execute(
                "SELECT kind, user_id, MAX(ts) FROM applied WHERE note LIKE 'applied%' "
                "GROUP BY kind, user_id")}
        finally:
            c.close()

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self.send(op="quit")
                self.p.wait(20)
            except Exception:       # noqa: BLE001
                self.p.kill()


def _rss_mb(pid) -> dict:
    """Resident memory of process ``pid`` now and at its peak (VmHWM), MB."""
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out["rss_mb" if k == "VmRSS" else "peak_rss_mb"] = round(int(v.split()[0]) /
                                                                       1024, 1)
    except OSError:
        pass
    return out


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _b64(a) -> str:
    return base64.b64encode(np.ascontiguousarray(a, np.float32).tobytes()).decode()


def _pct(v, q=95) -> float | None:
    return round(float(np.percentile(v, q)), 3) if len(v) else None


class Fleet:
    def __init__(self, root: Path, n_gates: int):
        self.root = root
        self.site_dir = root / "site"
        self.ids = [f"g{i:02d}" for i in range(1, n_gates + 1)]
        self.info = P.init_site(self.site_dir, "demo", self.ids, port=free_port(),
                                admin_port=free_port())
        self.token = P.admin_token(self.site_dir)
        self.url = f"http://127.0.0.1:{self.info['admin_port']}"
        self.broker = Broker(self.site_dir).start()
        self.svc = subprocess.Popen([sys.executable, "-m", "device.cli", "site-service",
                                     "--site-dir", str(self.site_dir)],
                                    stdout=subprocess.PIPE, text=True)
        self.svc.stdout.readline()
        self.gates = {g: GateProc(self.site_dir, g, root / "gates" / g) for g in self.ids}
        for gp in self.gates.values():
            gp.recv()

    def http(self, path, body=None):
        req = urllib.request.Request(self.url + path, method="GET" if body is None else "POST",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    def reports(self, gates=None) -> dict:
        gates = gates or self.ids
        for g in gates:
            self.gates[g].send(op="report")
        return {g: self.gates[g].recv() for g in gates}

    def service_heads(self) -> dict:
        c = sqlite3.connect(f"file:{self.site_dir / 'service' / 'service.db'}?mode=ro",
                            uri=True, timeout=30)
        try:
            return dict(c.execute("SELECT gate_id, next_gseq FROM gates"))
        finally:
            c.close()

    def settle(self, timeout: float = 600.0, gates=None) -> float:
        """Wait until every gate applied every change the service numbered for it and has
        an empty outbox; returns the seconds waited."""
        t0 = time.time()
        gates = gates or self.ids
        while time.time() - t0 < timeout:
            r = self.reports(gates)
            heads = self.service_heads()
            if all(r[g]["outbox"] == 0 for g in gates):
                time.sleep(0.3)
                heads = self.service_heads()
                r = self.reports(gates)
                if all(r[g]["contig"] >= heads[g] and r[g]["outbox"] == 0 for g in gates):
                    return time.time() - t0
            time.sleep(0.5)
        raise RuntimeError("the site did not settle in time")

    def synth(self, per_gate: dict, seed: int, prefix: str, rate: float | None) -> dict:
        """{gate: (first, count)} synthetic enrolments, all gates at once; {user: (gate, t)}."""
        for g, (first, count) in per_gate.items():
            self.gates[g].send(op="synth", seed=seed, first=first, count=count,
                               prefix=prefix, rate=rate)
        out = {}
        for g in per_gate:
            for u, t in self.gates[g].recv()["times"].items():
                out[u] = (g, t)
        return out

    def visible(self, enrolled: dict, kind="enrol") -> list[float]:
        """Per user: the last other gate's apply time minus the local enrolment time."""
        applied = {g: gp.applied() for g, gp in self.gates.items()}
        lat = []
        for u, (g0, t) in enrolled.items():
            ts = [applied[g].get((kind, u)) for g in self.ids if g != g0]
            if all(x is not None for x in ts):
                lat.append(max(ts) - t)
        return lat

    def revoke(self, users, rate: float | None) -> dict:
        out = {}
        gap = 1.0 / rate if rate else 0.0
        t_next = time.time()
        for u in users:
            if gap:
                time.sleep(max(0.0, t_next - time.time()))
                t_next += gap
            out[u] = self.http("/api/revoke", {"user_id": u})["issued"]
        return out

    def revoked_latency(self, issued: dict) -> list[float]:
        applied = {g: gp.applied() for g, gp in self.gates.items()}
        lat = []
        for u, t in issued.items():
            ts = [applied[g].get(("revoke", u)) for g in self.ids]
            if all(x is not None for x in ts):
                lat.append(max(ts) - t)
        return lat

    def lost(self) -> dict:
        heads = self.service_heads()
        missing = {}
        for g, gp in self.gates.items():
            c = sqlite3.connect(f"file:{gp.work / 'sync.db'}?mode=ro", uri=True, timeout=30)
            have = {r[0] for r in c.execute("SELECT gseq FROM applied WHERE gseq <= ?",
                                            (heads[g],))}
            stuck = c.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            c.close()
            n = heads[g] - len(have) + stuck
            if n:
                missing[g] = n
        return missing

    def memory(self) -> dict:
        gates = [_rss_mb(gp.p.pid) for gp in self.gates.values()]
        return {"service": _rss_mb(self.svc.pid),
                "broker": _rss_mb(self.broker.proc.pid) if self.broker.proc else {},
                "gate_max_peak_rss_mb": max((g.get("peak_rss_mb", 0) for g in gates),
                                            default=None)}

    def close(self) -> None:
        for gp in self.gates.values():
            gp.close()
        if self.svc.poll() is None:
            self.svc.terminate()
            self.svc.wait(20)
        self.broker.stop()


def _sample_people(root: Path, n: int, views: int = 3):
    """(plaintext templates, genuine queries) of ``n`` rendered people through the pipeline."""
    from device.eval.demo import demo_config
    from device.gate.pipeline import Pipeline
    from device.synth.source import SyntheticPeople
    from device.vision.quality import CorruptFrame, QualityIssue, frame_check
    cfg = demo_config(root / "harness", views=views, liveness=False)
    pipe = Pipeline(cfg)
    people = SyntheticPeople(seed=0, views=views)

    def rois(b):
        ok = []
        for k, v in enumerate(b.views):
            try:
                frame_check(v, cfg.quality)
                ok.append(k)
            except (CorruptFrame, QualityIssue):
                pass
        return pipe.regions(b.views, ok)[0]
    out = []
    try:
        for i in range(n):
            r = rois(people.burst(i, "enrol", 0)) + rois(people.burst(i, "enrol", 1))
            plain = pipe.templates(r)
            q = pipe.features(rois(people.burst(i, "genuine", 0)))
            out.append((f"person-{i:03d}", plain, q))
    finally:
        pipe.close()
    return out


def run_fleet(gates: int = 4, users: int = 200, sample: int = 2, measure: int = 100,
              revokes: int = 50, rate: float = 10.0, offline_changes: int = 1000,
              out: str | None = None, keep: bool = False) -> dict:
    from device.synth.source import DEMO_THRESHOLD
    root = Path(out) if out else Path(tempfile.mkdtemp(prefix="palmgate-fleet-"))
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    res: dict = {"engine": f"Eclipse Mosquitto {_mosquitto_version()} (MQTT 3.1.1, QoS 1, "
                           f"persistent sessions, persistence on)",
                 "gates": gates, "users": users, "date": time.strftime("%Y-%m-%d %H:%M"),
                 "load_average": {"start": _load()}}
    _log(f"rendering {sample} sample people through the pipeline")
    people = _sample_people(root, sample)
    f = Fleet(root, gates)
    try:
        _log(f"site up: broker :{f.broker.port}, service {f.url}, {gates} gates")
        t0 = time.time()
        while not all(r["roster_gates"] == gates for r in f.reports().values()):
            if time.time() - t0 > 60:
                raise RuntimeError("gates did not get the roster")
            time.sleep(0.2)
        ids = f.ids
        # 1. sample through the real pipeline
        enrolled_real = {}
        for k, (uid, plain, _) in enumerate(people):
            g = ids[k % gates]
            r = f.gates[g].call(op="enrol", user=uid, plain=_b64(plain), shape=plain.shape)
            enrolled_real[uid] = (g, r["t"])
        # 2. bulk
        bulk = max(0, users - sample - measure - offline_changes * 9 // 10 - 20)
        share = {g: (i * (bulk // gates + 1), min(bulk // gates + 1,
                                                  max(0, bulk - i * (bulk // gates + 1))))
                 for i, g in enumerate(ids)}
        _log(f"bulk: {bulk} synthetic enrolments over {gates} gates")
        tb = time.time()
        bulk_times = f.synth(share, seed=1, prefix="s", rate=None)
        t_settle = f.settle()
        tb = time.time() - tb
        bl = f.visible(bulk_times)
        msgs = bulk * (gates + 1)
        res["bulk"] = {"enrolments": bulk, "seconds": round(tb, 1),
                       "enrolments_per_s": round(bulk / tb, 1) if tb else None,
                       "broker_messages_per_s": round(msgs / tb, 1) if tb else None,
                       "settle_s": round(t_settle, 1), "visible_p50_s": _pct(bl, 50),
                       "visible_p95_s": _pct(bl), "note": "as fast as the site takes them: "
                       "latency under backlog, not the steady state"}
        # every gate builds its gallery once (as a gate does at start); from here on it
        # follows the site's changes user by user (device.site.livegallery)
        q0 = people[0][2]
        for g in ids:
            f.gates[g].send(op="identify", queries=_b64(q0), shape=q0.shape,
                            threshold=DEMO_THRESHOLD)
        built = [f.gates[g].recv() for g in ids]
        res["bulk"]["gallery_full_build_s"] = {"max": max(r["reload_s"] for r in built),
                                               "min": min(r["reload_s"] for r in built),
                                               "templates": built[0]["gallery"]}
        res["load_average"]["after_bulk"] = _load()
        res["bulk"]["memory_after"] = f.memory()
        _log(f"bulk done in {tb:.0f} s: {res['bulk']}")
        # 3. steady state, paced
        per = {g: (10**6 + i * (measure // gates + 1),
                   min(measure // gates + 1, max(0, measure - i * (measure // gates + 1))))
               for i, g in enumerate(ids)}
        m_times = f.synth(per, seed=2, prefix="m", rate=rate / gates)
        f.settle()
        vis = f.visible(m_times) + f.visible(enrolled_real)
        rv_users = sorted(bulk_times)[:revokes]
        issued = f.revoke(rv_users, rate)
        f.settle()
        rl = f.revoked_latency(issued)
        res["enrol_visible_p95_s"] = _pct(vis)
        res["enrol_visible_max_s"] = round(max(vis), 3) if vis else None
        res["revoke_effective_p95_s"] = _pct(rl)
        res["revoke_effective_max_s"] = round(max(rl), 3) if rl else None
        res["steady"] = {"enrolments": len(vis), "revocations": len(rl), "rate_per_s": rate,
                         "users_present": len(bulk_times) + len(people)}
        res["load_average"]["after_steady"] = _load()
        _log(f"steady: {res['enrol_visible_p95_s']} / {res['revoke_effective_p95_s']}")
        # 4. offline gate
        off = ids[-1]
        f.gates[off].call(op="offline")
        n_rev = offline_changes // 10
        n_enr = offline_changes - n_rev
        others = ids[:-1] or ids
        per = {g: (2 * 10**6 + i * (n_enr // len(others) + 1),
                   min(n_enr // len(others) + 1, max(0, n_enr - i * (n_enr // len(others) + 1))))
               for i, g in enumerate(others)}
        f.synth(per, seed=3, prefix="o", rate=None)
        f.revoke(sorted(bulk_times)[revokes:revokes + n_rev], None)
        uid, _, q = people[0]
        offline_dec = [f.gates[off].call(op="identify", queries=_b64(q), shape=q.shape,
                                         threshold=DEMO_THRESHOLD) for _ in range(2)]
        f.settle(gates=others)
        missed = f.service_heads()[off] - f.reports([off])[off]["contig"]
        to = time.time()
        f.gates[off].call(op="online")
        f.settle()
        res["offline_gate_caught_up"] = {
            "gate": off, "changes_while_offline": missed,
            "catch_up_s": round(time.time() - to, 2), "lost": f.lost().get(off, 0),
            "decided_offline": [d["opened"] for d in offline_dec]}
        # 5. broker restart
        f.broker.stop()
        time.sleep(1.0)
        per = {g: (3 * 10**6 + i * 2, 2) for i, g in enumerate(ids[:10])}
        for g, (first, count) in per.items():
            f.gates[g].send(op="synth", seed=4, first=first, count=count, prefix="r",
                            rate=None)
        down_rev = sorted(bulk_times)[revokes + n_rev:revokes + n_rev + 10]
        f.broker.start()
        for g in per:
            f.gates[g].recv()
        f.revoke(down_rev, None)
        f.broker.restart(down_s=1.0)
        tr = time.time()
        f.settle()
        lost = f.lost()
        res["broker_restart_survived"] = not lost
        res["broker_restart"] = {"catch_up_s": round(time.time() - tr, 2),
                                 "enrolled_around_restart": 2 * len(per),
                                 "revoked_around_restart": len(down_rev)}
        # 6. checks: sample palms on every gate; one revoked
        checks = {}
        if len(people) > 1:
            f.revoke([people[-1][0]], None)
            f.settle()
        for k, (uid, _, q) in enumerate(people):
            want = k < len(people) - 1 or len(people) == 1
            for g in ids:
                f.gates[g].send(op="identify", queries=_b64(q), shape=q.shape,
                                threshold=DEMO_THRESHOLD)
            rs = {g: f.gates[g].recv() for g in ids}
            checks[uid] = {"should_open": want, "gallery_rebuild_max_s":
                           max(r.get("reload_s", 0.0) for r in rs.values()),
                           "opened_as_owner": sum(r["opened"] and r["user"] == uid
                                                  for r in rs.values()),
                           "denied": sum(not r["opened"] for r in rs.values()),
                           "gates": gates}
        res["sample_checks"] = checks
        time.sleep(3.0)
        st = f.http("/api/state")
        reps = f.reports()
        res["audit"] = {g["gate_id"]: {"chain": g["audit_chain"],
                                       "at_service": g["audit_records"],
                                       "on_gate": reps[g["gate_id"]]["audit_head"]}
                        for g in st["gates"]}
        res["lost_changes"] = sum(f.lost().values())
        res["bytes_per_enrolment_per_gate"] = _bytes(f)
        res["service_stats"] = st["stats"]
        res["memory"] = f.memory()
        ups = [r["gallery_updates"] for r in reps.values() if r["gallery_updates"]["n"]]
        res["gallery_incremental_updates"] = {
            "batches": sum(u["n"] for u in ups),
            "p95_s_worst_gate": max((u["p95_s"] for u in ups), default=None),
            "max_s": max((u["max_s"] for u in ups), default=None),
            "note": "a gate's gallery refreshes the users changed since its last decision "
                    "(site changes and its own enrolments) at the next decision, user by "
                    "user; no full rebuild after the first"}
        res["load_average"]["end"] = _load()
        res["elapsed_s"] = round(time.time() - t_start, 1)
        res["notes"] = [
            "bulk and steady-state users are random unit cell features (G=49, d=16), 1 "
            "template each, no images; sample users are rendered synthetic people put "
            "through the real pipeline (regions -> cell templates), 2 bursts x 3 views",
            "visible = the change is committed in the gate's sealed store; the gallery the "
            "gate decides from refreshes the changed users at its next decision "
            "(gallery_incremental_updates); sample_checks run the gate's own 1:N search",
            "gate processes run no camera pipeline; every broker link is TLS 1.2+ with a "
            "site-CA client certificate"]
    finally:
        f.close()
        if not keep and not out:
            import shutil
            shutil.rmtree(root, ignore_errors=True)
    return res


def _bytes(f: Fleet) -> dict:
    c = sqlite3.connect(f"file:{f.site_dir / 'service' / 'service.db'}?mode=ro", uri=True)
    try:
        syn = c.execute("SELECT AVG(gate_bytes), AVG(recovery_bytes) FROM uploads WHERE "
                        "user_id LIKE 's%' AND outcome='ok'").fetchone()
        real = c.execute("SELECT AVG(gate_bytes), AVG(n) FROM uploads WHERE user_id LIKE "
                         "'person-%' AND outcome='ok'").fetchone()
        hdr = c.execute("SELECT AVG(LENGTH(header)) FROM changes WHERE kind='enrol'"
                        ).fetchone()[0]
    finally:
        c.close()
    rec = syn[1]
    syn = syn[0]
    frame = 8 + 32 + (hdr or 330)               # framing + service tag + header JSON
    return {"one_template_sealed": round(syn or 0), "change_message_one_template":
            round((syn or 0) + frame),
            "rendered_sample_sealed": round(real[0] or 0),
            "rendered_sample_templates": real[1],
            "recovery_copy_one_template": round(rec or 0),
            "note": "per destination gate; the enrolment upload carries one per gate plus "
                    "the recovery copy"}


def _mosquitto_version() -> str:
    from device.site.broker import mosquitto_binary
    try:
        out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True,
                             timeout=5).stdout
        return out.split("\n")[0].replace("mosquitto version", "").strip()
    except Exception:       # noqa: BLE001
        return "?"

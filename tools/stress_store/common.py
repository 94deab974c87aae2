"""What both stress modes share: a gate site in a folder (config, device key, store, enrolled
synthetic people, replayed presentations), CLI runs, and the consistency check of a store
against its audit log."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# audit kinds that change users or templates (the "before" software wrote "enrol" for both
# enrolments and re-enrolments and no template counts; both are understood)
CHANGE_KINDS = {"enrol", "re_enrol", "templates_added", "user_enable", "user_disable",
                "user_update", "user_delete", "restore"}


def env() -> dict:
    """The environment of every child: this checkout's ``device`` first."""
    e = dict(os.environ)
    pp = [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(ROOT) not in pp:
        pp.append(str(ROOT))
    e["PYTHONPATH"] = os.pathsep.join(pp)
    e.setdefault("OPENBLAS_NUM_THREADS", "1")
    e.setdefault("OMP_NUM_THREADS", "1")
    return e


def palmgate(args: list[str], timeout: float = 300.0) -> tuple[int, str, str, float, float]:
    """``python -m device.cli ARGS`` in another process: (rc, stdout, stderr, start, end)."""
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True,
                       text=True, env=env(), timeout=timeout)
    return r.returncode, r.stdout, r.stderr, t0, time.time()


def write_toml(path: Path, sections: dict) -> Path:
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return json.dumps(str(v))
    lines = []
    for s, kv in sections.items():
        lines.append(f"[{s}]")
        lines += [f"{k} = {val(v)}" for k, v in kv.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_site(root: Path, presentations: int = 20000, liveness: bool = True) -> dict:
    """A gate in ``root``: config (replay source of ``presentations`` bursts cycling person 0,
    person 1 and an impostor; simulated relay; no attempt delays, so denials never lock the
    gate), device key, and persons 0 and 1 enrolled as "alice" and "bob" through the CLI.
    Returns {"config": path, "store": path, "bursts": {"alice": ..., "bob": ..., "imp": ...}}."""
    from device.eval.demo import DEMO_THRESHOLD
    from device.sources.replay import write_burst
    from device.synth.source import SyntheticPeople
    root.mkdir(parents=True, exist_ok=True)
    state = root / "state"
    cfg = write_toml(root / "palmgate.toml", {
        "gate": {"views": 3, "precision": "fp32", "cooldown_s": 0.05, "terminal": "stress"},
        "paths": {"store": str(state / "templates.db"), "device_key": str(state / "device.key"),
                  "create_key": True},
        "liveness": {"enabled": liveness, "sensor": "nir"},
        "match": {"threshold": DEMO_THRESHOLD},
        "attempts": {"base_delay_s": 0.0},
        "relay": {"kind": "sim"},
        "source": {"kind": "replay", "replay_dir": str(root / "replay")}})
    people = SyntheticPeople(seed=0, views=3, sensor="nir", threads=1)
    bursts = {"alice": root / "bursts" / "alice", "bob": root / "bursts" / "bob",
              "imp": root / "bursts" / "imp"}
    write_burst(bursts["alice"], people.burst(0, "genuine", 0))
    write_burst(bursts["bob"], people.burst(1, "genuine", 0))
    write_burst(bursts["imp"], people.burst(7, "impostor", 0))
    rep = root / "replay"
    rep.mkdir(exist_ok=True)
    order = ["alice", "bob", "alice", "imp"]
    for i in range(presentations):
        link = rep / f"{i:06d}-{order[i % len(order)]}"
        if not link.exists():
            os.symlink(bursts[order[i % len(order)]], link)
    for name, person in (("alice", 0), ("bob", 1)):
        rc, out, errs, _, _ = palmgate(["enroll", name, "--synthetic", str(person),
                                        "--config", str(cfg)])
        if rc != 0:
            raise RuntimeError(f"enrolment of {name} failed: {errs.strip()[-400:]}")
    return {"config": cfg, "store": state / "templates.db", "bursts": bursts, "root": root}


def fold_audit(records) -> dict:
    """The users and template counts the audit log says the store holds: {user_id:
    {"version", "enabled", "templates"}} (templates None where the record has no count)."""
    users: dict = {}
    for r in records:
        p, k = r.payload, r.kind
        if k not in CHANGE_KINDS or (k != "restore" and "user_id" not in p):
            continue
        if p.get("mode") == "split":
            continue
        uid = p.get("user_id")
        if k in ("enrol", "re_enrol"):
            users[uid] = {"version": p.get("template_version"),
                          "enabled": p.get("status", "enabled") == "enabled",
                          "templates": p.get("templates")}
        elif k == "templates_added" and uid in users:
            u = users[uid]
            u["templates"] = None if u["templates"] is None else u["templates"] + \
                p.get("templates", 0)
        elif k in ("user_enable", "user_disable") and uid in users:
            users[uid]["enabled"] = k == "user_enable"
        elif k == "user_update" and uid in users and "status" in p:
            users[uid]["enabled"] = p["status"] == "enabled"
        elif k == "user_delete":
            users.pop(uid, None)
        elif k == "restore":
            users = {}                  # a restore replaces everything (not in these runs)
    return users


def store_vs_audit(store) -> list[str]:
    """Differences between the store's users/templates and what its audit log records: a
    change without its record (or a record without its change) shows up here."""
    want = fold_audit(store.audit.records())
    have = {u.user_id: u for u in store.users()}
    n_t: dict = {}
    for uid, _, _, _ in store.templates():
        n_t[uid] = n_t.get(uid, 0) + 1
    out = []
    for uid in sorted(set(want) | set(have)):
        w, h = want.get(uid), have.get(uid)
        if w is None:
            out.append(f"{uid}: in the store, no audit record of its enrolment")
        elif h is None:
            out.append(f"{uid}: recorded as enrolled, not in the store")
        else:
            if w["version"] is not None and w["version"] != h.version:
                out.append(f"{uid}: version {h.version}, audit says {w['version']}")
            if w["enabled"] != h.enabled:
                out.append(f"{uid}: enabled={h.enabled}, audit says {w['enabled']}")
            if w["templates"] is not None and w["templates"] != n_t.get(uid, 0):
                out.append(f"{uid}: {n_t.get(uid, 0)} templates, audit says {w['templates']}")
            if not n_t.get(uid):
                out.append(f"{uid}: half-written (a user without templates)")
    return out


def open_store_of(config: Path):
    """The store of a gate config, opened with every check this software makes."""
    from device.config import load_config
    from device.gate.gate import open_store
    return open_store(load_config(str(config)))

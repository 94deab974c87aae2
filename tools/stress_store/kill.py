"""``python -m tools.stress_store kill --kills N``: N SIGKILLs at random moments of processes
that change the store -- a store worker (enrol, re-enrol, add templates, disable, enable,
delete, decision records and attempt accounting as fast as it can), ``palmgate enroll`` /
``palmgate users ...`` commands, and ``palmgate run`` deciding replayed presentations.
After every kill the store is reopened with every check (integrity, generation, audit
chain) and compared with its audit log:

- lost: a change the worker had reported done whose audit record is not there;
- half-written: a user without templates, or template counts that differ from the record;
- without record: a user, version, state or template count the audit log does not account
  for (a change saved without its record), or a record whose change is not there.
"""
from __future__ import annotations

import inspect
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.stress_store.common import env, make_site, open_store_of, store_vs_audit


# --------------------------------------------------------------------------- the worker
def store_worker(config: str, seed: int) -> None:
    """Change the store in a loop until killed; prints "done SEQ KIND USER" after each
    committed change (SEQ: its audit record)."""
    import numpy as np
    from device.protect.core import enrol
    from device.store.attempts import AttemptLimiter
    st = open_store_of(Path(config))
    rng = np.random.default_rng(seed)
    pyr = random.Random(seed)
    # the software under test: its store writes the record (audit=), or -- the "before"
    # software -- the caller appends it in a second transaction, as its callers did
    joint = "audit" in inspect.signature(st.enrol).parameters
    lim = AttemptLimiter(store=st, max_failures=3, base_delay=0.0)

    def tmpl():
        x = rng.standard_normal((49, 16))
        return enrol(x / np.linalg.norm(x, axis=1, keepdims=True))

    def head():
        return st.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]

    print("ready", flush=True)
    while True:
        users = {u.user_id: u for u in st.users()}
        r = pyr.random()
        uid = pyr.choice(sorted(users)) if users else None
        a = {"audit": {"terminal": "stress"}} if joint else {}
        print("begin", flush=True)
        if uid is None or r < 0.2 or len(users) < 3:
            new = f"k-{pyr.randrange(10 ** 6):06d}"
            ts = [tmpl() for _ in range(pyr.randint(1, 3))]
            v = st.enrol(new, ts, **a)
            if not joint:
                st.audit.append("enrol", user_id=new, template_version=v, terminal="stress")
            print(f"done {head()} enrol {new}", flush=True)
        elif r < 0.35:
            ts = [tmpl() for _ in range(pyr.randint(1, 3))]
            v = st.enrol(uid, ts, replace=True, **a)
            if not joint:
                st.audit.append("enrol", user_id=uid, template_version=v, terminal="stress")
            print(f"done {head()} {'re_enrol' if joint else 'enrol'} {uid}", flush=True)
        elif r < 0.45:
            st.add_templates(uid, [tmpl()], **a)
            if not joint:
                st.audit.append("templates_added", user_id=uid, terminal="stress")
            print(f"done {head()} templates_added {uid}", flush=True)
        elif r < 0.65:
            on = not users[uid].enabled
            st.set_enabled(uid, on, **a)
            kind = "user_enable" if on else "user_disable"
            if not joint:
                st.audit.append(kind, user_id=uid, terminal="stress")
            print(f"done {head()} {kind} {uid}", flush=True)
        elif r < 0.75 and len(users) > 3:
            st.delete_user(uid, **a)
            if not joint:
                st.audit.append("user_delete", user_id=uid, terminal="stress")
            print(f"done {head()} user_delete {uid}", flush=True)
        else:                                   # the gate's own writes
            st.audit.append("decision", decision="deny", reason="no_match",
                            terminal="stress")
            lim.record(False)
            print(f"done {head()} decision -", flush=True)


# --------------------------------------------------------------------------- the driver
def _check(cfg: Path, done: list[tuple[int, str, str]]) -> dict:
    """Reopen and compare; returns {"opened", "error", "lost", "diff"}."""
    try:
        st = open_store_of(cfg)
    except Exception as e:          # noqa: BLE001 - a store that does not open is counted
        return {"opened": False, "error": f"{type(e).__name__}: {e}"[:300], "lost": 0,
                "diff": []}
    try:
        st.audit.verify()
        recs = {r.seq: r for r in st.audit.records(since=min((d[0] for d in done),
                                                             default=1) - 1)}
        lost = [d for d in done if d[0] not in recs or recs[d[0]].kind != d[1]
                or (d[2] != "-" and recs[d[0]].payload.get("user_id") != d[2])]
        return {"opened": True, "error": None, "lost": len(lost), "lost_ops": lost[:3],
                "diff": store_vs_audit(st)}
    except Exception as e:          # noqa: BLE001
        return {"opened": False, "error": f"{type(e).__name__}: {e}"[:300], "lost": 0,
                "diff": []}
    finally:
        st.close()


def _spawn(kind: str, cfg: Path, rng: random.Random, seed: int):
    """(process, seconds to wait before the kill, what it is doing)."""
    base = [sys.executable, "-m"]
    if kind == "store":
        argv = base + ["tools.stress_store", "_store-worker", "--config", str(cfg), "--seed",
                       str(seed)]
        return argv, rng.uniform(0.0, 1.0), "store worker"
    if kind == "run":
        return base + ["device.cli", "run", "--config", str(cfg)], rng.uniform(1.0, 5.0), \
            "palmgate run"
    r = rng.random()
    uid = rng.choice(["alice", "bob", "carol"])
    person = {"alice": 0, "bob": 1, "carol": 2}[uid]
    if r < 0.5:
        args = ["enroll", uid, "--synthetic", str(person), "--replace"]
    elif r < 0.8:
        args = ["users", rng.choice(["disable", "enable"]), uid]
    else:
        args = ["users", "delete", uid]
    return base + ["device.cli", *args, "--config", str(cfg)], rng.uniform(0.2, 2.0), \
        " ".join(args[:2])


def run_kill(kills: int = 1000, seed: int = 0, root: Path | None = None,
             mix: tuple = (0.7, 0.15, 0.15)) -> dict:
    import tempfile
    root = Path(root or tempfile.mkdtemp(prefix="palmgate-stress-kill-"))
    t0 = time.time()
    site = make_site(root, presentations=400)
    cfg = site["config"]
    rng = random.Random(seed)
    stats = {"kills": 0, "exited_before_kill": 0, "store_opens_failed": 0, "lost": 0,
             "half_or_unrecorded": 0, "done_changes": 0, "killed_mid_change": 0,
             "by_worker": {}}
    failures = []
    seen: set = set()               # a discrepancy stays until a later change resolves it
    n = 0
    while stats["kills"] < kills:
        n += 1
        r = rng.random()
        kind = "store" if r < mix[0] else "cli" if r < mix[0] + mix[1] else "run"
        argv, wait, what = _spawn(kind, cfg, rng, seed * 100000 + n)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env(), cwd=str(root))
        if kind == "store":
            first = p.stdout.readline()
            if first.strip() != "ready":
                p.kill()
                p.wait()
                failures.append({"kill": n, "what": what, "error": "worker did not start: "
                                 + (first + p.stderr.read())[-400:]})
                stats["store_opens_failed"] += 1
                continue
        time.sleep(wait)
        if p.poll() is not None:
            stats["exited_before_kill"] += 1
            out, err = p.communicate()
            if p.returncode not in (0,) and kind != "cli":
                failures.append({"kill": n, "what": what, "rc": p.returncode,
                                 "stderr": err[-400:]})
            continue
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        stats["kills"] += 1
        stats["by_worker"][kind] = stats["by_worker"].get(kind, 0) + 1
        last = out.splitlines()[-1] if out.strip() else ""
        if kind == "store" and last == "begin":
            stats["killed_mid_change"] += 1
        done = []
        for line in out.splitlines():
            if line.startswith("done "):
                _, seq, k, uid = line.split()
                done.append((int(seq), k, uid))
        stats["done_changes"] += len(done)
        c = _check(cfg, done)
        if not c["opened"]:
            stats["store_opens_failed"] += 1
        stats["lost"] += c["lost"]
        new = [d for d in c["diff"] if d not in seen]
        seen.update(c["diff"])
        stats["half_or_unrecorded"] += len(new)
        if not c["opened"] or c["lost"] or new:
            failures.append({"kill": n, "what": what, **c})
            if not c["opened"]:
                break                   # nothing more to learn from a store that won't open
    return {"mode": "kill", "root": str(root), **stats,
            "failures": failures[:10], "seconds": round(time.time() - t0, 1)}

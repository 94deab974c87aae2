"""``python -m tools.stress_store admin --commands N``: a real ``palmgate run`` (replayed
presentations of alice, bob and an impostor; simulated relay) while N admin CLI commands run
in other processes -- enroll / re-enroll, users disable / enable / delete / list / show,
status, audit show / verify-chain, store verify, and a few invalid ones that must fail with a
clear error. Every command's exit status is checked against a model of the users; every
decision of the running gate on alice's or bob's presentation is checked against the state
the commands left (enabled -> open as that user; disabled or deleted -> not opened as that
user: a false match to another enrolled synthetic palm is counted apart, as recognition, not
store, behaviour), except where a command on that user ran while the decision was made; at the end the chain, the
store and its agreement with the audit log are checked."""
from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tools.stress_store.common import (env, make_site, open_store_of, palmgate,
                                       store_vs_audit)

CORRUPT = re.compile(r"malformed|corrupt|Tamper|does not match|not a readable|Rollback|"
                     r"AuditChainBroken|chain", re.I)
PERSON = {"alice": 0, "bob": 1}


class Model:
    """What the store should hold, per user: {"enabled": bool, "version": int}."""

    def __init__(self):
        self.users = {"alice": {"enabled": True, "version": 1},
                      "bob": {"enabled": True, "version": 1}}
        self.lock = threading.Lock()
        self.history = {u: [] for u in PERSON}      # (start, end, "open"|"deny") per core user

    def state(self, uid):
        u = self.users.get(uid)
        return "open" if u and u["enabled"] else "deny"


def _person(uid: str) -> int:
    return PERSON.get(uid, 10 + int(uid.split("-")[1]) if uid.startswith("u-") else 99)


def _choose(rng: random.Random, model: Model, own: list[str], has_store_cmd: bool):
    """(argv after the subcommand, expected rc, user changed or None, state after)."""
    r = rng.random()
    uid = own[0] if rng.random() < 0.5 else rng.choice(own)    # own[0]: alice or bob
    cur = model.users.get(uid)
    if r < 0.30:                                           # read-only commands
        ro = [["users", "list"], ["users", "show", uid], ["status"],
              ["audit", "show", "--last", "5"], ["audit", "verify-chain"]]
        if has_store_cmd:
            ro.append(["store", "verify"])
        args = rng.choice(ro)
        exp = 2 if args[:2] == ["users", "show"] and cur is None else None
        return args, exp, None
    if r < 0.34:                                           # invalid: must fail clearly
        if cur is None:
            return ["users", rng.choice(["disable", "enable", "delete"]), uid], 2, None
        return ["enroll", uid, "--synthetic", str(_person(uid))], 2, None
    if cur is None:
        return ["enroll", uid, "--synthetic", str(_person(uid))], 0, (uid, "enrol")
    if r < 0.80:
        act = "enable" if not cur["enabled"] else "disable"
        return ["users", act, uid], 0, (uid, act)
    if r < 0.90:
        return ["enroll", uid, "--synthetic", str(_person(uid)), "--replace"], 0, \
            (uid, "re_enrol")
    return ["users", "delete", uid], 0, (uid, "delete")


def _apply(model: Model, change, t0: float, t1: float) -> None:
    uid, act = change
    u = model.users.get(uid)
    if act == "enrol":
        model.users[uid] = {"enabled": True, "version": 1 if u is None else u["version"] + 1}
    elif act == "re_enrol":
        u["version"] += 1
    elif act in ("enable", "disable"):
        u["enabled"] = act == "enable"
    elif act == "delete":
        model.users.pop(uid)
    if uid in model.history:
        model.history[uid].append((t0, t1, model.state(uid)))


def _worker(w: int, n: int, rng: random.Random, model: Model, cfg: Path, own: list[str],
            status_rc: int, has_store_cmd: bool, log: list) -> None:
    for _ in range(n):
        with model.lock:
            args, exp, change = _choose(rng, model, own, has_store_cmd)
        if args == ["status"]:
            exp = status_rc
        rc, out, err, t0, t1 = palmgate([*args, "--config", str(cfg)])
        exp = 0 if exp is None else exp
        ok = rc == exp
        if args == ["audit", "verify-chain"] and rc == 0:
            ok = json.loads(out).get("ok") is True
        with model.lock:
            if change is not None and rc == 0:
                _apply(model, change, t0, t1)
            log.append({"worker": w, "args": args, "rc": rc, "expected": exp, "ok": ok,
                        "t0": t0, "t1": t1, "corrupt": bool(CORRUPT.search(err)),
                        "stderr": err.strip()[-300:] if not ok else ""})


def _decisions(lines, records, started: float):
    """Pair the gate's printed decisions with its decision records (same order): (burst,
    decision, user_id, ts of the previous decision record, ts of this one)."""
    recs = [r for r in records if r.kind == "decision"]
    out, prev = [], started
    for d, r in zip(lines, recs):
        out.append((d.get("burst", ""), d["decision"], d.get("user_id"), d.get("reason"),
                     prev, r.ts))
        prev = r.ts
    return out, len(lines) - len(recs)


def _expected(model: Model, uid: str, lo: float, hi: float):
    """The state ``uid``'s presentation must meet if decided in [lo, hi]; None when a
    command on that user ran meanwhile (either state is right)."""
    state = "open"
    for t0, t1, st in model.history[uid]:
        if t0 <= hi and t1 >= lo:
            return None
        if t1 < lo:
            state = st
    return state


def _effects(model: Model, pairs) -> dict:
    """Per change of alice or bob: was its state met by a decision on that user's
    presentation made wholly after it and before the next change (observed), and was it
    met right (seen)? Changes followed too soon by the next one are unobserved."""
    out = {"changes": 0, "observed": 0, "seen_right": 0, "seen_wrong": 0,
           "observed_deny": 0}
    for uid, hist in model.history.items():
        mine = [(lo, hi, dec, who) for b, dec, who, _, lo, hi in pairs
                if b.split("-", 1)[-1] == uid]
        for i, (t0, t1, st) in enumerate(hist):
            nxt = hist[i + 1][0] if i + 1 < len(hist) else float("inf")
            seen = [(dec, who) for lo, hi, dec, who in mine if lo > t1 and hi < nxt]
            out["changes"] += 1
            if not seen:
                continue
            out["observed"] += 1
            out["observed_deny"] += st == "deny"
            right = all((d == "open" and w == uid) == (st == "open") for d, w in seen)
            out["seen_right" if right else "seen_wrong"] += 1
    return out


def run_admin(commands: int = 1000, parallel: int = 2, seed: int = 0, root: Path | None = None,
              liveness: bool = True) -> dict:
    import tempfile
    root = Path(root or tempfile.mkdtemp(prefix="palmgate-stress-admin-"))
    t_setup = time.time()
    site = make_site(root, liveness=liveness)
    cfg = site["config"]
    has_store_cmd = palmgate(["store", "--help"])[0] == 0
    status_rc = palmgate(["status", "--config", str(cfg)])[0]
    model = Model()
    gate_err = open(root / "gate.stderr", "w")
    gate = subprocess.Popen([sys.executable, "-m", "device.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=gate_err, text=True, env=env(),
                            cwd=str(root))
    started = time.time()
    lines: list[dict] = []

    def read():
        for line in gate.stdout:
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not lines and gate.poll() is None and time.time() - started < 180:
        time.sleep(0.1)                                    # the gate is up and deciding
    log: list = []
    t_cmd = time.time()
    owners = [["alice", "bob"] + [f"u-{i:02d}" for i in range(4)]] if parallel == 1 else \
        [[["alice", "bob"][w % 2]] + [f"u-{i:02d}" for i in range(w, 8, parallel)]
         for w in range(parallel)]
    per = [commands // parallel + (1 if w < commands % parallel else 0)
           for w in range(parallel)]
    threads = [threading.Thread(target=_worker, args=(
        w, per[w], random.Random(seed * 1000 + w), model, cfg, owners[w], status_rc,
        has_store_cmd, log)) for w in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_end = time.time()
    time.sleep(2.0)                                        # decisions after the last command
    gate.send_signal(signal.SIGTERM)
    try:
        gate_rc = gate.wait(120)
    except subprocess.TimeoutExpired:
        gate.kill()
        gate_rc = "killed"
    reader.join(10)
    gate_err.close()
    errors = [x for x in (root / "gate.stderr").read_text().splitlines()
              if '"level": "ERROR"' in x or "ERROR" in x[:40]]

    # ---- after: the chain, the store, the store against its audit log, the model
    chain = palmgate(["audit", "verify-chain", "--config", str(cfg)])
    final = {"chain_ok": chain[0] == 0 and json.loads(chain[1] or "{}").get("ok") is True}
    try:
        st = open_store_of(cfg)
        try:
            final["store_opens"] = True
            final["store_vs_audit"] = store_vs_audit(st)
            have = {u.user_id: (u.enabled, u.version) for u in st.users()}
            want = {k: (v["enabled"], v["version"]) for k, v in model.users.items()}
            final["users_as_expected"] = have == want
            if have != want:
                final["users_diff"] = {"store": have, "model": want}
            records = st.audit.records()
        finally:
            st.close()
    except Exception as e:      # noqa: BLE001 - reported, not raised
        final.update(store_opens=False, error=f"{type(e).__name__}: {e}")
        records = []

    # ---- each command's effect seen by the running gate
    pairs, unpaired = _decisions(lines, records, started)
    checked = mismatched = ambiguous = imp_open = other = 0
    mismatches = []
    for burst, dec, uid, reason, lo, hi in pairs:
        who = burst.split("-", 1)[-1]
        if who == "imp":
            imp_open += dec == "open"
            continue
        if who not in PERSON:
            continue
        exp = _expected(model, who, lo, hi)
        if exp is None:
            ambiguous += 1
            continue
        checked += 1
        as_who = dec == "open" and uid == who
        if dec == "open" and uid != who:
            other += 1                  # a false match of the synthetic palms, not the store
        good = as_who if exp == "open" else not as_who
        if not good:
            mismatched += 1
            mismatches.append({"burst": burst, "expected": exp, "decision": dec,
                               "user_id": uid, "reason": reason})
    effects = _effects(model, pairs)
    by_kind: dict = {}
    for e in log:
        k = " ".join(a for a in e["args"][:2] if not a.startswith("u-") and a not in PERSON)
        by_kind[k] = by_kind.get(k, 0) + 1
    bad = [e for e in log if not e["ok"]]
    return {
        "mode": "admin", "root": str(root), "commands": len(log), "parallel": parallel,
        "by_kind": by_kind, "unexpected_exit": len(bad), "unexpected": bad[:10],
        "corrupt_messages": sum(e["corrupt"] for e in log),
        "gate_exit": gate_rc, "gate_errors": len(errors), "gate_error_lines": errors[:5],
        "decisions": len(lines), "decisions_without_record": unpaired,
        "visibility": {"checked": checked, "as_expected": checked - mismatched,
                       "mismatched": mismatched, "during_a_command": ambiguous,
                       "impostor_opened": imp_open, "opened_as_another_user": other,
                       "mismatches": mismatches[:10],
                       "effects": effects},
        "final": final,
        "corrupt_stores": int(not (final.get("chain_ok") and final.get("store_opens")
                                   and not final.get("store_vs_audit"))),
        "seconds": {"setup": round(t_cmd - t_setup, 1), "commands": round(t_end - t_cmd, 1)},
    }

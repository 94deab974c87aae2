"""The site's management service: one process (``palmgate site-service --site-dir DIR``).

It holds users (label, validity, which gates they may open, their version), the gates (public
key, health, how far each has applied its changes), revocations and every gate's audit chain,
in its own SQLite file (``service/service.db``), and it never sees a feature: an enrolment
arrives as one ciphertext per destination gate (sealed by the enrolling gate to that gate) and
one sealed to the site recovery key, and so do the user's sensor templates
(:mod:`device.site.sensor_keep`); the service stores and forwards them.

- Every change for a gate gets the next number of that gate (``gseq``) and the user's next
  version (one counter for the site), is written in the same transaction as the user, then
  published QoS 1 to the gate's topic with an HMAC under the service-gate pair key, from that
  log through a bounded window (:mod:`device.site.outflow`: a backlog waits on disk, not in
  paho's memory). Upload messages are acknowledged to the broker only after that commit.
- A gate's hello reports what it has applied: gaps are resent (so a broker that lost its
  queue loses nothing), applied changes are pruned from the log.
- Audit records arrive in chain order and are verified on arrival (the hash chain of
  :mod:`device.store.audit`: ``hash_n = SHA256(hash_{n-1} || canonical(record))``); a broken
  link is refused and shown; a gap makes the service tell the gate where its copy ends.
- A revocation is published to every gate, whatever the user's gate list; an enrolment whose
  gate time is older than the user's revocation is refused (revocation wins).
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from device.site import messages as M
from device.site import sensor_keep as K
from device.site import sensor_wire as SW
from device.site.access import send_holidays, site_holidays
from device.site.access import writes as _writes
from device.site.outflow import Outflow
from device.site.provision import SERVICE, load_site, service_key, tls_files
from device.site.recovery_ops import add_recovered, forget_gate, recovery_items  # noqa: F401
from device.site.sealing import pair_key
from device.site.tls import stop_link, use_tls
from device.store.audit import _GENESIS, _canonical    # the gate's own chain format

log = logging.getLogger("palmgate.site.service")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gates (gate_id TEXT PRIMARY KEY, pub TEXT NOT NULL,
    next_gseq INTEGER NOT NULL DEFAULT 0, contig INTEGER NOT NULL DEFAULT 0,
    last_seen REAL, health TEXT, audit_seq INTEGER NOT NULL DEFAULT 0, audit_hash BLOB,
    audit_error TEXT, added REAL);
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
    state TEXT NOT NULL, label TEXT, enrolled_from TEXT, enrol_id TEXT, enrol_ts REAL,
    revoked_ts REAL, updated REAL, gates TEXT, n_templates INTEGER, attrs TEXT);
CREATE TABLE IF NOT EXISTS sealed (user_id TEXT, gate_id TEXT, enrol_id TEXT, sender TEXT,
    blob BLOB, PRIMARY KEY (user_id, gate_id));
CREATE TABLE IF NOT EXISTS recovery (user_id TEXT PRIMARY KEY, enrol_id TEXT, blob BLOB);
CREATE TABLE IF NOT EXISTS changes (gate_id TEXT, gseq INTEGER, user_id TEXT,
    version INTEGER, kind TEXT, header TEXT, created REAL, PRIMARY KEY (gate_id, gseq));
CREATE TABLE IF NOT EXISTS uploads (enrol_id TEXT PRIMARY KEY, gate_id TEXT, user_id TEXT,
    received REAL, outcome TEXT, n INTEGER, gate_bytes INTEGER, recovery_bytes INTEGER);
CREATE TABLE IF NOT EXISTS delivered (user_id TEXT, gate_id TEXT, enrol_id TEXT,
    PRIMARY KEY (user_id, gate_id));
CREATE TABLE IF NOT EXISTS audit (gate_id TEXT, seq INTEGER, ts REAL, kind TEXT,
    payload TEXT, hash BLOB, received REAL, PRIMARY KEY (gate_id, seq));
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL,
    kind TEXT, text TEXT);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""
USER_ATTRS = ("enabled", "valid_from", "valid_until", "schedule")


class SiteService:
    def __init__(self, site_dir, db_path=None, resend_after_s: float = 10.0,
                 window: int = 500):
        self.site_dir = Path(site_dir).resolve()
        self.info = load_site(self.site_dir)
        self.site = self.info["site"]
        self.key = service_key(self.site_dir)
        self.db_path = str(db_path or self.site_dir / "service" / "service.db")
        self.resend_after_s = resend_after_s
        self.window = int(window)
        self.max_queue = 2 * window     # uploads waiting for the service thread, at most
        self.flow: Outflow | None = None
        self.q: queue.Queue = queue.Queue()
        self._tags: dict[str, bytes] = {}
        self._resent: dict[str, float] = {}
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.stats = {"uploads": 0, "published": 0, "resent": 0, "audit_records": 0,
                      "audit_refused": 0, "refused": 0}
        self.thread = None
        self.client = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "SiteService":
        import paho.mqtt.client as mqtt
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                       name="site-service")
        self.thread.start()
        ready.wait(30)
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.site}.service",
                        clean_session=False, manual_ack=True)
        use_tls(c, tls_files(self.site_dir, SERVICE))
        c.reconnect_delay_set(0.2, 2.0)
        c.max_inflight_messages_set(self.window)
        c.max_queued_messages_set(0)        # bounded by the Outflow window, not here
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        c.on_publish = lambda cl, ud, mid, rc, props: self.q.put(("puback", mid))
        self.client = c
        c.connect_async(self.info["broker"]["host"], int(self.info["broker"]["port"]),
                        keepalive=15)
        c.loop_start()
        return self

    def stop(self) -> None:
        stop_link(self)

    def _on_message(self, client, userdata, msg) -> None:
        """paho's network thread: queue an upload for the service thread, and while that
        queue is full stop reading the socket (TCP back-pressure: the backlog waits in the
        gates' outboxes and the broker, not here -- Mosquitto sent an MQTT 3.1.1 client more
        than its max_inflight_messages unacknowledged here, 5,600 uploads, 0.5 GB)."""
        self.q.put(("msg", msg))
        while self.q.qsize() > self.max_queue and not self._stop.is_set():
            time.sleep(0.005)

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc != 0:
            log.warning("broker refused the service: %s", rc)
            return
        client.subscribe(f"site/{self.site}/up/+/+", qos=1)
        self.connected.set()
        self.q.put(("connected", None))

    def call(self, fn, *a, timeout: float = 30.0):
        """Run ``fn(self, *a)`` on the service thread (it owns the database); wait."""
        f: Future = Future()
        self.q.put(("call", (fn, a, f)))
        return f.result(timeout)

    # ------------------------------------------------------------------ the thread
    def _run(self, ready) -> None:
        self.db = sqlite3.connect(self.db_path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA + K.SCHEMA)
        self._sync_gates()
        self.flow = Outflow(self.db, lambda t, p: self.client.publish(t, p, qos=1).mid,
                            self._change_msg, self.window)
        self.flow.start()
        ready.set()
        from device.ops.memory import trim, tune_malloc
        tune_malloc()                   # few arenas: the paho thread's buffers are reused
        trimmed = time.time()
        while not self._stop.is_set():
            items = []
            try:
                items.append(self.q.get(timeout=0.2))
                while len(items) < 200:
                    items.append(self.q.get_nowait())
            except queue.Empty:
                pass
            if items:
                self.stats["queue_peak"] = max(self.stats.get("queue_peak", 0),
                                               len(items) + self.q.qsize())
                self._handle(items)
            if self.client is not None:
                self.stats["published"] += self.flow.pump()
                self.stats["window_peak"] = self.flow.peak
            if time.time() - trimmed > 5.0:     # give freed upload buffers back to the OS
                trim()
                trimmed = time.time()
        self.db.close()

    def _sync_gates(self) -> None:
        """Gates of site.json that the database does not know yet."""
        self.info = load_site(self.site_dir)
        for g, v in self.info["gates"].items():
            new = self.db.execute("INSERT OR IGNORE INTO gates(gate_id, pub, added) "
                                  "VALUES(?,?,?)", (g, v["pub"], time.time())).rowcount
            if new:
                send_holidays(self, g)          # a gate that joins gets the site's list

    def _tag_key(self, gate: str) -> bytes:
        k = self._tags.get(gate)
        if k is None:
            pub = self.db.execute("SELECT pub FROM gates WHERE gate_id=?", (gate,)).fetchone()
            if pub is None:
                raise M.MessageError(f"unknown gate {gate!r}")
            k = self._tags[gate] = pair_key(self.key, bytes.fromhex(pub[0]), "tag")
        return k

    def _handle(self, items) -> None:
        acks, out = [], []
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for kind, x in items:
                if kind == "msg":
                    acks.append(x)
                    try:
                        self._alone(self._on_upload, x, out=out)
                    except (M.MessageError, ValueError, KeyError, TypeError, OverflowError,
                            RecursionError,             # "n": Infinity, nesting without end
                            sqlite3.IntegrityError) as e:
                        self.stats["refused"] += 1
                        self._event("refused", f"{x.topic}: {e}")
                elif kind == "puback":
                    self.flow.on_puback(x)
                elif kind == "connected":
                    self._publish_rosters(out)
                elif kind == "call":
                    fn, a, fut = x
                    try:
                        fut.set_result(self._alone(fn, self, *a, out=out)
                                       if getattr(fn, "_writes", False) else fn(self, *a))
                    except Exception as e:      # noqa: BLE001 - handed to the caller
                        fut.set_exception(e)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        for topic, payload, retain in out:
            self.client.publish(topic, payload, qos=1, retain=retain)
            self.stats["published"] += 1
        for m in acks:
            self.client.ack(m.mid, m.qos)

    def _alone(self, fn, *a, out):
        """``fn(*a, out)`` in its own savepoint of the batch's transaction: if it raises, its
        writes (version, change log, half a chain) and its outgoing messages are undone."""
        mark = len(out)
        self.db.execute("SAVEPOINT one")
        try:
            r = fn(*a, out=out)
        except BaseException:
            self.db.execute("ROLLBACK TO one")
            self.db.execute("RELEASE one")
            del out[mark:]
            raise
        self.db.execute("RELEASE one")
        return r

    def _event(self, kind: str, text: str) -> None:
        self.db.execute("INSERT INTO events(ts, kind, text) VALUES(?,?,?)",
                        (time.time(), kind, text[:500]))

    # ------------------------------------------------------------------ uploads
    def _on_upload(self, msg, out) -> None:
        site, direction, gate, what = M.parse_topic(msg.topic)
        if direction != "up" or site != self.site:
            raise M.MessageError(f"unexpected topic {msg.topic}")
        if self.db.execute("SELECT 1 FROM gates WHERE gate_id=?", (gate,)).fetchone() is None:
            raise M.MessageError(f"message from unknown gate {gate!r}")
        h, body = M.unpack(msg.payload)
        if what == "enrol":
            self._on_enrol(gate, h, body, out)
        elif what == "audit":
            self._on_audit(gate, h, out)
        elif what == "hello":
            self._on_hello(gate, h, out)
        else:
            raise M.MessageError(f"unknown upload {what!r}")

    def _next_version(self) -> int:
        r = self.db.execute("SELECT value FROM meta WHERE name='version'").fetchone()
        v = (int(r[0]) if r else 0) + 1
        self.db.execute("INSERT INTO meta(name, value) VALUES('version', ?) ON CONFLICT(name) "
                        "DO UPDATE SET value=excluded.value", (str(v),))
        return v

    def _change(self, gate: str, kind: str, user_id: str, version: int, extra: dict,
                out) -> int:
        g = self.db.execute("UPDATE gates SET next_gseq = next_gseq + 1 WHERE gate_id=? "
                            "RETURNING next_gseq", (gate,)).fetchone()[0]
        h = dict(extra, gseq=g, kind=kind, user_id=user_id, version=version)
        self.db.execute("INSERT INTO changes(gate_id, gseq, user_id, version, kind, header, "
                        "created) VALUES(?,?,?,?,?,?,?)",
                        (gate, g, user_id, version, kind, json.dumps(h), time.time()))
        return g                        # published from the log by self.flow

    def _change_msg(self, gate: str, h: dict):
        body = b""
        if h["kind"] == "enrol":
            r = self.db.execute("SELECT blob FROM sealed WHERE user_id=? AND gate_id=? AND "
                                "enrol_id=?", (h["user_id"], gate, h["enrol_id"])).fetchone()
            if r is None:               # re-enrolled or revoked since: a later change wins
                h = {k: h[k] for k in ("gseq", "user_id", "version")}
                h["kind"] = "superseded"
            body = bytes(r[0]) if r else b""
            if r is not None:           # the user's sensor templates ride after the palm's
                h, body = SW.change_body(h, body, *K.for_change(self.db, gate, h["user_id"],
                                                                h["enrol_id"]))
        return (M.gate_topic(self.site, gate, "change"),
                M.pack_tagged(self._tag_key(gate), h, body), False)

    def _user_gates(self, row_gates) -> list[str]:
        every = [r[0] for r in self.db.execute("SELECT gate_id FROM gates ORDER BY gate_id")]
        if row_gates is None:
            return every
        allowed = set(json.loads(row_gates))
        return [g for g in every if g in allowed]

    def _on_enrol(self, gate, h, body, out) -> None:
        if h.get("from") != gate:
            raise M.MessageError(f"enrolment on gate {gate}'s topic claims to be from "
                                 f"{h.get('from')!r}")
        eid, uid = M.check_id(h["enrol_id"], "enrol id"), M.check_id(h["user_id"], "user id")
        if self.db.execute("SELECT 1 FROM uploads WHERE enrol_id=?", (eid,)).fetchone():
            return                                                   # a re-delivery
        self.stats["uploads"] += 1
        body, sensor = SW.split_upload(h, body)     # None: an older gate's upload
        n = int.from_bytes(body[:4], "big")
        rec, sealed = body[4:4 + n], M.unpack_sealed_map(body[4 + n:])
        row = self.db.execute("SELECT state, revoked_ts, gates, attrs FROM users "
                              "WHERE user_id=?", (uid,)).fetchone()
        now = time.time()
        if row and row[0] == "revoked" and float(h.get("ts", 0)) < (row[1] or 0):
            self.db.execute("INSERT INTO uploads(enrol_id, gate_id, user_id, received, "
                            "outcome) VALUES(?,?,?,?,?)",
                            (eid, gate, uid, now, "older than the revocation"))
            self._event("enrol-refused", f"{uid} from {gate}: enrolled before the revocation")
            return
        v = self._next_version()
        gates_json = row[2] if row else None
        attrs = json.loads(row[3]) if row and row[3] else {}
        self.db.execute(
            "INSERT INTO users(user_id, version, state, label, enrolled_from, enrol_id, "
            "enrol_ts, updated, gates, n_templates, attrs) VALUES(?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(user_id) DO UPDATE SET version=excluded.version, state='active', "
            "label=excluded.label, enrolled_from=excluded.enrolled_from, "
            "enrol_id=excluded.enrol_id, enrol_ts=excluded.enrol_ts, updated=excluded.updated, "
            "n_templates=excluded.n_templates",
            (uid, v, "active", str(h.get("label", ""))[:100], gate, eid, float(h.get("ts", now)),
             now, gates_json, int(h.get("n", 0)), json.dumps(attrs)))
        self.db.execute("DELETE FROM sealed WHERE user_id=?", (uid,))
        for g, blob in sealed.items():
            self.db.execute("INSERT INTO sealed VALUES(?,?,?,?,?)", (uid, g, eid, gate, blob))
        self.db.execute("INSERT OR REPLACE INTO recovery VALUES(?,?,?)", (uid, eid, rec))
        sk = K.keep_upload(self.db, uid, eid, gate, sensor)
        self.db.execute("INSERT INTO uploads VALUES(?,?,?,?,?,?,?,?)",
                        (eid, gate, uid, now, "ok", int(h.get("n", 0)),
                         sum(map(len, sealed.values())) // max(1, len(sealed)), len(rec)))
        from_pub = self.db.execute("SELECT pub FROM gates WHERE gate_id=?",
                                   (gate,)).fetchone()[0]
        extra = {"from": gate, "from_pub": from_pub, "enrol_id": eid,
                 "user": dict(attrs, label=str(h.get("label", ""))[:100])}
        for g in self._user_gates(gates_json):
            if g in sealed:
                self._change(g, "enrol", uid, v, extra, out)
        self._event("enrol", f"{uid} enrolled at {gate} (version {v}; sensor templates: "
                             f"{f'keys for {sk} gates' if sensor else 'none'})")

    def _on_audit(self, gate, h, out) -> None:
        seq, prev, err = self.db.execute("SELECT audit_seq, audit_hash, audit_error FROM gates "
                                         "WHERE gate_id=?", (gate,)).fetchone()
        prev = bytes(prev) if prev else _GENESIS
        gap = False
        now = time.time()
        for rec in h.get("records", []):
            s, ts, kind, payload, p_hex, h_hex = rec
            s = int(s)
            if s <= seq:
                continue                                          # already have it
            if s != seq + 1:
                gap = True
                break
            want = hashlib.sha256(prev + _canonical(s, ts, kind, payload)).digest()
            if bytes.fromhex(p_hex) != prev or bytes.fromhex(h_hex) != want:
                msg = (f"audit record {s} of {gate} does not chain to record {s - 1}"
                       if bytes.fromhex(p_hex) != prev else
                       f"audit record {s} of {gate} was altered (hash mismatch)")
                if err != msg:
                    self._event("audit-chain", msg)
                self.db.execute("UPDATE gates SET audit_error=? WHERE gate_id=?", (msg, gate))
                self.stats["audit_refused"] += 1
                return
            self.db.execute("INSERT INTO audit VALUES(?,?,?,?,?,?,?)",
                            (gate, s, float(ts), kind, payload, want, now))
            seq, prev = s, want
            self.stats["audit_records"] += 1
        self.db.execute("UPDATE gates SET audit_seq=?, audit_hash=? WHERE gate_id=?",
                        (seq, prev, gate))
        if gap:
            out.append((M.gate_topic(self.site, gate, "ctl"),
                        M.pack_tagged(self._tag_key(gate), {"audit_seq": seq}), False))

    def _on_hello(self, gate, h, out) -> None:
        now = time.time()
        contig = int(h.get("contig", 0))
        self.db.execute("UPDATE gates SET last_seen=?, health=?, contig=MAX(contig, ?) "
                        "WHERE gate_id=?", (now, json.dumps(h), contig, gate))
        # gaps the gate reports, and -- once it has been idle a while (the broker has
        # nothing more for it) -- changes it never saw; at most once per resend_after_s
        last = self._resent.get(gate, 0.0)
        if now - last < self.resend_after_s:
            return self._prune(gate, contig, h, out)
        missing = [int(g) for g in h.get("missing", [])][:1000]
        mx = int(h.get("max_gseq", 0))
        never = (float(h.get("idle_s", 0.0)) >= min(5.0, self.resend_after_s)
                 and not self.flow.busy(gate)      # nothing of ours in flight to it
                 and self.db.execute("SELECT 1 FROM changes WHERE gate_id=? AND gseq>? AND "
                                     "created<? LIMIT 1",
                                     (gate, mx, now - self.resend_after_s)).fetchone())
        if missing or never:
            self._resent[gate] = now
        self.flow.resend(gate, missing)              # through the window, gaps first
        self.stats["resent"] += len(missing) + (self.flow.rewind(gate, mx) if never else 0)
        self._prune(gate, contig, h, out)

    def _prune(self, gate, contig, h, out) -> None:
        """Forget what the gate has applied: the changes, and the ciphertexts sealed to it
        (a gate allowed later, or a replaced one, gets its users through ``recover``)."""
        self.db.execute("INSERT OR REPLACE INTO delivered SELECT user_id, gate_id, "
                        "json_extract(header, '$.enrol_id') FROM changes WHERE gate_id=? AND "
                        "gseq<=? AND kind='enrol' ORDER BY gseq", (gate, contig))
        # an enrolment the gate revoked after (the user's gates changed) is not held there
        self.db.execute("DELETE FROM delivered WHERE gate_id=? AND user_id IN (SELECT "
                        "r.user_id FROM changes r WHERE r.gate_id=? AND r.gseq<=? AND "
                        "r.kind='revoke' AND NOT EXISTS (SELECT 1 FROM changes e WHERE "
                        "e.gate_id=r.gate_id AND e.user_id=r.user_id AND e.kind='enrol' AND "
                        "e.gseq>r.gseq AND e.gseq<=?))", (gate, gate, contig, contig))
        self.db.execute("DELETE FROM sealed WHERE gate_id=? AND (user_id, enrol_id) IN "
                        "(SELECT user_id, json_extract(header, '$.enrol_id') FROM changes "
                        "WHERE gate_id=? AND gseq<=? AND kind='enrol') AND NOT EXISTS "
                        "(SELECT 1 FROM changes p WHERE p.gate_id=sealed.gate_id AND "
                        "p.gseq>? AND p.user_id=sealed.user_id AND p.kind='enrol')",
                        (gate, gate, contig, contig))       # kept while a re-send waits
        K.prune(self.db, gate, contig)
        self.db.execute("DELETE FROM changes WHERE gate_id=? AND gseq<=?", (gate, contig))
        if float(h.get("idle_s", 0.0)) >= 5.0 and int(h.get("audit_acked", 0)) > self.db.execute(
                "SELECT audit_seq FROM gates WHERE gate_id=?", (gate,)).fetchone()[0]:
            seq = self.db.execute("SELECT audit_seq FROM gates WHERE gate_id=?",
                                  (gate,)).fetchone()[0]
            out.append((M.gate_topic(self.site, gate, "ctl"),
                        M.pack_tagged(self._tag_key(gate), {"audit_seq": seq}), False))

    def _publish_rosters(self, out) -> None:
        gates = {g: pub for g, pub in self.db.execute("SELECT gate_id, pub FROM gates")}
        roster = {"site": self.site, "gates": gates, "recovery_pub": self.info["recovery_pub"],
                  "ts": time.time()}
        for g in gates:
            out.append((M.gate_topic(self.site, g, "roster"),
                        M.pack_tagged(self._tag_key(g), roster), True))


# ---------------------------------------------------------------------- admin operations
# functions run on the service thread through ``SiteService.call``; ``_writes`` ones get the
# outgoing message list and run inside the thread's transaction
@_writes
def revoke(svc: SiteService, user_id: str, out=None) -> dict:
    """Revoke ``user_id`` on every gate; returns the version and the time it was issued."""
    row = svc.db.execute("SELECT state FROM users WHERE user_id=?", (user_id,)).fetchone()
    if row is None:
        raise KeyError(f"no user {user_id!r}")
    v, now = svc._next_version(), time.time()
    svc.db.execute("UPDATE users SET version=?, state='revoked', revoked_ts=?, updated=? "
                   "WHERE user_id=?", (v, now, now, user_id))
    svc.db.execute("DELETE FROM sealed WHERE user_id=?", (user_id,))
    svc.db.execute("DELETE FROM recovery WHERE user_id=?", (user_id,))
    K.forget_user(svc.db, user_id)
    gates = [r[0] for r in svc.db.execute("SELECT gate_id FROM gates ORDER BY gate_id")]
    for g in gates:
        svc._change(g, "revoke", user_id, v, {}, out)
    svc._event("revoke", f"{user_id} revoked on {len(gates)} gates (version {v})")
    return {"user_id": user_id, "version": v, "issued": now, "gates": gates}


@_writes
def set_gates(svc: SiteService, user_id: str, gates, out=None) -> dict:
    """Which gates ``user_id`` may open (None: all). Gates taken away get a revocation; gates
    given get the enrolment if the enrolling gate sealed one to them (else: recovery)."""
    row = svc.db.execute("SELECT state, gates, enrol_id, enrolled_from, attrs, label FROM "
                         "users WHERE user_id=?", (user_id,)).fetchone()
    if row is None:
        raise KeyError(f"no user {user_id!r}")
    known = {r[0] for r in svc.db.execute("SELECT gate_id FROM gates")}
    if gates is not None:
        bad = sorted(set(gates) - known)
        if bad:
            raise ValueError(f"unknown gate(s) {bad}")
    before = set(svc._user_gates(row[1]))
    gj = None if gates is None else json.dumps(sorted(set(gates)))
    after = set(svc._user_gates(gj))
    v = svc._next_version()
    svc.db.execute("UPDATE users SET gates=?, version=?, updated=? WHERE user_id=?",
                   (gj, v, time.time(), user_id))
    recover = []
    if row[0] == "active":
        pub = svc.db.execute("SELECT pub FROM gates WHERE gate_id=?", (row[3],)).fetchone()
        extra = {"from": row[3], "from_pub": pub[0] if pub else "", "enrol_id": row[2],
                 "user": dict(json.loads(row[4] or "{}"), label=row[5] or "")}
        for g in sorted(after):
            have = svc.db.execute("SELECT sender FROM sealed WHERE user_id=? AND gate_id=?",
                                  (user_id, g)).fetchone()
            if have:                    # (a recovery copy's sender is for this gate only)
                svc._change(g, "enrol", user_id, v, extra if have[0] != "recovery" else dict(
                    extra, **{"from": "recovery", "from_pub": svc.info["recovery_pub"]}), out)
            elif not svc.db.execute(
                    "SELECT 1 FROM delivered WHERE user_id=? AND gate_id=? AND enrol_id=?",
                    (user_id, g, row[2])).fetchone():
                recover.append(g)       # its ciphertext was pruned: ``palmgate site recover``
    for g in sorted(before - after):
        svc._change(g, "revoke", user_id, v, {}, out)
        # the gate revokes the user: not delivered there any more (recovery item on regain)
        svc.db.execute("DELETE FROM delivered WHERE user_id=? AND gate_id=?", (user_id, g))
    svc._event("gates", f"{user_id} may open {sorted(after)} (version {v})"
                        + (f"; to recover on {recover}" if recover else ""))
    return {"user_id": user_id, "version": v, "gates": sorted(after), "recover": recover}


def snapshot(svc: SiteService, events: int = 50) -> dict:
    """Users, gates and recent events, for the admin page and ``/api/state``."""
    users = [dict(zip(("user_id", "version", "state", "label", "enrolled_from", "gates",
                       "updated", "n_templates", "attrs"), r))
             for r in svc.db.execute("SELECT user_id, version, state, label, enrolled_from, "
                                     "gates, updated, n_templates, attrs FROM users ORDER BY "
                                     "user_id")]
    for u in users:
        u["gates"] = None if u["gates"] is None else json.loads(u["gates"])
        u["attrs"] = json.loads(u["attrs"] or "{}")
    gates = []
    for g, nxt, contig, seen, health, aseq, aerr in svc.db.execute(
            "SELECT gate_id, next_gseq, contig, last_seen, health, audit_seq, audit_error "
            "FROM gates ORDER BY gate_id"):
        h = json.loads(health) if health else {}
        gates.append({"gate_id": g, "changes": nxt, "applied": contig,
                      "last_seen": seen, "online": bool(seen and time.time() - seen < 30),
                      "store": h.get("store"), "audit_records": aseq,
                      "audit_chain": aerr or "verified"})
    ev = [{"ts": ts, "kind": k, "text": t} for ts, k, t in svc.db.execute(
        "SELECT ts, kind, text FROM events ORDER BY id DESC LIMIT ?", (events,))]
    au = [{"gate": g, "seq": s, "ts": ts, "kind": k, "payload": json.loads(p)}
          for g, s, ts, k, p in svc.db.execute(
              "SELECT gate_id, seq, ts, kind, payload FROM audit ORDER BY received DESC, seq "
              "DESC LIMIT ?", (events,))]
    return {"site": svc.site, "users": users, "gates": gates, "events": ev, "audit": au,
            "holidays": site_holidays(svc)["holidays"], "stats": dict(svc.stats)}


@_writes
def sync_gates(svc: SiteService, out=None) -> dict:
    """Learn gates added to site.json and send every gate the new roster."""
    svc._sync_gates()
    svc._publish_rosters(out)
    return {"gates": sorted(svc.info["gates"])}

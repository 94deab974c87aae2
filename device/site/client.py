"""The gate's site sync client: one thread beside the gate loop (``palmgate run`` with ``[site]``)
or standalone (``palmgate site-sync``).

- Receives the changes the service addresses to this gate (QoS 1, persistent session: the
  broker queues them while the gate is away), checks the service's tag, opens the sealed
  templates (only this gate's key opens them) and applies a batch in ONE store transaction,
  then acknowledges: a change is acknowledged only once it is committed.
- Idempotent by change number (``gseq``, per gate) and ordered per user by the service's
  version: a change whose version is not newer than what the gate holds for that user is
  recorded and skipped, so a revocation always wins over an older enrolment however late that
  arrives, and a re-delivery does nothing.
- Local enrolments: protected again for every gate of the roster under fresh keys, sealed to
  each, plus the plaintext sealed to the site recovery key, the sensor templates sealed once
  and their key to each (:mod:`device.site.sensor_wire`; a change writes them with the palm
  templates, one without them leaves the user none); the upload waits in an outbox (its own
  SQLite file) until the broker has it.
- Audit: the store's chained records go up in order from the last one the broker
  acknowledged; the service tells the gate where its copy of the chain ends.
- Offline first: nothing here is in the decision path; the gate decides from its own store.

State (``[site] state``, a SQLite file beside the store): applied changes, the per-user
versions, the roster, the audit cursor and the outbox.
"""
from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from concurrent.futures import Future

import numpy as np

from device.site import messages as M
from device.site import sensor_wire as SW
from device.site.access import ATTRS as _SITE_ATTRS
from device.site.access import HOLIDAYS_ID
from device.site.sealing import SealError, pair_key, seal, seal_to, unseal
from device.site.templates import decode_templates, encode_for_gates, encode_plain
from device.site.tls import stop_link, use_tls

log = logging.getLogger("palmgate.site")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (gseq INTEGER PRIMARY KEY, user_id TEXT, version INTEGER,
    kind TEXT, ts REAL, note TEXT);
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, version INTEGER, state TEXT);
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT,
    payload BLOB, created REAL);
"""


@contextlib.contextmanager
def store_batch(store):
    """Several enrolments and deletes of the template store in one transaction (one fsync, one
    generation): the store's own calls join it, each with its audit record."""
    with store.transaction():
        yield store


def _delete_in_tx(st, uid: str) -> int:
    """A site revocation inside the batch's transaction: the user's rows and their audit
    record (``TemplateStore.delete_user`` would also checkpoint the WAL, which the batch does
    once after its commit)."""
    if st._read_user_row(uid) is None:
        return 0
    n = st._remove_user(uid)
    st._record("user_delete", {"reason": "site revocation"}, user_id=uid, templates=n)
    return 1


class GateSync:
    """``GateSync(...).start()``; ``enrol_local`` / ``publish_enrolment`` from any thread."""

    sensor_kind = SW.KINDS[0]
    """The kind of this gate's sensor templates (its sensor's, :func:`from_config`)."""

    def __init__(self, site: str, gate_id: str, host: str, port: int, tls_files,
                 key: bytes, service_pub: bytes, open_store, state_path, protect_config,
                 importance=None, hello_s: float = 10.0, batch: int = 500,
                 on_applied=None):
        self.site, self.gate = M.check_id(site, "site"), M.check_id(gate_id, "gate id")
        self.host, self.port, self.tls_files = host, int(port), tuple(tls_files)
        self.key = bytes(key)
        self.service_pub = bytes(service_pub)
        self.k_tag = pair_key(self.key, self.service_pub, "tag")
        self._open_store = open_store
        self.state_path = str(state_path)
        self.config, self.importance = protect_config, importance
        self.hello_s, self.batch = hello_s, batch
        self.on_applied = on_applied
        self.q: queue.Queue = queue.Queue()
        self.roster: dict = {}
        self._pair: dict[bytes, bytes] = {}
        self.connected = threading.Event()
        self.offline = False
        self._stop = threading.Event()
        self._inflight: dict[int, tuple] = {}      # mid -> ("audit", last seq) | ("outbox", id)
        self._audit_sent = 0
        self._hello_due = 0.0
        self._last_change = 0.0
        self.stats = {"applied": 0, "skipped": 0, "rejected": 0, "duplicates": 0}
        self.thread: threading.Thread | None = None
        self.client = None
        self.error: str | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "GateSync":
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.site}.{self.gate}",
                        clean_session=False, manual_ack=True)
        use_tls(c, self.tls_files)          # the certificate's CN is the broker user name
        c.reconnect_delay_set(0.2, 2.0)
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = lambda cl, ud, msg: self.q.put(("msg", msg))
        c.on_publish = lambda cl, ud, mid, rc, props: self.q.put(("puback", mid))
        self.client = c
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True,
                                       name=f"site-sync-{self.gate}")
        self.thread.start()
        ready.wait(30)
        if self.error:
            raise RuntimeError(self.error)
        c.connect_async(self.host, self.port, keepalive=15)
        c.loop_start()
        return self

    def stop(self) -> None:
        stop_link(self)

    def go_offline(self) -> None:
        """Cut the link to the broker (tests, the fleet demo): the gate keeps deciding."""
        self.offline = True
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def go_online(self) -> None:
        self.offline = False
        self.client.reconnect()
        self.client.loop_start()

    def submit(self, fn, *a) -> Future:
        """Run ``fn(self, *a)`` on the sync thread (the one that owns the store connection)."""
        f: Future = Future()
        self.q.put(("call", (fn, a, f)))
        return f

    # ------------------------------------------------------------------ MQTT callbacks
    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc != 0:
            log.warning("site broker refused the connection: %s", rc)
            return
        client.subscribe(M.gate_topic(self.site, self.gate, "#"), qos=1)
        self.connected.set()
        self.q.put(("connected", None))

    # ------------------------------------------------------------------ the thread
    def _run(self, ready: threading.Event) -> None:
        try:
            self.store = self._open_store()
            self.db = sqlite3.connect(self.state_path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            r = self._kv("roster")
            self.roster = json.loads(r) if r else {}
            self._audit_sent = int(self._kv("audit_acked") or 0)
        except Exception as e:      # noqa: BLE001 - reported by start()
            self.error = f"site sync cannot start: {type(e).__name__}: {e}"
            ready.set()
            return
        ready.set()
        last_audit = 0.0
        try:
            while not self._stop.is_set():
                items = []
                try:
                    items.append(self.q.get(timeout=0.2))
                    while len(items) < self.batch:
                        items.append(self.q.get_nowait())
                except queue.Empty:
                    pass
                self._handle(items)
                now = time.time()
                if self.connected.is_set() and now - last_audit > 0.5:
                    self._send_audit()
                    self._send_outbox()
                    last_audit = now
                if self.connected.is_set() and self._hello_due and now >= self._hello_due:
                    self._hello()
        finally:
            with contextlib.suppress(Exception):
                self.store.close()
            self.db.close()

    def _kv(self, name, value=None):
        if value is None:
            r = self.db.execute("SELECT value FROM kv WHERE name=?", (name,)).fetchone()
            return None if r is None else r[0]
        self.db.execute("INSERT INTO kv(name, value) VALUES(?,?) ON CONFLICT(name) DO UPDATE "
                        "SET value=excluded.value", (name, str(value)))

    def _handle(self, items) -> None:
        changes = []
        for kind, x in items:
            if kind == "msg":
                what = x.topic.rsplit("/", 1)[-1]
                if what == "change":
                    changes.append(x)
                    self._last_change = time.time()
                    continue
                try:
                    h, body = M.unpack_tagged(self.k_tag, x.payload)
                    if what == "roster":
                        self.roster = h
                        self._kv("roster", json.dumps(h))
                    elif what == "ctl" and "audit_seq" in h:
                        acked = int(self._kv("audit_acked") or 0)
                        if int(h["audit_seq"]) < acked:     # the service lacks some: resend
                            self._kv("audit_acked", int(h["audit_seq"]))
                            self._audit_sent = int(h["audit_seq"])
                except M.MessageError as e:
                    log.warning("site message on %s refused: %s", x.topic, e)
                self._ack(x)
            elif kind == "puback":
                self._puback(x)
            elif kind == "connected":
                self._audit_sent = int(self._kv("audit_acked") or 0)
                self._inflight.clear()          # paho resends its own; ours go again
                self._send_outbox()
                self._hello_due = time.time() + 2.0
            elif kind == "call":
                fn, a, fut = x
                try:
                    fut.set_result(fn(self, *a))
                except Exception as e:      # noqa: BLE001 - handed to the caller
                    fut.set_exception(e)
        if changes:
            self._apply(changes)

    def _ack(self, msg) -> None:
        if msg.qos and not self.offline:
            with contextlib.suppress(Exception):
                self.client.ack(msg.mid, msg.qos)

    def _publish(self, topic: str, payload: bytes, track) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if track is not None:
            self._inflight[info.mid] = track

    def _puback(self, mid: int) -> None:
        t = self._inflight.pop(mid, None)
        if t is None:
            return
        if t[0] == "outbox":
            self.db.execute("DELETE FROM outbox WHERE id=?", (t[1],))
        elif t[0] == "audit":
            if t[1] > int(self._kv("audit_acked") or 0):
                self._kv("audit_acked", t[1])

    # ------------------------------------------------------------------ changes
    def _open_change(self, msg):
        h, body = M.unpack_tagged(self.k_tag, msg.payload)
        for k in ("gseq", "kind", "user_id", "version"):
            if k not in h:
                raise M.MessageError(f"change without {k}")
        if h["kind"] == "enrol":
            try:
                return h, self._open_templates(h, body)
            except (SealError, ValueError, KeyError) as e:
                # the service numbered it (its tag is good) but the ciphertext does not open
                # here (an upload sealed by someone who is not the gate it names): recorded
                # as rejected so that its number is no gap
                log.warning("site change %s: templates refused: %s", h["gseq"], e)
                return dict(h, kind="unopened", note=str(e)[:200]), None
        return h, None

    def _pair_key(self, pub: bytes) -> bytes:
        """The sealing key this gate shares with the holder of ``pub`` (derived once)."""
        key = self._pair.get(pub)
        if key is None:
            key = self._pair[pub] = pair_key(self.key, pub, "seal")
        return key

    def _open_templates(self, h, body):
        """(protected templates, (kind, sensor template bytes) or None): an older change
        carries no sensor templates (the user is then ``not_enrolled`` here)."""
        key = self._pair_key(bytes.fromhex(h["from_pub"]))
        body, sens = SW.split_change(h, body)
        ad = SW.bind(M.template_ad(self.site, h["from"], self.gate, h["user_id"],
                                   h["enrol_id"]), None if sens is None else
                     SW.record_digest(sens[1]))
        tmpls = decode_templates(unseal(key, body, ad))
        if sens is not None:
            sens = SW.open_record(key, *sens, self.site, h["from"], self.gate, h["user_id"],
                                  h["enrol_id"])
        return tmpls, sens

    def _apply(self, msgs) -> None:
        todo, now = [], time.time()
        seen = set()
        for msg in msgs:
            try:
                h, tmpls = self._open_change(msg)
            except (M.MessageError, SealError, ValueError, KeyError) as e:
                log.warning("site change refused: %s", e)
                self.stats["rejected"] += 1
                self._ack(msg)
                continue
            g = int(h["gseq"])
            if g in seen or self.db.execute("SELECT 1 FROM applied WHERE gseq=?",
                                            (g,)).fetchone():
                self.stats["duplicates"] += 1
                self._ack(msg)
                continue
            seen.add(g)
            todo.append((msg, h, tmpls))
        if not todo:
            return
        try:
            results = self._apply_batch(todo, now)
        except Exception as e:      # noqa: BLE001 - one bad change must not block the rest
            log.warning("site batch failed (%s); applying one by one", e)
            results = []
            for t in todo:
                try:
                    results += self._apply_batch([t], now)
                except Exception as e1:     # noqa: BLE001
                    log.error("site change %s refused by the store: %s", t[1]["gseq"], e1)
                    results.append((t[1], "rejected", str(e1)[:200]))
        self.db.execute("BEGIN IMMEDIATE")
        for h, outcome, note in results:
            self.db.execute("INSERT OR IGNORE INTO applied(gseq, user_id, version, kind, ts, "
                            "note) VALUES(?,?,?,?,?,?)", (int(h["gseq"]), h["user_id"],
                                                          int(h["version"]), h["kind"],
                                                          now, f"{outcome} {note}".strip()))
            if outcome == "applied":
                self.db.execute("INSERT INTO users(user_id, version, state) VALUES(?,?,?) ON "
                                "CONFLICT(user_id) DO UPDATE SET version=excluded.version, "
                                "state=excluded.state",
                                (h["user_id"], int(h["version"]), h["kind"]))
            self.stats[outcome if outcome in self.stats else "applied"] += 1
        self.db.execute("COMMIT")
        for msg, _, _ in todo:
            self._ack(msg)
        if self.on_applied is not None:
            self.on_applied(results)

    def _apply_batch(self, todo, now):
        from device.store import sensor_templates
        from device.store.holidays import replace_holidays
        from device.store.lookalike_rows import unchanged_list, write_list
        from device.store.store import StoreError
        out, versions, revoked = [], {}, 0
        with store_batch(self.store) as st:
            for _, h, tmpls in todo:
                uid, ver = h["user_id"], int(h["version"])
                if h["kind"] == "superseded":    # its ciphertext was replaced or revoked
                    out.append((h, "skipped", "superseded"))
                    continue
                if h["kind"] == "unopened":
                    self.stats["rejected"] += 1
                    out.append((h, "rejected", h.get("note", "")))
                    continue
                if uid not in versions:
                    r = self.db.execute("SELECT version FROM users WHERE user_id=?",
                                        (uid,)).fetchone()
                    versions[uid] = r[0] if r else 0
                if ver <= versions[uid]:
                    out.append((h, "skipped", f"older than version {versions[uid]}"))
                    continue
                u = h.get("user") or {}
                site_attrs = {k: u[k] for k in _SITE_ATTRS if k in u}
                if h["kind"] == "enrol":     # the sensor templates replaced with the palm's
                    tmpls, sens = tmpls
                    keep = sens and unchanged_list(st, uid, sens)   # the same bones: kept
                    v = st.enrol(uid, tmpls, replace=True, label=str(u.get("label", "")),
                                 enabled=bool(u.get("enabled", True)),
                                 valid_from=u.get("valid_from"),
                                 valid_until=u.get("valid_until"), schedule=u.get("schedule"),
                                 audit=None if sens is None else
                                 {"sensor_templates": len(sens[1]),
                                  **({"lookalike_list": "kept"} if keep else {})})
                    if sens is not None:
                        sensor_templates.insert(st, uid, v, sens[1], sens[0])
                        if keep:
                            write_list(st, uid, v, sens[0], keep)
                    if site_attrs:      # the site's access times, as a site update sets them
                        st.update_user(uid, audit={"operator": "site"}, **site_attrs)
                elif h["kind"] == "revoke":
                    revoked += _delete_in_tx(st, uid)
                elif h["kind"] == "update":
                    if st.get_user(uid) is None:
                        raise StoreError(f"update of {uid!r}, who is not enrolled here")
                    st.update_user(uid, audit={"operator": "site"},
                                   **dict(site_attrs, **({"label": u["label"]}
                                                         if "label" in u else {})))
                elif h["kind"] == "holidays" and uid == HOLIDAYS_ID:
                    replace_holidays(st, h.get("holidays") or {}, audit={"operator": "site"})
                else:
                    out.append((h, "rejected", f"unknown change kind {h['kind']!r}"))
                    continue
                versions[uid] = ver
                out.append((h, "applied", ""))
        if revoked:      # as delete_user does: no page of a deleted template stays in the WAL
            self.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return out

    # ------------------------------------------------------------------ enrolment upload
    def make_upload(self, user_id: str, plain: np.ndarray, label: str = "",
                    enrol_id: str | None = None, sensor=None) -> tuple[str, bytes]:
        """The enrolment upload of ``plain`` (n, G, d): per roster gate a protected copy
        under fresh keys sealed to that gate, and the plaintext sealed to the recovery key;
        ``sensor`` (the enrolment's sensor templates, bytes each) sealed alike
        (:mod:`device.site.sensor_wire`). Pure computation (any thread); returns (enrol_id,
        frame)."""
        M.check_id(user_id, "user id")
        gates = self.roster.get("gates") or {}
        if not gates:
            raise RuntimeError("the site roster has not arrived yet (is the service up?)")
        enrol_id = enrol_id or uuid.uuid4().hex
        ids = sorted(gates)
        blobs = encode_for_gates(plain, len(ids), self.config, self.importance)
        keys = {gid: self._pair_key(bytes.fromhex(gates[gid])) for gid in ids}
        sec = dg = None                 # the palm part names the sensor record (sensor_wire)
        if sensor:
            sec = SW.upload_section(self.site, self.gate, user_id, enrol_id, sensor, keys,
                                    bytes.fromhex(self.roster["recovery_pub"]),
                                    self.sensor_kind)
            dg = SW.section_digest(sec)
        sealed = {gid: seal(keys[gid], blob, SW.bind(M.template_ad(
            self.site, self.gate, gid, user_id, enrol_id), dg)) for gid, blob in zip(ids, blobs)}
        rec = seal_to(bytes.fromhex(self.roster["recovery_pub"]), encode_plain(plain),
                      SW.bind(M.recovery_ad(self.site, user_id, enrol_id), dg))
        head = {"enrol_id": enrol_id, "user_id": user_id, "from": self.gate,
                "ts": time.time(), "n": int(np.asarray(plain).shape[0]), "label": label}
        body = len(rec).to_bytes(4, "big") + rec + M.pack_sealed_map(sealed)
        if sec is not None:
            head.update({SW.HEADER_UPLOAD: len(sec), "sensor_n": len(sensor)})
            body += sec
        return enrol_id, M.pack(head, body)

    def queue_upload(self, frame: bytes) -> Future:
        def put(s, frame):
            topic = M.up_topic(s.site, s.gate, "enrol")
            cur = s.db.execute("INSERT INTO outbox(topic, payload, created) VALUES(?,?,?)",
                               (topic, frame, time.time()))
            if s.connected.is_set():
                s._publish(topic, frame, ("outbox", cur.lastrowid))
            return cur.lastrowid
        return self.submit(put, frame)

    def enrol_local(self, user_id: str, plain: np.ndarray, label: str = "",
                    sensor=None) -> Future:
        """Enrol ``plain`` (n, G, d) and its ``sensor`` templates (bytes each, or None) in
        this gate's own store (fresh keys, seed 002; one transaction) and queue the site
        upload; the future gives (enrol_id, version)."""
        from device.protect.core import enrol
        from device.store import sensor_templates
        enrol_id, frame = self.make_upload(user_id, plain, label, sensor=sensor)
        tmpls = [enrol(x, self.config, self.importance) for x in np.asarray(plain)]

        def go(s):
            with s.store.transaction():
                v = s.store.enrol(user_id, tmpls, replace=True, label=label,
                                  audit={"templates": len(tmpls), "terminal": s.gate,
                                         **({"sensor_templates": len(sensor)} if sensor
                                            else {})})
                if sensor:
                    sensor_templates.insert(s.store, user_id, v, list(sensor),
                                            self.sensor_kind)
            s.queue_upload(frame)
            if s.on_applied is not None:        # the gallery follows local enrolments too
                s.on_applied([({"user_id": user_id, "kind": "enrol"}, "applied", "local")])
            return enrol_id, v
        return self.submit(go)

    # ------------------------------------------------------------------ audit, health
    def _send_outbox(self) -> None:
        """Uploads not yet with the broker (written by this thread or by ``outbox_hook``)."""
        busy = {t[1] for t in self._inflight.values() if t[0] == "outbox"}
        for oid, topic, payload in self.db.execute(
                "SELECT id, topic, payload FROM outbox ORDER BY id LIMIT 200").fetchall():
            if oid not in busy:
                self._publish(topic, bytes(payload), ("outbox", oid))

    def _send_audit(self) -> None:
        rows = self.store.conn.execute(
            "SELECT seq, ts, kind, payload, prev, hash FROM audit WHERE seq > ? ORDER BY seq "
            "LIMIT 500", (self._audit_sent,)).fetchall()
        if not rows:
            return
        recs = [[s, t, k, p, bytes(pv).hex(), bytes(h).hex()] for s, t, k, p, pv, h in rows]
        self._publish(M.up_topic(self.site, self.gate, "audit"),
                      M.pack({"from": self.gate, "records": recs}), ("audit", rows[-1][0]))
        self._audit_sent = rows[-1][0]

    def report(self) -> dict:
        """What the hello carries: changes applied (contiguous and gaps), store, audit."""
        mx = self.db.execute("SELECT COALESCE(MAX(gseq), 0), COUNT(*) FROM applied").fetchone()
        contig = int(self._kv("contig") or 0)
        while self.db.execute("SELECT 1 FROM applied WHERE gseq=?", (contig + 1,)).fetchone():
            contig += 1
        self._kv("contig", contig)
        missing = []
        if mx[0] > contig:
            have = {r[0] for r in self.db.execute("SELECT gseq FROM applied WHERE gseq > ?",
                                                  (contig,))}
            missing = [g for g in range(contig + 1, mx[0] + 1) if g not in have][:1000]
        head = self.store.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
        return {"gate": self.gate, "ts": time.time(), "contig": contig, "max_gseq": mx[0],
                "missing": missing, "applied": mx[1], "store": self.store.count(),
                "audit_head": head, "audit_acked": int(self._kv("audit_acked") or 0),
                "outbox": self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0],
                "idle_s": round(time.time() - self._last_change, 1) if self.q.empty() else 0.0,
                "stats": dict(self.stats)}

    def _hello(self) -> None:
        self._publish(M.up_topic(self.site, self.gate, "hello"), M.pack(self.report()), None)
        self._hello_due = time.time() + self.hello_s


def start_for_gate(cfg, gate) -> GateSync:
    """The sync thread of ``palmgate run``: its own connection to the gate's store (the gate
    reloads its gallery when the store changes)."""
    from device.gate.gate import open_store
    p = gate.pipeline
    return from_config(cfg, lambda: open_store(cfg), p.protect_config,
                       p.extractor.importance).start()


def outbox_hook(cfg, protect_config, importance=None):
    """``enrol_user(..., site=hook)`` for a process that is not the sync client (``palmgate
    enroll``): the upload (with the enrolment's sensor templates, when ``sensor``) goes into
    the sync state's outbox; the running gate's sync client sends it. Needs the roster the
    sync client has received."""
    def hook(user_id, plain, label="", sensor=None):
        s = from_config(cfg, None, protect_config, importance)
        db = sqlite3.connect(str(cfg.site.state), isolation_level=None, timeout=30)
        try:
            db.executescript(_SCHEMA)
            r = db.execute("SELECT value FROM kv WHERE name='roster'").fetchone()
            if r is None:
                raise RuntimeError("this gate has no site roster yet: start palmgate run "
                                   "(or site-sync) once with the broker reachable")
            s.roster = json.loads(r[0])
            _, frame = s.make_upload(user_id, plain, label, sensor=sensor)
            db.execute("INSERT INTO outbox(topic, payload, created) VALUES(?,?,?)",
                       (M.up_topic(s.site, s.gate, "enrol"), frame, time.time()))
        finally:
            db.close()
    return hook


def from_config(cfg, open_store, protect_config, importance=None, **kw) -> GateSync:
    """A GateSync from a gate config's ``[site]`` section."""
    from pathlib import Path
    from device.store.sensor_templates import SENSOR_KIND
    s = cfg.site
    g = GateSync(s.site, s.gate_id, s.broker_host, s.broker_port,
                 (s.ca_file, s.cert_file, s.cert_key_file), Path(s.key_file).read_bytes(),
                 bytes.fromhex(s.service_pub), open_store, s.state, protect_config,
                 importance, **kw)
    g.sensor_kind = SENSOR_KIND[cfg.liveness.sensor]    # what its enrolments' templates are
    return g

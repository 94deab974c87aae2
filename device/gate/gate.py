"""The gate: the loop that runs all day.

    idle -> burst (K views + sensor frame) -> attempt limiter -> Pipeline.decide
         -> audit record (before the relay: no door opens without its record)
         -> relay pulse (only on "open") -> attempt accounting -> cool-down

Fail-secure everywhere: the relay is switched off when the gate opens it and when it closes;
a pulse is ended by the driver's own timer; a relay line that fails turns the decision into
``deny/relay_error`` and is reopened at the next presentation; a camera that stops
delivering, a corrupt frame, a model that is missing or fails its hash, a full disk (the
audit record cannot be written) -- each denies with its reason and the loop keeps going, so
the gate recovers by itself when the fault goes away.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from device.frames import EndOfFrames, FrameError
from device.gate.pipeline import Decision, Pipeline

log = logging.getLogger("palmgate.gate")


class Gate:
    def __init__(self, cfg, store=None, pipeline=None, relay=None, open_relay: bool = True):
        from device.templates.attempts import AttemptLimiter
        self.cfg = cfg
        self._own_store = store is None
        self.store = store if store is not None else open_store(cfg)
        self.pipeline = pipeline or Pipeline(cfg)
        self._data_version = None
        self.reload()
        self.limiter = AttemptLimiter(liveness=cfg.liveness.enabled,
                                      max_failures=cfg.attempts.max_failures or None,
                                      base_delay=cfg.attempts.base_delay_s, store=self.store)
        self.relay, self.relay_sim, self.relay_error = relay, None, None
        if relay is None and open_relay:
            self._open_relay()
        self.last: list[dict] = []
        self.stop_event = threading.Event()

    # ------------------------------------------------------------------ resources
    def _open_relay(self):
        from device.gate.relays import open_gate_relay
        try:
            self.relay, sim = open_gate_relay(self.cfg)
            self.relay_sim = self.relay_sim or sim
            self.relay_error = None
        except Exception as e:     # noqa: BLE001 - RelayError, SerialException, OSError
            self.relay, self.relay_error = None, f"{type(e).__name__}: {e}"
            log.error("relay unavailable: %s", self.relay_error)

    def reload(self):
        """(Re)build the gallery from the store (after enrolments by another process)."""
        from device.gate.gallery import load_gallery
        from device.gate.memory import trim
        p = self.pipeline
        p.gallery = None                        # the old one goes before the new one comes
        trim()
        gal, versions = load_gallery(self.store, p.protect_config, p.extractor.importance,
                                     when=time.time(), dim=p.extractor.dim,
                                     shifts=p.extractor.shifts,
                                     shortlist=self.cfg.match.shortlist)
        p.gallery, p.versions = gal, versions
        self._data_version = self._store_version()

    def _store_version(self):
        try:
            return self.store.conn.execute("PRAGMA data_version").fetchone()[0], \
                self.store.count()["templates"]
        except Exception:          # noqa: BLE001
            return None

    def close(self):
        if self.relay is not None:
            try:
                self.relay.close()              # every channel off
            except Exception as e:  # noqa: BLE001
                log.error("relay close failed: %s", e)
        if self.relay_sim is not None:
            self.relay_sim.close()
        self.pipeline.close()
        if self._own_store:
            self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ one presentation
    def _audit(self, d: Decision, kind: str = "decision", **extra):
        from device.templates.audit import bucket_score
        p = {"decision": d.decision, "reason": d.reason[:200],
             "terminal": self.cfg.gate.terminal, "views": d.views_used,
             "mode": self.cfg.gate.mode}
        if d.user_id:
            p["user_id"] = d.user_id
        if d.template_version is not None:
            p["template_version"] = d.template_version
        if d.score is not None and d.threshold is not None:
            p["score_bucket"] = bucket_score(d.score, d.threshold)
        if d.live is not None:
            p["liveness"] = "live" if d.live else "not_live"
            th = self.pipeline.sensor.branch.threshold if self.pipeline.sensor and \
                self.pipeline.sensor.branch else 0.5
            p["liveness_bucket"] = bucket_score(d.p_live, th, width=0.05)
        p.update(extra)
        self.store.audit.append(kind, **p)

    def present(self, burst, claimed: str | None = None) -> Decision:
        """Decide one burst and act on it. Returns the decision (``stages_ms`` per stage,
        ``total_ms`` = presentation to relay command)."""
        t0, c0 = time.perf_counter(), time.process_time()
        if self.cfg.gate.mode == "verify" and claimed is None:
            claimed = burst.meta.get("claimed")
        chk = self.limiter.check()
        if not chk.allowed:
            d = Decision(reason="locked_out", prompt=f"please wait {chk.wait_s:.0f} s",
                         burst=str(burst.meta.get("burst", "")))
        else:
            v = self._store_version()
            if v is not None and v != self._data_version:
                self.reload()
            d = self.pipeline.decide(burst, claimed)
        if d.idle:                          # an empty scene: no record, no attempt
            d.total_ms = (time.perf_counter() - t0) * 1e3
            return d
        # the audit record comes first: a full disk or a broken chain denies
        ta = time.perf_counter()
        try:
            self._audit(d)
        except Exception as e:      # noqa: BLE001 - sqlite3 errors (disk full), AuditError
            log.error("audit record failed: %s", e)
            if d.opened:
                d.decision, d.reason = "deny", "audit_unavailable"
        d.stages_ms["audit"] = (time.perf_counter() - ta) * 1e3
        if d.opened:
            tr = time.perf_counter()
            if self.relay is None:
                self._open_relay()
            try:
                if self.relay is None:
                    raise RuntimeError(self.relay_error or "no relay")
                self.relay.pulse(self.cfg.relay.channel, self.cfg.relay.pulse_ms)
                d.relay = "pulsed"
            except Exception as e:  # noqa: BLE001 - RelayError and friends
                log.error("relay pulse failed: %s", e)
                d.decision, d.reason, d.relay = "deny", "relay_error", "error"
                self._drop_relay()
                try:
                    self._audit(d, kind="relay_error")
                except Exception:   # noqa: BLE001
                    pass
            d.stages_ms["relay"] = (time.perf_counter() - tr) * 1e3
        d.total_ms = (time.perf_counter() - t0) * 1e3
        d.total_cpu_ms = (time.process_time() - c0) * 1e3
        if d.reason != "locked_out" and not d.reason.startswith("quality"):
            try:
                self.limiter.record(d.opened, score=d.score, threshold=d.threshold)
            except Exception as e:  # noqa: BLE001
                log.error("attempt accounting failed: %s", e)
        self.last = (self.last + [d.summary()])[-20:]
        log.info("decision %s", json.dumps(d.summary()))
        return d

    def _drop_relay(self):
        r, self.relay = self.relay, None
        if r is not None:
            try:
                r.close()                         # tries to switch off; the line may be gone
            except Exception:       # noqa: BLE001
                pass

    def fault(self, reason: str, detail: str = "") -> Decision:
        """A presentation that could not even be captured: deny and audit it."""
        d = Decision(reason=reason, prompt="please present your palm again")
        log.error("deny %s: %s", reason, detail)
        try:
            self._audit(d)
        except Exception as e:      # noqa: BLE001
            log.error("audit record failed: %s", e)
        self.last = (self.last + [d.summary()])[-20:]
        return d

    # ------------------------------------------------------------------ the loop
    def run(self, source, limit: int | None = None, on_decision=None,
            max_faults: int | None = None) -> int:
        """Presentations from ``source`` until it ends, ``limit`` is reached, ``stop_event``
        is set or ``max_faults`` consecutive capture faults; returns presentations done."""
        n = faults = 0
        source.start()
        try:
            while not self.stop_event.is_set() and (limit is None or n < limit):
                try:
                    burst = source.capture_burst()
                    faults = 0
                except EndOfFrames:
                    break
                except FrameError as e:
                    msg = str(e)
                    reason = "corrupt_frame" if "corrupt" in msg or "decode" in msg \
                        else "camera_timeout" if "within" in msg else "camera_error"
                    d = self.fault(reason, msg)
                    faults += 1
                    n += 1
                    if on_decision:
                        on_decision(None, d)
                    if max_faults is not None and faults >= max_faults:
                        break
                    self.stop_event.wait(min(5.0, 0.2 * faults))
                    continue
                d = self.present(burst)
                n += 1
                if on_decision:
                    on_decision(burst, d)
                if self.cfg.gate.cooldown_s:
                    self.stop_event.wait(self.cfg.gate.cooldown_s)
        finally:
            source.stop()
        return n


def open_store(cfg):
    from pathlib import Path

    from device.templates.store import TemplateStore
    p = Path(cfg.paths.store)
    p.parent.mkdir(parents=True, exist_ok=True)
    return TemplateStore(p, key_path=cfg.paths.device_key, create=cfg.paths.create_key)


def make_source(cfg, views: int | None = None):
    """The BurstSource ``[source]`` names."""
    from device.gate.burst import CameraBurstSource, ReplaySource, open_frame_source
    s = cfg.source
    k = views or cfg.gate.views
    if s.kind == "replay":
        return ReplaySource(s.replay_dir, views=k)
    if s.kind == "cameras":
        cams = [open_frame_source(c) for c in s.cameras[:k]]
        sensor = open_frame_source(s.sensor_camera, grayscale=True) if s.sensor_camera \
            else None
        return CameraBurstSource(cams, sensor, s.capture_timeout_s)
    from device.gate.synthetic import SyntheticPeople, SyntheticSource, demo_schedule
    people = SyntheticPeople(seed=s.synthetic_seed, views=k, sensor=cfg.liveness.sensor)
    return SyntheticSource(people, demo_schedule(4, 4, 4, s.synthetic_seed))

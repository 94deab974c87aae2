"""The gate: the loop that runs all day.

    idle -> burst (K views + sensor frame) -> attempt limiter -> Pipeline.decide
         -> audit record (before the relay: no door opens without its record)
         -> relay pulse (only on "open") -> attempt accounting -> cool-down

Fail-secure everywhere: the relay is switched off when the gate opens it and when it closes;
a pulse is ended by the driver's own timer (or by the board itself, ``relay.board_pulse``); a
relay line that fails turns the decision into ``deny/relay_error``, and its supervisor
(device/relays/supervisor.py) reopens it on a timer and switches every channel off as soon as it
answers -- the fault and the recovery each get a log line and an audit record
(``relay_fault``, ``relay_recovered``); a camera that stops
delivering, a corrupt frame, a model that is missing or fails its hash, a full disk (the
audit record cannot be written) -- each denies with its reason and the loop keeps going, so
the gate recovers by itself when the fault goes away.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque

from device.sources.base import EndOfFrames, FrameError
from device.gate.decision import Decision, Deny
from device.gate.pipeline import Pipeline
from device.relays.supervisor import RelaySupervisor
from device.store.attempts import counts_as_attempt

log = logging.getLogger("palmgate.gate")


class Gate:
    def __init__(self, cfg, store=None, pipeline=None, relay=None, open_relay: bool = True,
                 pin_factory=None):
        """``pin_factory``: a gpiozero pin factory for ``[gpio]`` (tests pass a MockFactory);
        None: the one ``gpio.pin_factory`` names."""
        self.cfg = cfg
        self.relay, self.relay_sim, self.relay_error = relay, None, None
        self.io = None                              # device.relays.gpio.GateIO with [gpio] on
        self.door = None                            # device.gate.door.DoorLink: cards, panel
        self.store = self.pipeline = None
        self._own_store = store is None
        self.last: list[dict] = []
        self.door_events: deque = deque(maxlen=20)  # door and egress events, newest last
        self.on_event = None                        # on_event(kind, data) after processing
        self.stop_event = threading.Event()
        self._events: queue.SimpleQueue = queue.SimpleQueue()   # from GPIO callback threads
        self._wake = threading.Event()
        # fail secure before anything slow: the relay driver switches every channel off when
        # it opens, so a pulse left on by a killed gate ends here, not after the models load
        if relay is None and open_relay:
            self._open_relay()
        try:
            self._open_io(pin_factory)              # a bad [gpio] stops the gate here
            from device.store.attempts import AttemptLimiter
            self.store = store if store is not None else open_store(cfg)
            if store is not None:           # opened elsewhere: checked again here
                self.store.verify()
                self.store.audit.verify()
            self.pipeline = pipeline or Pipeline(cfg)
            self.pipeline.attach_store(self.store)        # split mode: pending deletes
            self._open_door(pin_factory)
            self._split_flush()                           # retried at start
            self._data_version = None
            self.reload()
            self.limiter = AttemptLimiter(
                liveness=cfg.liveness.enabled, max_failures=cfg.attempts.max_failures or None,
                base_delay=cfg.attempts.base_delay_s, max_delay=cfg.attempts.max_delay_s,
                terminal_max_failures=cfg.attempts.terminal_max_failures or None,
                terminal_decay_s=cfg.attempts.terminal_decay_s, store=self.store,
                terminal=cfg.gate.terminal)
        except BaseException:
            self.close()
            raise

    def _open_io(self, pin_factory=None):
        g = getattr(self.cfg, "gpio", None)
        if g is None or not g.enabled:
            return
        from device.relays.gpio import GateIO
        opts = {k: v for k, v in g.as_dict().items() if k != "enabled" and v is not None}
        self.io = GateIO(opts, pin_factory=pin_factory, on_door_event=self._door_event,
                         on_exit=self._exit_pressed)
        log.info("GPIO devices open", extra={"event": "gpio_ready", "gpio": self.io.describe()})

    def _open_door(self, pin_factory=None):
        from device.gate.door import DoorLink
        self.door = DoorLink(self.cfg, self.store, relay_action=self._panel_relay,
                             on_panel_event=self._post, pin_factory=pin_factory)

    def _panel_relay(self, action: str, ms) -> None:
        """The access panel's output command (libosdp's thread): the only way the gate's
        relay moves in ``[decision] mode = "panel"``."""
        if self.relay is None:
            raise RuntimeError(self.relay_error or "no relay")
        ch = self.cfg.relay.channel
        if action == "pulse":
            self.relay.pulse(ch, ms)
            if self.io is not None:
                self.io.granted("panel")
        elif action == "on":
            self.relay.on(ch)
        else:
            self.relay.off(ch)

    # ------------------------------------------------------------------ resources
    def _open_relay(self):
        from device.relays.factory import open_gate_relay
        try:
            self.relay, sim = open_gate_relay(self.cfg, on_event=self._relay_event)
            self.relay_sim = self.relay_sim or sim
            self.relay_error = getattr(self.relay, "fault", None)
        except Exception as e:     # noqa: BLE001 - RelayError, SerialException, OSError
            self.relay, self.relay_error = None, f"{type(e).__name__}: {e}"
            log.error("relay unavailable: %s", self.relay_error)

    def _relay_event(self, kind: str, info: dict) -> None:
        """The relay supervisor lost or regained the line (any thread; logged there): keep
        the state for the health report and audit it from the loop thread."""
        self.relay_error = info.get("error") if kind == "relay_fault" else None
        self._post(kind, info)

    def reload(self):
        """(Re)build the gallery from the whole store (at start; after a change the patch
        cannot take, :meth:`refresh`)."""
        from device.ops.memory import trim
        v = self._store_version()       # before the read: a commit meanwhile is seen next time
        self.pipeline.gallery = None            # the old one goes before the new one comes
        self.pipeline.inactive = None
        trim()
        self.pipeline.load_gallery(self.store)
        self._data_version = v

    def refresh(self) -> str:
        """Another process committed: patch the gallery with the users whose rows changed,
        else (no baseline, too many changed, no free slots, any failure) :meth:`reload`
        (``device.gate.gallery_refresh``). Returns what was done."""
        from device.gate.gallery_refresh import refresh
        v = self._store_version()
        done = refresh(self.pipeline, self.store, self.reload)
        if done == "patched":
            self._data_version = v
        else:
            log.info("gallery %s", done)
        return done

    def _split_flush(self) -> None:
        """Split mode: send deletes still pending on a node (``palmgate users delete`` while
        a node was down, or while this gate held the nodes' links) when there are any.
        A failure is only logged here: the next presentation retries, and denies meanwhile."""
        sp = getattr(self.pipeline, "split", None)
        if sp is None or sp.store is None:
            return
        if time.monotonic() < getattr(self, "_split_retry_at", 0.0):
            return                          # failed a moment ago: the presentation retries
        try:
            if sp.pending_deletes():
                sp.flush()
        except Deny as d:
            # not at every idle frame while a node is down (each try waits up to
            # connect_timeout_s; door and exit-button events wait meanwhile): a presentation
            # tries anyway
            self._split_retry_at = time.monotonic() + 10.0
            log.warning("split delete still pending: %s", d.detail)
        except Exception as e:      # noqa: BLE001 - never stops the gate
            log.error("split delete retry failed: %s", e)

    def _store_version(self):
        from device.gate.gallery_refresh import store_version
        return store_version(self.store)

    def close(self):
        if self.door is not None:
            self.door.close()                    # the panel stops polling a silent gate
        if self.io is not None:
            try:
                self.io.close()                  # outputs off, inputs released
            except Exception as e:  # noqa: BLE001
                log.error("GPIO close failed: %s", e)
        try:
            self.process_events()                # audit what the inputs reported last
        except Exception as e:      # noqa: BLE001
            log.error("GPIO events at close: %s", e)
        if self.relay is not None:
            try:
                self.relay.close()              # every channel off
            except Exception as e:  # noqa: BLE001
                log.error("relay close failed: %s", e)
        if self.relay_sim is not None:
            self.relay_sim.close()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._own_store and self.store is not None:
            self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ one presentation
    def _audit(self, d: Decision, kind: str = "decision", **extra):
        from device.store.audit import bucket_score
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
            th = self.pipeline.liveness_threshold
            th = 0.5 if th is None else th
            p["liveness_bucket"] = bucket_score(d.p_live, th, width=0.05)
        if d.p_phantom is not None:             # X-ray: the phantom check ran (liveness passed)
            from device.models.sensor_branch import phantom_denied
            p["phantom"] = "refused" if phantom_denied(d.p_phantom, d.reason) else "passed"
        if d.second_look:
            p["second_look"] = d.second_look     # opened, denied, failed (second_look.py)
        if d.sensor_identity:
            p["sensor_identity"] = d.sensor_identity     # checked, denied, not_enrolled, ...
        if d.sensor_identity_by:
            p["sensor_identity_by"] = d.sensor_identity_by   # patch, lines or size: which
        if d.sensor_identity_bucket:                     # the agreement judged and the
            p["sensor_identity_bucket"] = d.sensor_identity_bucket    # raw one (NIR: before
            p["sensor_identity_raw_bucket"] = d.sensor_identity_raw_bucket   # the cohort's)
        if d.hand_size:
            p["hand_size"] = d.hand_size                 # checked, denied, not_enrolled
        if d.lookalikes:
            p["lookalikes"] = d.lookalikes               # checked, denied, not_listed
        if d.binding_size_term:
            p["binding_size_term"] = d.binding_size_term   # released (binding_release)
        if d.binding_identified:
            p["binding_identified"] = d.binding_identified   # released (binding_release)
        p.update(extra)
        self.store.audit.append(kind, **p)

    def present(self, burst, claimed: str | None = None) -> Decision:
        """Decide one burst and act on it. Returns the decision (``stages_ms`` per stage,
        ``total_ms`` = presentation to relay command)."""
        t0, c0 = time.perf_counter(), time.process_time()
        if self.cfg.gate.mode == "verify" and claimed is None:
            claimed = burst.meta.get("claimed")
        refused = None
        claimed_by = None if claimed is None else "recorded"
        if claimed is None and self.door is not None:
            claimed, refused = self.door.claim()        # a card or PIN: 1:1 of its holder
            claimed_by = self.door.claim_kind
        self._split_flush()                 # split deletes asked for meanwhile, first
        chk = self.limiter.check(user=claimed)
        if not chk.allowed:
            d = Decision(reason="locked_out" if chk.scope == "terminal" else "locked_out:user",
                         prompt=f"please wait {chk.wait_s:.0f} s", user_id=claimed,
                         burst=str(burst.meta.get("burst", "")))
        elif refused is not None:                   # unknown card, disabled owner
            d = Decision(reason=refused, user_id=claimed,
                         burst=str(burst.meta.get("burst", "")))
        else:
            v = self._store_version()
            if v is not None and v != self._data_version:
                self.refresh()
            d = self.pipeline.decide(burst, claimed)
            if d.opened and claimed is None and \
                    not self.limiter.check(user=d.user_id).allowed:
                # identify: a locked user's match is denied like a no-match (no oracle)
                d.decision, d.reason, d.prompt = "deny", "locked_out:user", ""
            if self.door is not None:
                self.door.check(d, claimed_by=claimed_by if claimed is not None else None)
                if not d.idle:
                    self.door.used()                    # the card went with this palm
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
        if d.opened and self.door is not None and self.door.panel_mode:
            self._report(d)                             # the panel drives the door
        elif d.opened:
            tr = time.perf_counter()
            if self.relay is None:
                self._open_relay()
            try:
                if self.relay is None:
                    raise RuntimeError(self.relay_error or "no relay")
                self.relay.pulse(self.cfg.relay.channel, self.cfg.relay.pulse_ms)
                d.relay = "pulsed"
                if self.io is not None:
                    self.io.granted("access")         # the door may open now
            except Exception as e:  # noqa: BLE001 - RelayError and friends
                log.error("relay pulse failed: %s", e)
                d.decision, d.reason, d.relay = "deny", "relay_error", "error"
                if not isinstance(self.relay, RelaySupervisor):
                    self._drop_relay()            # reopened at the next presentation
                try:
                    self._audit(d, kind="relay_error")
                except Exception:   # noqa: BLE001
                    pass
            d.stages_ms["relay"] = (time.perf_counter() - tr) * 1e3
            if d.opened and self.door is not None:
                self._report(d)                         # the panel's log, too
        d.total_ms = (time.perf_counter() - t0) * 1e3
        d.total_cpu_ms = (time.process_time() - c0) * 1e3
        if counts_as_attempt(d.reason, d.opened):
            # the user it was by or aimed at: the claimed id, the one who opened or was
            # identified (a sensor_identity deny), or (identify, no match) the closest
            # enrolled user; a success resets only that user's counter
            who = claimed if claimed is not None else (d.user_id or d.candidate)
            try:
                self.limiter.record(d.opened, score=d.score, threshold=d.threshold, user=who)
            except Exception as e:  # noqa: BLE001
                log.error("attempt accounting failed: %s", e)
        self.last = (self.last + [d.summary()])[-20:]
        from device.ops.jsonlog import decision_fields
        log.info("decision %s %s", d.decision, d.reason, extra=decision_fields(d.summary()))
        return d

    def _report(self, d: Decision) -> None:
        """The user's card to the access panel; in panel mode a failure denies."""
        tr = time.perf_counter()
        problem = self.door.report(d)
        if self.door.panel_mode:
            d.relay = "panel" if problem is None else "error"
            if problem is not None:
                d.decision, d.reason = "deny", problem
                try:
                    self._audit(d, kind="panel_error")
                except Exception:   # noqa: BLE001
                    pass
        d.stages_ms["panel"] = (time.perf_counter() - tr) * 1e3

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

    # ------------------------------------------------------------------ GPIO events
    def _post(self, kind: str, data: dict) -> None:
        self._events.put((kind, time.time(), data))
        self._wake.set()

    def _exit_pressed(self) -> None:
        """The request-to-exit button (a GPIO callback thread): pulse the relay now; the audit
        record follows from the loop thread (the store's connection belongs to it). Egress is
        never held back by the attempt limiter or a missing audit record."""
        relay, err = self.relay, None
        try:
            if relay is None:
                raise RuntimeError(self.relay_error or "no relay")
            relay.pulse(self.cfg.relay.channel, self.cfg.relay.pulse_ms)
            result = "pulsed"
        except Exception as e:      # noqa: BLE001 - RelayError and friends
            result, err = "error", f"{type(e).__name__}: {e}"
        log.log(logging.INFO if err is None else logging.ERROR, "exit button: relay %s%s",
                result, f" ({err})" if err else "",
                extra={"event": "egress", "relay": result, "error": err})
        self._post("egress", {"relay": result, "error": err})

    def _door_event(self, ev: dict) -> None:
        """DoorMonitor events (GPIO callback or timer thread); logged there already."""
        self._post("door", dict(ev))

    def _audit_event(self, kind: str, at: float, **payload) -> bool:
        if self.store is None:
            return False
        try:
            self.store.audit.append(kind, when=at, terminal=self.cfg.gate.terminal, **payload)
            return True
        except Exception as e:      # noqa: BLE001 - a full disk: the log line stays
            log.error("audit record %s failed: %s", kind, e,
                      extra={"event": "audit_failed", "kind": kind})
            return False

    def process_events(self) -> list[tuple[str, dict]]:
        """Write the audit records of the GPIO events that came in (exit button, door
        alarms). The loop calls this between presentations and while it waits."""
        done = []
        while True:
            try:
                kind, at, data = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "egress":
                if data["relay"] == "error" and self.store is not None:
                    self._retry_egress(at, data)
                ok = data["relay"] == "pulsed"
                data["audited"] = self._audit_event(
                    "egress", at, decision="open" if ok else "deny",
                    reason="exit_button" if ok else f"relay_error: {data['error']}"[:200])
            elif kind in ("relay_fault", "relay_recovered"):
                if kind == "relay_fault":
                    p = {"reason": f"relay line lost ({data.get('what')}): "
                                   f"{data.get('error')}"[:200], "status": "down"}
                else:
                    p = {"reason": "relay line back: every channel switched off",
                         "status": "up", "delay_s": data.get("down_s"),
                         "count": data.get("attempts")}
                data["audited"] = self._audit_event(kind, at, **p)
            elif kind == "door":
                k = data["kind"]
                audit_kind = None
                if k in ("forced_open", "held_open"):
                    audit_kind, reason = "door_" + k, k
                elif k == "door_closed" and (data.get("was_forced") or data.get("was_held")):
                    audit_kind = "door_closed"
                    reason = (f"closed after {'forced_open' if data['was_forced'] else 'held_open'}"
                              f", open {data['open_s']:.1f} s")
                if audit_kind:
                    extra = {"window_s": self.cfg.gpio.held_open_s} if k == "held_open" else {}
                    data["audited"] = self._audit_event(audit_kind, at, reason=reason, **extra)
            elif kind == "panel":                       # the panel's output command
                data["audited"] = self._audit_event(
                    "panel_output", at, decision="open" if data["action"] != "off" else "closed",
                    reason=f"panel:{data['action']}")
            data = dict(data, event=kind, time=at)
            if kind in ("egress", "door"):
                self.door_events.append(data)
            done.append((kind, data))
            if self.on_event is not None:
                try:
                    self.on_event(kind, data)
                except Exception:   # noqa: BLE001
                    log.exception("on_event callback failed")
        return done

    def _retry_egress(self, at: float, data: dict) -> None:
        """The callback could not pulse (line down, relay not open): once more from the loop
        thread on a reopened line, while the person can still be standing at the door."""
        window = self.cfg.gpio.grant_window_s
        if time.time() - at > window:
            return
        if not isinstance(self.relay, RelaySupervisor):  # the supervisor reopens by itself
            self._drop_relay()
            self._open_relay()
        if self.relay is None:
            return
        try:
            self.relay.pulse(self.cfg.relay.channel, self.cfg.relay.pulse_ms)
            data.update(relay="pulsed", error=None, retried=True)
            if self.io is not None:
                self.io.granted("exit_button")
            log.info("exit button: relay pulsed on the reopened line",
                     extra={"event": "egress", "relay": "pulsed", "retried": True})
        except Exception as e:      # noqa: BLE001
            data["error"] = f"{type(e).__name__}: {e}"
            if not isinstance(self.relay, RelaySupervisor):
                self._drop_relay()

    def io_status(self) -> dict:
        """GPIO devices, door state and the last door / egress events (health report)."""
        if self.io is None:
            return {"enabled": False}
        d = self.io.describe()
        d["enabled"] = True
        d["events"] = list(self.door_events)[-10:]
        return d

    def request_stop(self) -> None:
        """Ask the loop to end after the presentation in hand (signal handlers call this)."""
        self.stop_event.set()
        self._wake.set()

    def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (stop_event ends it), handling GPIO events meanwhile."""
        end = time.monotonic() + seconds
        while not self.stop_event.is_set():
            self._wake.clear()
            self.process_events()
            left = end - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(min(left, 0.2))

    def _capture(self, source):
        if self.io is None:
            return source.capture_burst()
        with self.io.lit():                       # illuminator + strobe for the burst only
            return source.capture_burst()

    # ------------------------------------------------------------------ the loop
    def run(self, source, limit: int | None = None, on_decision=None,
            max_faults: int | None = None) -> int:
        """Presentations from ``source`` until it ends, ``limit`` is reached, ``stop_event``
        is set or ``max_faults`` consecutive capture faults; returns presentations done."""
        n = faults = 0
        source.start()
        try:
            while not self.stop_event.is_set() and (limit is None or n < limit):
                self.process_events()
                try:
                    burst = self._capture(source)
                    faults = 0
                except EndOfFrames:
                    break
                except FrameError as e:
                    d = self.fault(e.reason, str(e))
                    faults += 1
                    n += 1
                    if on_decision:
                        on_decision(None, d)
                    if max_faults is not None and faults >= max_faults:
                        break
                    self._wait(min(5.0, 0.2 * faults))
                    continue
                d = self.present(burst)
                n += 1
                if on_decision:
                    on_decision(burst, d)
                self._wait(self.cfg.gate.cooldown_s)
        finally:
            source.stop()
        return n


def open_store(cfg, **kw):
    """The store as ``[paths]`` says (device.store.provision: never a new key beside an
    existing store; folder 0700, files 0600, the key outside the state folder by default;
    integrity, generation and audit chain checked). ``kw``: TemplateStore options."""
    from device.store.provision import open_configured_store
    return open_configured_store(cfg, **kw)

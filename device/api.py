"""A small public Python API for integrators: load a gate from its config, enrol, identify,
verify.  Everything else in :mod:`device` is the gate's own machinery and may move.

    from device import api

    with api.load_gate("palmgate.toml") as gate:
        gate.enrol("alice", api.read_bursts("bursts/alice", views=gate.views))
        decision = gate.identify(api.read_bursts("bursts/unknown", views=gate.views)[0])
        print(decision.opened, decision.user_id, decision.reason)

A burst is what the gate captures for one presentation: K visible views and one frame of the
transmission sensor (:class:`device.sources.replay.Burst`).  Decisions are
:class:`device.gate.decision.Decision`; nothing here drives a relay -- that is ``palmgate run``.
docs/api.md has a runnable example.
"""
from __future__ import annotations

from device.gate.decision import Decision
from device.sources.replay import Burst, read_bursts

__all__ = ["Burst", "Decision", "PalmGate", "load_gate", "read_bursts"]


class PalmGate:
    """The gate's decision path and its template store, without camera or relay."""

    def __init__(self, cfg):
        from device.gate.gallery_refresh import store_version
        from device.gate.gate import open_store
        from device.gate.pipeline import Pipeline
        self.cfg = cfg
        self.pipeline = Pipeline(cfg)
        try:
            self.store = open_store(cfg)
            self.pipeline.attach_store(self.store)
            self._version = store_version(self.store)     # before the read, as the gate
            self.pipeline.load_gallery(self.store)
        except BaseException:
            self.pipeline.close()
            raise

    @property
    def views(self) -> int:
        """Visible views per presentation (``[gate] views``)."""
        return self.cfg.gate.views

    def enrol(self, user_id: str, bursts: list[Burst], replace: bool = False,
              label: str = "", allow_duplicate: bool = False) -> dict:
        """Enrol ``user_id`` from presentations of their palm; returns the enrolment report
        (templates, version, views rejected).  The plaintext feature never leaves this call.
        Every presentation must pass quality and liveness (``EnrolmentRefused``), and a palm
        already enrolled under another id is refused (``DuplicatePalm``) unless
        ``allow_duplicate`` (twins' hands and the like; audited) -- both are
        ``device.gate.enrol.EnrolError``."""
        from device.gate.enrol import enrol_user
        r = enrol_user(self.pipeline, self.store, user_id, bursts, replace=replace, label=label,
                       allow_duplicate=allow_duplicate)
        r.pop("rois", None)
        self._refresh()
        return r

    def _refresh(self) -> None:
        """The galleries brought to the store now: a patch of the users whose rows changed,
        the full load on any doubt (``device.gate.gallery_refresh``)."""
        from device.gate.gallery_refresh import refresh, store_version
        v = store_version(self.store)       # before the read: a commit meanwhile is seen next
        refresh(self.pipeline, self.store, lambda: self.pipeline.load_gallery(self.store))
        self._version = v

    def _follow_store(self) -> None:
        """Before a decision, as the gate does: another process's commit (``palmgate users
        delete``/``disable``, an enrolment) applies to it; a store that cannot be read is
        refreshed (its error raised, no decision), never decided on from the old gallery."""
        from device.gate.gallery_refresh import store_version
        v = store_version(self.store)
        if v is None or v != self._version:
            self._refresh()

    def identify(self, burst: Burst) -> Decision:
        """1:N: who among the enrolled users is this live palm?  ``decision.opened`` says
        whether the gate would open; ``reason`` why not."""
        self._follow_store()
        return self.pipeline.decide(burst, None)

    def verify(self, user_id: str, burst: Burst) -> Decision:
        """1:1: is this live palm ``user_id``'s?"""
        self._follow_store()
        return self.pipeline.decide(burst, user_id)

    def users(self) -> list[str]:
        """The enrolled user ids."""
        return [u.user_id for u in self.store.users()]

    def close(self) -> None:
        self.pipeline.close()
        self.store.close()

    def __enter__(self) -> "PalmGate":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_gate(config=None, **overrides) -> PalmGate:
    """A :class:`PalmGate` from a TOML config file (or the built-in defaults when None), with
    ``overrides`` per section, e.g. ``load_gate("palmgate.toml", match={"threshold": 0.97})``."""
    from device.config import Config, load_config
    cfg = config if isinstance(config, Config) else load_config(config, **overrides)
    return PalmGate(cfg)

"""Presentations (views + sensor frame) through the gate's own stages, for ``palmgate
evaluate-liveness``.

A sample of a liveness set is a *presentation* when it is a folder in the recorded-burst layout
(``view_0.png .. view_<K-1>.png`` and ``sensor.png``, ``burst.json`` optional; what ``python -m
tools.synth liveness --presentations`` and ``palmgate record`` write). It goes through the
gate's pipeline exactly as an enrolment screen or a presentation at the gate does
(:meth:`device.gate.pipeline.Pipeline.screen`): the raw-frame quality check, the unit's
calibration, the palm regions of the views through the gate's front end (its hand landmarks),
the sensor stage (presence -> SR -> liveness) and then the binding of the sensor frame to the
views' landmarks (:class:`device.gate.sensor_binding.BindingStage` with the unit's
registration). The first stage that denies gives the reason; the presentation is accepted only
when every stage accepts. No feature or match runs.

The registration: the unit's calibration when ``--config`` names a configuration with one;
otherwise the nominal registration of the synthetic gate named by the set's ``rig.json``
(``synthetic_seed``, ``views``; written with the set), or of ``[source] synthetic_seed`` 0.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SENSOR_FILE = "sensor.png"
RIG_FILE = "rig.json"


def is_presentation(path) -> bool:
    """Whether ``path`` is a presentation folder, or the sensor frame of one."""
    p = Path(path)
    if p.name == SENSOR_FILE:
        p = p.parent
    return p.is_dir() and (p / SENSOR_FILE).is_file() and (p / "view_0.png").is_file()


def read_rig(data_dir) -> dict:
    """The set's ``rig.json`` ({} when there is none)."""
    p = Path(data_dir) / RIG_FILE
    if not p.is_file():
        return {}
    try:
        rig = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not valid JSON: {e}") from None
    if not isinstance(rig, dict):
        raise ValueError(f"{p}: not a JSON object")
    return rig


def stage_config(sensor: str, precision: str, models_dir=None, threads: int = 0,
                 threshold: float | None = None, config=None, rig: dict | None = None):
    """The configuration the presentations run under: ``config`` (a gate's TOML, with its
    calibration) or the defaults on the synthetic gate of ``rig``; the sensor, precision,
    models, threads and liveness threshold of the command either way."""
    from device.config import load_config
    over: dict = {"liveness": {"sensor": sensor, "enabled": True},
                  "gate": {"precision": precision}}
    if threads:
        over["gate"]["model_threads"] = threads
    if models_dir:
        over["paths"] = {"models": str(models_dir)}
    if threshold is not None:
        over["liveness"]["threshold"] = threshold
    if config is None:
        rig = rig or {}
        over["source"] = {"kind": "synthetic", "synthetic_seed": int(rig.get("synthetic_seed",
                                                                             0))}
        if "views" in rig:
            over["gate"]["views"] = int(rig["views"])
    return load_config(config, **over)


@dataclass
class Judged:
    """One presentation through the stages: the deny ``reason`` (None: accepted), p(live)
    when liveness ran, the binding score when the binding ran (None: not reached)."""

    reason: str | None
    p_live: float | None
    binding: float | None
    p_phantom: float | None = None     # X-ray phantom check, where liveness passed


class _NoFeature:
    """Stands in for the feature extractor: the evaluation runs no feature or match stage."""


class PresentationStages:
    """``stages(folder)`` -> :class:`Judged`, through a gate pipeline built from ``cfg``. The
    sensor stage shares ``branch`` (the already loaded :class:`SensorBranch`), so frames and
    presentations are judged by one model and one threshold."""

    def __init__(self, cfg, branch=None):
        from device.gate.pipeline import Pipeline
        self.cfg = cfg
        self.pipe = Pipeline(cfg, extractor=_NoFeature())
        if branch is not None and self.pipe.sensor is not None:
            self.pipe.sensor.branch = branch

    @property
    def binding(self):
        """The pipeline's binding stage (None when ``[liveness] binding = false``)."""
        return self.pipe.binding

    def __call__(self, folder) -> Judged:
        from device.gate.decision import Decision, Deny
        from device.sources.base import FrameError
        from device.sources.replay import read_burst
        f = Path(folder)
        try:
            burst = read_burst(f.parent if f.name == SENSOR_FILE else f)
        except FrameError as e:
            raise ValueError(f"presentation {folder}: {e}") from None
        out = Decision()
        try:
            self.pipe.screen(burst, out)
            reason = None
        except Deny as d:
            reason = d.reason
        return Judged(reason, out.p_live, out.binding, out.p_phantom)

    def close(self) -> None:
        self.pipe.close()

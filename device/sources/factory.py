"""The burst source that ``[source]`` names: recorded bursts (``replay``) or the configured
cameras (``cameras``).  The synthetic source is not built here: whoever runs the gate on
synthetic people (the demo, ``palmgate run`` with ``kind = "synthetic"``) builds it from
:mod:`device.synth.source` and hands it in."""
from __future__ import annotations


def make_source(cfg, views: int | None = None):
    """The BurstSource of ``cfg.source`` (``replay`` or ``cameras``)."""
    from device.sources.replay import CameraBurstSource, ReplaySource, open_frame_source
    s = cfg.source
    k = views or cfg.gate.views
    if s.kind == "replay":
        return ReplaySource(s.replay_dir, views=k)
    if s.kind == "cameras":
        cams = [open_frame_source(c) for c in s.cameras[:k]]
        sensor = open_frame_source(s.sensor_camera, grayscale=True) if s.sensor_camera \
            else None
        return CameraBurstSource(cams, sensor, s.capture_timeout_s)
    raise ValueError(f"[source] kind = {s.kind!r} is not built by the gate: hand the source in "
                     f"(the synthetic one comes from device.synth.source.synthetic_source)")

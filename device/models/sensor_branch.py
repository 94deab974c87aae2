"""The transmission-sensor branch of the gate (seed 001): capture -> is there a hand? ->
super-resolution (x2) -> liveness model -> p(live) > threshold.

:meth:`SensorBranch.judge` is the sensor stage exactly as the gate runs it (the gate's
``SensorStage`` and ``palmgate evaluate-liveness`` both call it): presence
(:mod:`device.models.presence`; no hand -> ``no_hand_in_sensor``), then SR and liveness
(``not_live``), then, for X-ray, the phantom check on the same SR image
(:mod:`device.models.phantom`; a radiographic hand phantom is ``not_live`` too). The binding of
the sensor frame to the views is the gate's next stage
(:class:`device.gate.sensor_binding.BindingStage`, after the views' landmarks are found);
``palmgate evaluate-liveness`` runs it too where a sample has views.

Both models run through :class:`device.models.model.Model` (sha256-checked against the
signed models/manifest.json).  Files: ``sr_<sensor>.onnx`` / ``liveness_<sensor>.onnx`` (fp32)
or the ``_int8`` variants; the decision threshold is the ``threshold`` field of the liveness
file's manifest entry (chosen on validation data by ``python -m tools.train sensor``, covered by
the manifest's signature; an override may only raise it).  Live only when p(live) is strictly
greater than the threshold: equality is not live.

A frame whose size differs from the sensor's capture size (128x128) is centre-cropped to a square
and area-resized to it (e.g. a 352x288 NIR camera frame).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.models.model import DEFAULT_MODELS_DIR, Model, ModelError, entry_band
from device.models.phantom import PHANTOM_DETAIL, is_phantom, phantom_check
from device.models.presence import NO_HAND, PresenceCheck

SENSORS = ("xray", "nir")
CAPTURE_SIZE = (128, 128)
SR_SCALE = 2
PRECISIONS = ("fp32", "int8")


def model_names(sensor: str, precision: str = "fp32") -> tuple[str, str]:
    """(SR file, liveness file) of a sensor kind and precision."""
    if sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {SENSORS}, not {sensor!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    suffix = "_int8" if precision == "int8" else ""
    return f"sr_{sensor}{suffix}.onnx", f"liveness_{sensor}{suffix}.onnx"


def to_capture(frame: np.ndarray, size: tuple[int, int] = CAPTURE_SIZE) -> np.ndarray:
    """A sensor frame (grey or BGR, uint8 or float in [0, 1]) as a float32 capture in [0, 1] of
    ``size``: frames of another size are centre-cropped to the capture's aspect ratio and
    area-resized."""
    a = np.asarray(frame)
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY) if a.shape[2] == 3 else a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D grey frame, got shape {np.shape(frame)}")
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    h, w = a.shape
    th, tw = size
    if (h, w) != (th, tw):
        if h * tw > w * th:                              # too tall: crop rows
            ch = int(round(w * th / tw))
            r = (h - ch) // 2
            a = a[r:r + ch]
        elif h * tw < w * th:                            # too wide: crop columns
            cw = int(round(h * tw / th))
            c = (w - cw) // 2
            a = a[:, c:c + cw]
        interp = cv2.INTER_AREA if a.shape[0] > th else cv2.INTER_CUBIC
        a = cv2.resize(a, (tw, th), interpolation=interp)
    return np.clip(a, 0.0, 1.0)


def is_live(p_live, threshold: float):
    """Seed 001: live iff p(live) > threshold (strictly); equality is not live."""
    return np.asarray(p_live) > threshold


def signed_threshold(entry: dict, name: str) -> float:
    """The ``threshold`` of a liveness file's (signature-checked) manifest entry, in (0, 1)."""
    t = entry.get("threshold")
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ModelError(f"{name} has no numeric 'threshold' in the manifest")
    if not 0.0 < float(t) < 1.0:
        raise ModelError(f"threshold {t} of {name} is not in (0, 1)")
    return float(t)


def stricter_threshold(override: float, signed: float, name: str) -> float:
    """``override`` when it is at least the signed threshold (a stricter liveness check);
    a :class:`ModelError` when it would loosen it."""
    t = float(override)
    if not t >= signed:                 # NaN fails too
        raise ModelError(f"liveness threshold {t:g} is below the signed threshold {signed:g} of "
                         f"{name}: a configured threshold can only make the check stricter; "
                         f"a lower one takes a newly signed manifest (docs/model-signing.md)")
    if not t < 1.0:
        raise ModelError(f"liveness threshold {t:g} is not below 1: nothing would be live")
    return t


NOT_LIVE = "not_live"


@dataclass
class Presentation:
    """Result of one sensor frame through the stage: ``reason`` is None when it passes (a hand,
    live), else the deny reason (``no_hand_in_sensor``, ``not_live``); ``p_live`` and ``sr``
    are None when the frame never reached liveness."""

    live: bool
    p_live: float | None
    threshold: float
    sr: np.ndarray | None   # the super-resolved image (float32, 256x256, [0, 1])
    reason: str | None = None
    p_hand: float | None = None
    detail: str = ""
    p_phantom: float | None = None   # X-ray: where liveness passed and the check ran


def phantom_denied(p_phantom, reason) -> bool:
    """A ``not_live`` deny with p(phantom) known: the check ran only where liveness passed, so
    the phantom check denied, not p(live) -- evaluations count it denied at any liveness
    threshold."""
    return p_phantom is not None and reason == NOT_LIVE


class SensorBranch:
    """``SensorBranch('xray')(frame)`` -> :class:`Presentation`.

    The threshold is the signed manifest's (``signed_threshold``). ``threshold`` may only make
    the check stricter: a value below the signed one is a :class:`ModelError` (the gate then
    denies every presentation, ``liveness_unavailable``); a lower threshold takes a newly
    signed manifest (docs/model-signing.md). ``trusted_keys``: see :class:`Model`."""

    def __init__(self, sensor: str, precision: str = "fp32",
                 models_dir: Path | str = DEFAULT_MODELS_DIR, threads: int = 0,
                 threshold: float | None = None, batch: int = 16, trusted_keys=None,
                 arena: bool = False, presence: bool = True):
        self.sensor, self.precision = sensor, precision
        # the presence check first: without it the stage must not run (fail secure)
        self.presence = PresenceCheck(sensor, precision, models_dir, threads,
                                      trusted_keys=trusted_keys) if presence else None
        sr_name, lv_name = model_names(sensor, precision)
        # no onnxruntime arena by default: the two arenas held ~40 MB of the gate's peak RSS
        # for good (palmgate bench, 2026-12-06); docs/results.md has the time it costs
        self.sr_model = Model(sr_name, models_dir, threads, trusted_keys=trusted_keys,
                              arena=arena)
        self.liveness_model = Model(lv_name, models_dir, threads, trusted_keys=trusted_keys,
                                    arena=arena)
        # X-ray: required wherever the signed manifest lists it (device/models/phantom.py)
        self.phantom = phantom_check(sensor, precision, models_dir, threads,
                                     trusted_keys=trusted_keys)
        self.signed_threshold = signed_threshold(self.liveness_model.entry, lv_name)
        # the second look's signed band around p(live)'s threshold (device.gate.second_look)
        self.second_look_band = entry_band(self.liveness_model.entry, lv_name)
        self.threshold = self.signed_threshold if threshold is None else \
            stricter_threshold(threshold, self.signed_threshold, lv_name)
        self.batch = batch

    def super_resolve(self, captures: np.ndarray) -> np.ndarray:
        """(N, 128, 128) float32 captures in [0, 1] -> (N, 256, 256) SR images."""
        c = np.asarray(captures, np.float32)
        out = []
        for i in range(0, len(c), self.batch):
            x = c[i:i + self.batch, None]
            out.append(self.sr_model(capture=x)["sr"][:, 0])
        return np.concatenate(out) if out else np.zeros((0,) + tuple(
            s * SR_SCALE for s in CAPTURE_SIZE), np.float32)

    def liveness(self, images: np.ndarray) -> np.ndarray:
        """p(live) of SR images (N, H, W) in [0, 1]."""
        im = np.asarray(images, np.float32)
        out = []
        for i in range(0, len(im), self.batch):
            out.append(self.liveness_model(image=im[i:i + self.batch, None])["probs"][:, 1])
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def scores(self, frames) -> tuple[np.ndarray, np.ndarray]:
        """(p_live (N,), SR images (N, 256, 256)) of a sequence of frames."""
        caps = np.stack([to_capture(f) for f in frames]) if len(frames) else \
            np.zeros((0,) + CAPTURE_SIZE, np.float32)
        sr = self.super_resolve(caps)
        return self.liveness(sr), sr

    def judge(self, frames) -> list[Presentation]:
        """The sensor stage on a sequence of frames: presence -> SR -> liveness (-> the phantom
        check where the sensor has one).  One :class:`Presentation` per frame; the gate calls
        it with one frame."""
        caps = np.stack([to_capture(f) for f in frames]) if len(frames) else \
            np.zeros((0,) + CAPTURE_SIZE, np.float32)
        if self.presence is None:
            raise ModelError("the sensor stage needs the presence check")
        out: list[Presentation | None] = [None] * len(caps)
        todo = []
        for i, pr in enumerate(self.presence(caps)):
            if not pr.present:
                out[i] = Presentation(False, None, self.threshold, None, NO_HAND, pr.p_hand,
                                      pr.detail)
                continue
            out[i] = Presentation(False, None, self.threshold, None, None, pr.p_hand)
            todo.append(i)
        if todo:
            sr = self.super_resolve(caps[todo])
            p = self.liveness(sr)
            for k, i in enumerate(todo):
                live = bool(is_live(p[k], self.threshold))
                o = out[i]
                o.live, o.p_live, o.sr = live, float(p[k]), sr[k]
                if not live:
                    o.reason, o.detail = NOT_LIVE, "p(live) not above the threshold"
            self._phantoms([out[i] for i in todo if out[i].live])
        return out

    def _phantoms(self, passed: list[Presentation]) -> None:
        """The phantom check on the SR images of the presentations liveness passed."""
        if self.phantom is None or not passed:
            return
        p = np.asarray(self.phantom(np.stack([o.sr for o in passed]))).reshape(-1)
        if p.size != len(passed):      # a frame left unchecked must not pass
            raise ModelError(f"the phantom check gave {p.size} scores for {len(passed)} "
                             f"images")
        for o, pk in zip(passed, p):
            o.p_phantom = float(pk)
            if is_phantom(pk, self.phantom.threshold):
                o.live, o.reason, o.detail = False, NOT_LIVE, PHANTOM_DETAIL

    def __call__(self, frame: np.ndarray) -> Presentation:
        return self.judge([frame])[0]

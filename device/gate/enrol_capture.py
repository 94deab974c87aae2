"""Enrolment at the terminal: presentations captured live from the gate's own source, with the
gate's prompts, until enough good ones are in hand.

:func:`capture_presentations` takes bursts from a BurstSource (the one ``palmgate run`` uses:
the cameras on a unit, recorded or synthetic bursts in tests) and puts each through the gate's
own checks (``Pipeline.screen``: quality, palm regions, liveness). A good one is kept; a bad
one is retried with the prompt the quality check gave ("move your hand closer", "open your
hand and spread your fingers", "hold your palm flat, facing the camera", ...) -- up to
``retries`` bad captures in a row per presentation, then :class:`CaptureFailed`. An empty
scene (no hand) is waited out, prompting once, within ``timeout_s`` for the whole session.
A missing or failing liveness model, or a stage that errors, stops at once (no retry can
help). Every presentation after the first must also be the same palm as the ones before
(:func:`same_palm_score`: fused 1:1 against their protected templates at the gate's
threshold), else it is retried with "present the same hand as before" (``enrol:other_palm``):
one id, one palm. Nothing is written here: the bursts go to ``device.gate.enrol.enrol_user``, which
checks them again, runs the duplicate check and writes the templates and their audit record
in one store transaction -- a session cut short (an error, Ctrl-C, a power cut) leaves the
store as it was.

:class:`Prompter` prints each prompt and, with ``speak``, says it through espeak-ng (or
espeak) when one is installed.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

from device.gate.decision import Deny
from device.gate.enrol import EnrolError

PRESENTATIONS = 3
"""Good presentations an enrolment at the terminal takes (``palmgate enroll --capture``'s
default): one protected template and one sensor template each; the gate scores a person by the
best of them. ``palmgate evaluate-liveness --enrol`` enrols its synthetic people from as many."""

START = "hold your palm flat over the gate, fingers spread"
NEXT = "lift your hand away, then hold it flat over the gate again"
NOT_LIVE = "present your own bare palm: the sensor did not see a live hand"
AGAIN = "please present your palm again"
SAME_HAND = "present the same hand as before"
FATAL = ("liveness_unavailable", "error:")


class CaptureFailed(EnrolError):
    """The session ended without enough good presentations (``reason``: the last deny reason,
    ``timeout``, ``source_ended`` or ``aborted``)."""

    def __init__(self, msg: str, reason: str):
        super().__init__(msg)
        self.reason = reason


def prompt_for(d: Deny) -> str:
    """What to tell the person after a refused capture."""
    if d.reason == "not_live":
        return NOT_LIVE
    return d.prompt or AGAIN


def same_palm_score(pipeline, earlier: list, rois) -> float:
    """The best fused score of the views ``rois`` against protected templates made from the
    ROIs of the earlier presentations (``earlier``: one list of ROIs per presentation) --
    the gate's own 1:1 rule."""
    import numpy as np
    from device.gate.gallery import GalleryBuilder, _fused_exact
    from device.protect.core import enrol
    ext = pipeline.extractor
    plain = pipeline.templates([r for rs in earlier for r in rs])
    b = GalleryBuilder(pipeline.protect_config, ext.importance, len(plain), dim=ext.dim,
                       shifts=ext.shifts)
    for x in plain:
        b.add("earlier", enrol(x, pipeline.protect_config, ext.importance))
    del plain
    gal = b.finish()
    return float(np.max(_fused_exact(gal, pipeline.features(rois), np.arange(len(gal)))))


def speaker() -> str | None:
    """The path of espeak-ng, else espeak, else None."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


class Prompter:
    """``say(text)``: the prompt on ``out`` (stderr by default), and spoken with ``speak``."""

    def __init__(self, speak: bool = False, out=None):
        self.out = out if out is not None else sys.stderr
        self.voice = speaker() if speak else None
        self.lines: list[str] = []
        if speak and self.voice is None:
            self._print("palmgate enroll --speak: neither espeak-ng nor espeak is installed "
                        "(apt install espeak-ng); the prompts are printed only")

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def say(self, text: str) -> None:
        self.lines.append(text)
        self._print(f">> {text}")
        if self.voice is not None:
            try:
                subprocess.run([self.voice, text], timeout=15, check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as e:
                self._print(f"(speech failed: {e}; printing only)")
                self.voice = None


def capture_presentations(pipeline, source, n: int, *, retries: int = 5,
                          timeout_s: float = 120.0, interval_s: float = 2.0, say=None,
                          clock=time.monotonic, sleep=time.sleep) -> list:
    """``n`` bursts from ``source`` that pass ``pipeline.screen``; :class:`CaptureFailed`
    after ``retries`` bad captures in a row, after ``timeout_s``, or when the source ends.
    ``interval_s``: the pause after a good presentation, for the hand to be lifted and shown
    again (presentations a moment apart, not one pose three times)."""
    from device.sources.base import EndOfFrames, FrameError
    if n < 1:
        raise EnrolError("--presentations must be at least 1")
    if retries < 0:
        raise EnrolError("--retries must be 0 or more")
    say = say or Prompter().say
    deadline = clock() + float(timeout_s)
    good: list = []
    good_rois: list = []
    same_palm = getattr(pipeline, "split", None) is None    # split mode: no local features
    source.start()
    try:
        while len(good) < n:
            i = len(good) + 1
            say(f"presentation {i} of {n}: " + (START if i == 1 else NEXT))
            bad, waiting, last = 0, False, ""
            while True:
                if clock() > deadline:
                    raise CaptureFailed(f"enrolment timed out after {timeout_s:g} s with "
                                        f"{len(good)} of {n} presentations (raise --timeout)",
                                        "timeout")
                try:
                    b = source.capture_burst()
                    rois = pipeline.screen(b)
                    if same_palm and good_rois and \
                            same_palm_score(pipeline, good_rois, rois) < pipeline.threshold:
                        raise Deny("enrol:other_palm", SAME_HAND,
                                   "not the palm of the presentations before")
                except EndOfFrames:
                    raise CaptureFailed(f"the source ran out after {len(good)} of {n} good "
                                        f"presentations (last problem: {last or 'none'})",
                                        "source_ended") from None
                except FrameError as e:
                    d = Deny("camera_timeout", AGAIN, str(e))
                except Deny as e:
                    d = e
                else:
                    good.append(b)
                    good_rois.append(rois)
                    say(f"presentation {i} of {n}: good")
                    if len(good) < n and interval_s > 0:
                        sleep(interval_s)
                    break
                if d.reason == "quality:no_hand":           # nobody there yet: wait
                    if not waiting:
                        say(d.prompt or START)
                        waiting = True
                    continue
                if any(d.reason.startswith(f) for f in FATAL):
                    raise CaptureFailed(f"enrolment stopped: {d.reason}"
                                        + (f" ({d.detail})" if d.detail else "")
                                        + "; see palmgate status", d.reason)
                bad += 1
                last = d.reason
                if bad > retries:
                    raise CaptureFailed(f"presentation {i}: {bad} bad captures in a row (last: "
                                        f"{d.reason}); nothing enrolled", d.reason)
                waiting = False
                say(f"{prompt_for(d)} ({d.reason}; try {bad + 1} of {retries + 1})")
    except KeyboardInterrupt:
        raise CaptureFailed(f"enrolment interrupted with {len(good)} of {n} presentations; "
                            f"nothing enrolled", "aborted") from None
    finally:
        try:
            source.stop()
        except Exception:           # noqa: BLE001 - stopping never hides the session's result
            pass
    return good


def enrolment_source(cfg, person: int | None, n: int, retries: int):
    """The source of ``[source]`` for an enrolment session. ``kind = "synthetic"`` renders
    synthetic person ``person``'s enrolment presentations (``--synthetic PERSON``)."""
    if cfg.source.kind == "synthetic":
        if person is None:
            raise EnrolError("[source] kind = \"synthetic\": give --synthetic PERSON (the "
                             "synthetic person standing at the gate)")
        from device.synth.source import SyntheticPeople, SyntheticSource
        people = SyntheticPeople(seed=cfg.source.synthetic_seed, views=cfg.gate.views,
                                 sensor=cfg.liveness.sensor)
        return SyntheticSource(people, [(person, "enrol", k) for k in range(n * (retries + 1))])
    if person is not None:
        raise EnrolError(f"--synthetic PERSON with --capture needs [source] kind = "
                         f"\"synthetic\" (this configuration's source is "
                         f"{cfg.source.kind!r})")
    from device.sources.factory import make_source
    return make_source(cfg)

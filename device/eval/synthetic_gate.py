"""A synthetic gate with a temporary real store, and its people enrolled through the real
enrolment path -- what the gate-path measurements share (:mod:`device.eval.sensor_identity_gate`,
``palmgate evaluate-liveness --enrol``: :mod:`device.eval.liveness_enrol`).

The gate is the demo's configuration (:func:`device.eval.demo.demo_config`: the synthetic gate
of ``seed``, its nominal registration, the demo's match threshold) with a fresh sealed store and
device key in a temporary folder that is removed afterwards (nothing kept). Enrolment is
:func:`device.gate.enrol.enrol_user` -- the gate's screen, the duplicate check against everyone
enrolled before, protected templates and the sensor templates sealed in the store, each with
its audit record -- of ``presentations`` (default two, :data:`ENROL_PRESENTATIONS`) enrolment
presentations of :meth:`device.synth.source.SyntheticPeople.burst` (kind ``enrol``); a refused
enrolment is retried with the next ones (:func:`enrolment_bursts`).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ENROL_TRIES = 3
"""Enrolments (each of ``presentations`` presentations) tried per person before the person is
left out."""

ENROL_PRESENTATIONS = 2
"""Presentations an enrolment takes in these measurements unless told otherwise (every recorded
run before 2026-12-07 enrolled two; the product's ``palmgate enroll --capture`` takes 3)."""


def add_enrol_presentations(ap) -> None:
    """The ``--enrol-presentations N`` option of a measurement that enrols its set's people
    here (:data:`ENROL_PRESENTATIONS` by default); :func:`check_enrol_presentations` after
    parsing."""
    ap.add_argument("--enrol-presentations", type=int, default=ENROL_PRESENTATIONS, metavar="N",
                    help="enrolment presentations a person (default %(default)s)")


def check_enrol_presentations(ap, a) -> None:
    """``ap.error`` (exit 2) unless the parsed ``a.enrol_presentations`` is at least 1."""
    if a.enrol_presentations < 1:
        ap.error("--enrol-presentations must be at least 1")


def user_id(person: int) -> str:
    """The user id a synthetic person is enrolled under."""
    return f"p{person:03d}"


@contextmanager
def synthetic_gate(seed: int, views: int, precision: str, sensor: str, model_threads: int = 1,
                   policy: str | None = None, models=None, prefix: str = "palmgate-gate-",
                   landmark_precision: str | None = None):
    """``(pipeline, store)`` of the synthetic gate of ``seed`` with a temporary store; the
    pipeline reads the store's sensor templates. ``policy``: ``[liveness] sensor_identity``
    (None: the configuration's default). ``landmark_precision``: ``[gate]
    landmark_precision`` (None: the configuration's default). Region threads 1."""
    from device.eval.demo import demo_config
    from device.gate.gate import open_store
    from device.gate.pipeline import Pipeline
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        cfg = demo_config(root, views, precision, sensor=sensor, seed=seed, models=models)
        over: dict = {"gate": {"threads": 1, "model_threads": max(1, int(model_threads))}}
        if landmark_precision is not None:
            over["gate"]["landmark_precision"] = landmark_precision
        if policy is not None:
            over["liveness"] = {"sensor_identity": policy}
        cfg = cfg.replace(**over)
        pipe = Pipeline(cfg)
        try:
            st = open_store(cfg)
            try:
                pipe.attach_store(st)
                yield pipe, st
            finally:
                st.close()
        finally:
            pipe.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)     # the run's store and keys: nothing kept


@contextmanager
def enrolled_gate(info: dict, sensor: str, precision: str, model_threads: int = 1,
                  models=None, prefix: str = "palmgate-gate-", log=None,
                  presentations: int = ENROL_PRESENTATIONS,
                  landmark_precision: str | None = None):
    """``(pipeline, store, enrolled, refused)``: :func:`synthetic_gate` of a set's synthetic
    gate (``info``: :func:`device.eval.liveness_enrol.read_set`'s, ``people`` filled in, as
    :func:`~device.eval.liveness_enrol.set_plan` gives it) with persons ``0..people-1``
    enrolled by :func:`enrol_people` from ``presentations`` presentations each;
    ``landmark_precision`` as :func:`synthetic_gate` takes it."""
    from device.synth.source import SyntheticPeople
    synth = SyntheticPeople(seed=info["seed"], views=info["views"], sensor=sensor)
    with synthetic_gate(info["seed"], info["views"], precision, sensor, model_threads,
                        models=models, prefix=prefix,
                        landmark_precision=landmark_precision) as (pipe, st):
        enrolled, refused = enrol_people(pipe, st, synth, range(info["people"]), log,
                                         presentations=presentations)
        yield pipe, st, enrolled, refused


def enrol_people(pipe, store, people, persons, log=None, tries: int = ENROL_TRIES,
                 presentations: int = ENROL_PRESENTATIONS) -> tuple[list[int], list[dict]]:
    """Enrol each of ``persons`` (indices of ``people``, a :class:`SyntheticPeople`) as
    :func:`user_id` from ``presentations`` enrolment presentations (try ``t`` takes
    :func:`enrolment_bursts`); returns (the persons enrolled, the refusals: person, try,
    reason). The gallery is (re)loaded afterwards."""
    from device.gate.enrol import EnrolError, enrol_user
    log = log or (lambda m: None)
    enrolled, refused = [], []
    t0 = time.time()
    for n, i in enumerate(persons):
        for t in range(tries):
            bursts = [people.burst(i, "enrol", n) for n in enrolment_bursts(t, presentations)]
            try:
                enrol_user(pipe, store, user_id(i), bursts)
                enrolled.append(i)
                break
            except EnrolError as e:
                refused.append({"person": i, "try": t, "reason": str(e)[:120]})
        log(f"seed {people.seed}: enrolled {len(enrolled)}/{n + 1} {time.time() - t0:.0f} s")
    pipe.load_gallery(store)
    return enrolled, refused


def enrolment_bursts(attempt: int, presentations: int = ENROL_PRESENTATIONS) -> range:
    """The enrolment presentation numbers (``SyntheticPeople.burst(person, "enrol", n)``) that
    enrolment try ``attempt`` takes: each try its own ``presentations`` fresh ones, so two
    presentations give tries (0, 1), (2, 3), ... as every run before the option did."""
    if presentations < 1:
        raise ValueError(f"an enrolment takes at least one presentation, not {presentations}")
    return range(attempt * presentations, (attempt + 1) * presentations)

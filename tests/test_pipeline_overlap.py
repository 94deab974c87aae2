"""The sensor chain (presence, SR + liveness, binding) runs on its own thread beside the regions,
feature and match (device/gate/pipeline.py): the decision must be the one of the stages in
sequence (``[gate] overlap = false``), a deny of an earlier stage wins, a later stage's findings
are dropped, and a failing or hung stage of either thread denies."""
import threading

import numpy as np
import pytest

from device.gate.decision import Deny
from device.gate.enrol import enrol_user
from device.gate.pipeline import Pipeline
from device.sources.replay import Burst
from device.store.store import TemplateStore
from tests.conftest import gate_config

FIELDS = ("decision", "reason", "prompt", "user_id", "candidate", "score", "threshold",
          "p_live", "live", "binding", "views_used", "template_version")


def overlap_pair(tmp_path, tiny_models, synthetic_bursts):
    """(cfg, the overlapped pipeline, the sequential one, the store) with two people
    enrolled; the caller closes all three."""
    cfg = gate_config(tmp_path, tiny_models)
    on, off = Pipeline(cfg), Pipeline(cfg.replace(gate={"overlap": False}))
    st = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=True)
    for i in (0, 1):
        enrol_user(on, st, f"person-{i:03d}", synthetic_bursts["enrol"][i])
    on.load_gallery(st)
    off.load_gallery(st)
    return cfg, on, off, st


@pytest.fixture
def pipes(tmp_path, tiny_models, synthetic_bursts):
    _, on, off, st = overlap_pair(tmp_path, tiny_models, synthetic_bursts)
    yield on, off
    on.close()
    off.close()
    st.close()


def _fields(d):
    return {f: getattr(d, f) for f in FIELDS}


def test_overlapped_decisions_equal_the_sequential_ones(pipes, synthetic_bursts):
    on, off = pipes
    g = synthetic_bursts["genuine"][0]
    bursts = [g, synthetic_bursts["impostor"][0], synthetic_bursts["attack"][0],
              Burst(g.views, np.zeros_like(g.sensor), {}),               # nothing on the sensor
              Burst([np.full_like(v, 128) for v in g.views], g.sensor, {})]   # no hand in view
    seen = set()
    for b in bursts:
        for claimed in (None, "person-001"):
            a, s = on.decide(b, claimed), off.decide(b, claimed)
            assert _fields(a) == _fields(s), (b.meta, claimed)
            assert len(a.rois) == len(s.rois)
            assert all(np.array_equal(x, y) for x, y in zip(a.rois, s.rois))
            assert list(a.stages_ms) == list(s.stages_ms)        # the same stages counted
            seen.add(a.reason)
    assert {"match", "no_hand_in_sensor", "quality:no_hand"} <= seen
    d = on.decide(g)
    assert set(d.stages_at_ms) == set(d.stages_ms) == set(d.stages_cpu_ms)
    assert d.critical_path[0] == "quality" and d.critical_path[-1] in ("match", "binding", "identity")
    assert d.stages_cpu_ms["regions"] > 0      # the region threads' CPU counts to the stage
    # decide() itself fills the CPU total (only the gate loop did), every thread counted
    assert d.total_cpu_ms >= d.stages_cpu_ms["regions"] > 0


def test_a_sensor_chain_deny_wins_over_the_match_and_drops_it(pipes, synthetic_bursts):
    on, _ = pipes
    g = synthetic_bursts["genuine"][0]
    assert on.decide(g).opened

    def mismatch(burst, out):
        out.binding = 0.5
        raise Deny("sensor_mismatch", "please present your palm again")
    on.binding = mismatch
    d = on.decide(g)
    assert (d.decision, d.reason, d.binding) == ("deny", "sensor_mismatch", 0.5)
    assert d.user_id is None and d.score is None and d.candidate is None    # match dropped

    def boom(burst, out):
        raise RuntimeError("simulated")
    on.binding = boom
    assert on.decide(g).reason == "error:binding"
    # an earlier stage's deny wins over the sensor chain's
    grey = Burst([np.full_like(v, 128) for v in g.views], g.sensor, {})
    assert on.decide(grey).reason == "quality:no_hand"


def test_a_hung_sensor_chain_times_out_and_never_opens(tmp_path, tiny_models, synthetic_bursts):
    cfg = gate_config(tmp_path, tiny_models, timeouts={"binding": 50})
    pipe = Pipeline(cfg)
    release = threading.Event()

    def hang(burst, out):
        release.wait(30)
    pipe.binding = hang
    pipe.gallery = None
    try:
        d = pipe.decide(synthetic_bursts["genuine"][0])
        assert (d.decision, d.reason) == ("deny", "timeout:binding")
    finally:
        release.set()
        pipe.close()


def test_a_binding_that_needs_the_regions_gets_them(pipes, synthetic_bursts):
    on, off = pipes
    g = synthetic_bursts["genuine"][0]
    seen = []

    class Binding:
        needs_regions = True

        def __call__(self, burst, out):
            seen.append((len(out.rois), out.views_used, dict(out.segmentation)))
    for p in (on, off):
        p.binding = Binding()
        assert p.decide(g).opened
    assert seen[0] == seen[1] and seen[0][0] == seen[0][1] >= 2
    grey = Burst([np.full_like(v, 128) for v in g.views], g.sensor, {})
    assert on.decide(grey).reason == "quality:no_hand"
    on.side.submit(lambda: None).result(10)             # the sensor thread has finished
    assert len(seen) == 2                               # no binding after a regions deny


def test_a_binding_left_without_the_regions_is_a_deny(tmp_path, tiny_models, synthetic_bursts):
    """The sensor chain waits ``[timeouts] regions`` for the views' regions from the end of its
    sensor stage; were they not there then (and the presentation not yet decided), the binding
    was skipped with no deny, and a presentation whose regions came later within their own
    limit opened with no binding at all (no outline, no palm lines). It is a deny."""
    import time

    from device.gate.decision import Decision
    from device.gate.pipeline import _SensorJob
    from device.gate.stage_clock import StageClock
    cfg = gate_config(tmp_path, tiny_models, timeouts={"regions": 30})
    pipe = Pipeline(cfg)
    ran = []

    class Binding:
        needs_regions = True

        def __call__(self, burst, out):
            ran.append(1)
    try:
        pipe.binding = Binding()
        pipe._sensor = lambda burst, out, stop=None: None   # the sensor frame passes
        job = _SensorJob(Decision(), threading.Event(), time.perf_counter())
        pipe._sensor_chain(synthetic_bursts["genuine"][0], StageClock(cfg.timeouts), job)
        assert not ran and job.deny is not None and job.deny.reason == "timeout:regions"
    finally:
        pipe.close()

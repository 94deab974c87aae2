"""The gate's sensor stage runs the presence check first (issue 21): genuine views of an
enrolled palm with a noise sensor frame -- or a flat, gradient or shuffled one -- are denied
``no_hand_in_sensor`` and never open, through the real pipeline, the shipped models and a
sealed store; the same views with the palm's own sensor frame still get past presence."""
import numpy as np
import pytest
from conftest import gate_config

from device.gate.enrol import enrol_user
from device.gate.gate import Gate
from device.models.presence import NO_HAND
from device.relays.factory import MemoryRelay
from device.sources.replay import Burst
from device.synth.no_hand import no_hand_frame, pixel_shuffle
from test_presence import needs_models


@needs_models
def test_no_hand_in_the_sensor_frame_never_opens(tmp_path, synthetic_bursts):
    cfg = gate_config(tmp_path, None)                     # the shipped models
    genuine = synthetic_bursts["genuine"][0]               # person 0's views
    g = np.random.default_rng(7)
    own = genuine.sensor.astype(np.float32) / 255
    frames = {"uniform_noise": no_hand_frame("uniform_noise", g),
              "gaussian_noise": no_hand_frame("gaussian_noise", g),
              "flat": np.full(own.shape, 0.4, np.float32),
              "gradient": no_hand_frame("gradient", g),
              "pixel_shuffle": pixel_shuffle(own, g)}
    relay = MemoryRelay()
    with Gate(cfg, relay=relay) as gate:
        enrol_user(gate.pipeline, gate.store, "alice", synthetic_bursts["enrol"][0])
        gate.reload()
        for kind, f in frames.items():
            d = gate.present(Burst(genuine.views, np.round(f * 255).astype(np.uint8),
                                   dict(genuine.meta)))
            assert not d.opened and d.reason == NO_HAND, (kind, d.reason)
            assert d.p_live is None                        # liveness never ran
        assert not any(on for _, _, on in relay.events)      # no relay pulse
        d = gate.present(genuine)                           # the palm's own sensor frame
        assert d.reason != NO_HAND and d.p_live is not None

"""Gate pieces without the whole loop: configuration validation, the documented example file,
quality checks, replay bursts, fused matching on protected templates, the preallocated
gallery, the LCUS board simulator on a pty, the contact sheet."""
from pathlib import Path

import numpy as np
import pytest
from conftest import unit

from device.sources.base import EndOfFrames
from device.sources.replay import Burst, ReplaySource, read_burst, write_burst
from device.config import SCHEMA, ConfigError, load_config
from device.config_text import render_example

EXAMPLE = Path(__file__).resolve().parent.parent / "device" / "palmgate.example.toml"


# --------------------------------------------------------------------------- config
def test_defaults_and_example_file():
    cfg = load_config(None)
    assert cfg.relay.pulse_ms == 200 and cfg.source.kind == "synthetic"
    assert cfg.relay.kind == "sim"                    # defaults need no hardware
    assert EXAMPLE.read_text().strip() == render_example().strip()
    ex = load_config(EXAMPLE)
    assert ex.as_dict() == cfg.as_dict()
    text = EXAMPLE.read_text()
    for section, (_, opts) in SCHEMA.items():        # every option documented
        assert f"[{section}]" in text
        for k, o in opts.items():
            assert o.doc and f"\n{k} = " in text


@pytest.mark.parametrize("toml, key", [
    ("[relay]\npulse_ms = 20\n", "relay.pulse_ms"),
    ("[relay]\npulse_ms = \"long\"\n", "relay.pulse_ms"),
    ("[relay]\nkind = \"gpio\"\n", "relay.kind"),
    ("[relay]\nkind = \"modbus\"\n", "relay.port"),
    ("[relay]\npulse = 200\n", "relay.pulse"),
    ("[relais]\npulse_ms = 200\n", "relais"),
    ("[gate]\nviews = 2\nmin_views = 3\n", "gate.min_views"),
    ("[gate]\nthreads = true\n", "gate.threads"),
    ("[source]\nkind = \"replay\"\n", "source.replay_dir"),
    ("[source]\nkind = \"cameras\"\ncameras = [\"opencv:0\"]\n", "source.cameras"),
    ("[quality]\nmin_mean = 200.0\nmax_mean = 100.0\n", "quality.min_mean"),
    ("[gate\n", "not valid TOML"),
])
def test_config_errors_name_the_key(tmp_path, toml, key):
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(p)


def test_config_types_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[gate]\ncooldown_s = 2\n[liveness]\nthreshold = 0.4\n[relay]\nkind = \"lcus\""
                 "\nport = \"/dev/ttyUSB0\"\n")
    cfg = load_config(p)
    assert cfg.gate.cooldown_s == 2.0 and isinstance(cfg.gate.cooldown_s, float)
    assert cfg.liveness.threshold == 0.4 and cfg.match.threshold is None
    assert cfg.replace(relay={"pulse_ms": 300}).relay.pulse_ms == 300
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- quality
def test_frame_quality_checks():
    from device.vision.quality import (PROMPTS, CorruptFrame, QualityIssue, frame_check,
                                     sharpness)
    q = load_config(None).quality
    frame_check(np.full((480, 640, 3), 120, np.uint8), q)
    with pytest.raises(CorruptFrame):
        frame_check(np.zeros((10, 10), np.uint8), q)
    with pytest.raises(CorruptFrame):
        frame_check(np.zeros((480, 640), np.float64), q)
    with pytest.raises(CorruptFrame):
        frame_check("not an image", q)
    with pytest.raises(QualityIssue) as e:
        frame_check(np.full((480, 640), 5, np.uint8), q)
    assert e.value.reason == "too_dark" and e.value.prompt == PROMPTS["too_dark"]
    with pytest.raises(QualityIssue, match="too_bright"):
        frame_check(np.full((480, 640), 255, np.uint8), q)
    rng = np.random.default_rng(0)
    sharp = (rng.random((128, 128)) * 255).astype(np.uint8)
    assert sharpness(sharp) > sharpness(np.full((128, 128), 100, np.uint8))
    assert QualityIssue("low_quality").prompt == "adjust palm angle"


# --------------------------------------------------------------------------- bursts
def test_replay_round_trip_and_frame_view(tmp_path):
    rng = np.random.default_rng(1)
    views = [(rng.random((96, 128, 3)) * 255).astype(np.uint8) for _ in range(3)]
    sensor = (rng.random((128, 128)) * 255).astype(np.uint8)
    for n in range(2):
        write_burst(tmp_path / f"b{n}", Burst(views, sensor, {"label": "genuine", "n": n}))
    b = read_burst(tmp_path / "b1")
    assert all(np.array_equal(a, c) for a, c in zip(b.views, views))
    assert np.array_equal(b.sensor, sensor) and b.meta["n"] == 1 and b.meta["burst"] == "b1"
    src = ReplaySource(tmp_path, views=3)
    src.start()
    assert len(src) == 2 and src.capture_burst().meta["n"] == 0
    src.capture_burst()
    with pytest.raises(EndOfFrames):
        src.capture_burst()
    src.start()                                          # FrameSource view: 4 frames a burst
    roles = [src.capture()[1]["role"] for _ in range(8)]
    assert roles == ["view"] * 3 + ["sensor"] + ["view"] * 3 + ["sensor"]


# --------------------------------------------------------------------------- matching
def _enrolled(n_users=30, k=3, seed=0):
    from device.protect.core import enrol
    from device.protect.defaults import DEFAULT_CONFIG
    rng = np.random.default_rng(seed)
    w = np.full(49, 1 / 49)
    base = unit(rng.standard_normal((n_users, 49, 16)))
    tm = [(f"u{i}", enrol(unit(base[i] + 0.3 * rng.standard_normal((49, 16)) / 4),
                          DEFAULT_CONFIG, w, rng)) for i in range(n_users) for _ in range(k)]
    return base, tm, w, rng


def test_fused_search_and_verify_and_builder():
    from device.gate.gallery import GalleryBuilder, fused_search, fused_verify
    from device.protect.defaults import DEFAULT_CONFIG
    from device.protect.gallery import ProtectedGallery
    base, tm, w, rng = _enrolled()
    ref = ProtectedGallery(DEFAULT_CONFIG, w, shortlist=8)
    b = GalleryBuilder(DEFAULT_CONFIG, w, len(tm) + 5, shortlist=8)   # over-allocated
    for o, t in tm:
        ref.add(o, t)
        b.add(o, t)
    gal = b.finish()
    assert len(gal) == len(tm) and gal.owners == ref.owners
    q1 = unit(base[7][None] + 0.3 * rng.standard_normal((25, 49, 16)) / 4)
    np.testing.assert_allclose(gal.exact(q1), ref.exact(q1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gal.coarse(q1), ref.coarse(q1), rtol=1e-5, atol=1e-6)
    views = np.stack([unit(base[7][None] + 0.3 * rng.standard_normal((25, 49, 16)) / 4)
                      for _ in range(3)])
    m = fused_search(gal, views)
    assert m.owner == "u7" and m.candidates == 8
    ex = fused_search(gal, views, shortlist=len(gal))
    assert ex.owner == "u7" and abs(ex.score - m.score) < 1e-6
    v = fused_verify(gal, views, "u7", threshold=m.score)
    assert v.accepted and abs(v.score - m.score) < 1e-6
    other = fused_verify(gal, views, "u3", threshold=m.score)
    assert not other.accepted and other.score < m.score
    assert fused_verify(gal, views, "nobody") is None


def test_load_gallery_reads_store_user_by_user(tmp_path):
    from device.gate.gallery import load_gallery
    from device.protect.defaults import DEFAULT_CONFIG
    from device.store.store import TemplateStore
    base, tm, w, _ = _enrolled(n_users=4)
    with TemplateStore(tmp_path / "t.db", device_key=b"k" * 32) as st:
        for u in ("u0", "u1", "u2", "u3"):
            st.enrol(u, [t for o, t in tm if o == u])
        st.set_enabled("u2", False)
        gal, versions = load_gallery(st, DEFAULT_CONFIG, w)
    assert sorted(set(gal.owners)) == ["u0", "u1", "u3"] and len(gal) == 9
    assert versions == {"u0": 1, "u1": 1, "u3": 1}


def test_load_gallery_skips_templates_of_another_feature(tmp_path, caplog):
    """After `[match] feature` changes, old templates stay in the store but are not matched
    (a 49-cell template cannot be scored against a 98-cell query); the log says who."""
    from device.gate.gallery import load_gallery
    from device.protect.defaults import DEFAULT_CONFIG
    from device.store.store import TemplateStore
    base, tm, w, _ = _enrolled(n_users=2)
    wide = np.concatenate([w, w]) / 2                   # a feature with twice the cells
    with TemplateStore(tmp_path / "t.db", device_key=b"k" * 32) as st:
        for u in ("u0", "u1"):
            st.enrol(u, [t for o, t in tm if o == u])
        with caplog.at_level("WARNING"):
            gal, versions = load_gallery(st, DEFAULT_CONFIG, wide)
        assert len(gal) == 0 and versions == {}
        assert "2 users have templates of another palm feature" in caplog.text
        assert len(list(st.templates("u0"))) > 0         # nothing deleted


# --------------------------------------------------------------------------- relay sim
def test_lcus_board_simulator_on_a_pty():
    import time

    from device.relays.factory import open_gate_relay
    cfg = load_config(None, relay={"pulse_ms": 60})
    relay, sim = open_gate_relay(cfg)
    try:
        if sim is None:
            pytest.skip("no pseudo-terminals here")
        relay.pulse(1, 60)
        for _ in range(200):
            if sim.pulses(1) == 1 and not sim.state.get(1):
                break
            time.sleep(0.01)
        assert [f for _, f in sim.frames] == [bytes.fromhex(x) for x in
                                              ("A0 01 00 A1", "A0 01 01 A2", "A0 01 00 A1")]
    finally:
        relay.close()
        sim.close()


def test_contact_sheet(tmp_path):
    import cv2

    from device.gate.decision import Decision
    from device.eval.sheet import contact_sheet
    b = Burst([np.full((480, 640, 3), 90, np.uint8)] * 3, np.full((128, 128), 50, np.uint8))
    d1 = Decision(decision="open", reason="match", user_id="u1", score=0.99, p_live=0.9,
                  rois=[np.full((128, 128), 100, np.uint8)] * 3)
    d2 = Decision(reason="not_live", p_live=0.1)
    p = contact_sheet([(b, d1, "genuine"), (b, d2, "attack"), (None, Decision(
        reason="camera_timeout"), "fault")], tmp_path / "s.png")
    img = cv2.imread(p)
    assert img is not None and img.shape[1] > 7 * 100


def test_empty_scene_is_idle_not_an_attempt(tmp_path, tiny_models):
    from conftest import gate_config

    from device.gate.gate import Gate
    from device.relays.factory import MemoryRelay
    cfg = gate_config(tmp_path, tiny_models)
    with Gate(cfg, relay=MemoryRelay()) as gate:
        d = gate.present(Burst([np.full((480, 640, 3), 128, np.uint8)] * 3,
                               np.full((128, 128), 128, np.uint8), {}))
        assert d.idle and d.decision == "deny" and d.prompt
        assert gate.store.audit.records() == [] and gate.limiter.failures == 0


def test_run_writes_the_health_status_file(tmp_path, tiny_models, synthetic_bursts, capsys):
    import json

    from conftest import gate_config, write_toml

    from device.cli import main
    write_burst(tmp_path / "replay" / "0", synthetic_bursts["impostor"][0])
    status = tmp_path / "run" / "status.json"
    cfg = gate_config(tmp_path, tiny_models, source={"kind": "replay",
                                                     "replay_dir": str(tmp_path / "replay")},
                      paths={"status_file": str(status)})
    f = write_toml(tmp_path / "p.toml", cfg)
    assert main(["run", "--config", str(f), "--plain-log"]) == 0
    d = json.loads(capsys.readouterr().out.splitlines()[0])
    assert d["decision"] == "deny"
    st = json.loads(status.read_text())
    assert st["decisions"]["total"] == 1 and st["relay"]["driver"] in ("LcusRelay",
                                                                        "MemoryRelay")
    assert main(["status", "--config", str(f)]) in (0, 1)
    rep = json.loads(capsys.readouterr().out)
    assert rep["running_gate"]["decisions"]["total"] == 1


def test_configuration_reference_is_generated_from_the_schema():
    from device.config import SCHEMA
    from device.config_text import render_reference
    page = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    assert page.strip() == render_reference().strip(), \
        "docs/configuration.md is stale: run python -m tools.config_doc"
    for section, (_, opts) in SCHEMA.items():
        assert f"## [{section}]" in page
        assert all(f"| `{k}` |" in page for k in opts)


def test_building_the_command_line_imports_no_numpy():
    """`palmgate bench` pins BLAS to one thread before numpy loads: building the parsers of
    every command group must not load numpy first (it did once, through split's --feature)."""
    import subprocess
    import sys
    code = ("import sys, device.cli; device.cli.build_parser(); "
            "print('numpy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert r.stdout.strip() == "False", r.stderr

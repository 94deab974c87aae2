"""Shared fixtures of the gate tests (tests/test_gate_*.py): a models folder with tiny sensor
models, rendered synthetic bursts (once per session), gate configurations in a tmp folder.
The socat pty pair (``pty_pair``) is here; the LCUS peer lives in tests/test_relay.py, the
pymodbus one in tools/relay_peers.py.

Models folders the tests write are signed with a throwaway key (``signing_key``) that the
runtime trusts only inside this process while a test asks for it (``trust_test_key``;
device/models/trust.py) and in the subprocesses started through ``trusting_cli``."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models"


def _tiny_sensor_models(folder: Path, sensor: str = "nir") -> dict:
    """SR = nearest x2 upsample; liveness p(live) = mean intensity (everything bright is
    'live'): real ONNX files the runtime loads and hashes, made with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper
    sr = helper.make_graph(
        [helper.make_node("Resize", ["capture", "", "scales"], ["sr"], mode="nearest")],
        "sr", [helper.make_tensor_value_info("capture", TensorProto.FLOAT, ["b", 1, "h", "w"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["b", 1, "sh", "sw"])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    lv = helper.make_graph(
        [helper.make_node("ReduceMean", ["image", "axes"], ["m"], keepdims=1),
         helper.make_node("Reshape", ["m", "shape"], ["m2"]),
         helper.make_node("Sub", ["one", "m2"], ["dead"]),
         helper.make_node("Concat", ["dead", "m2"], ["probs"], axis=1)],
        "liveness",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", 1, "h", "w"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", 2])],
        [helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3]),
         helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
         helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    entries = {}
    for name, g in ((f"sr_{sensor}", sr), (f"liveness_{sensor}", lv)):
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
        m.ir_version = 9
        for suffix in ("", "_int8"):
            p = folder / f"{name}{suffix}.onnx"
            if p.is_symlink() or p.exists():
                p.unlink()          # never write through a link into the shipped models/
            onnx.save(m, str(p))
            entries[p.name] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            if name.startswith("liveness"):
                entries[p.name]["threshold"] = 0.02
    return entries


@pytest.fixture(scope="session")
def signing_key():
    """A throwaway Ed25519 key (made in memory for this session; never a release key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trust_test_key(signing_key):
    """The runtime of this process trusts ``signing_key`` during the test, then no longer."""
    from device.models.trust import forget_in_this_process, trust_in_this_process
    kid = trust_in_this_process(signing_key.public_key())
    yield signing_key
    forget_in_this_process(kid)


def sign_models(folder: Path, key) -> Path:
    """Sign ``folder``/manifest.json with ``key`` (writes manifest.sig); the folder."""
    from tools.sign_manifest import write_signature
    write_signature(folder, [key], check_files=False)
    return folder


def trusting_cli(key) -> list[str]:
    """argv prefix running palmgate's command line in a subprocess that trusts ``key``'s
    public key (tests/trusting_cli.py); needs PYTHONPATH to hold the repository root."""
    from device.models.signing import public_key_text
    return [sys.executable, "-m", "tests.trusting_cli", public_key_text(key.public_key())]


@pytest.fixture
def tiny_models(tmp_path, trust_test_key) -> Path:
    """A models folder: the shipped cell feature and generator files (linked) plus tiny
    sensor models, with a manifest that lists them all, signed with the test key."""
    d = tmp_path / "models"
    d.mkdir()
    man = json.loads((SHIPPED / "manifest.json").read_text())
    for name in list(man["models"]):
        if (SHIPPED / name).exists() and not name.startswith(("sr_", "liveness_")):
            os.symlink(SHIPPED / name, d / name)
    man["models"].update(_tiny_sensor_models(d))
    (d / "manifest.json").write_text(json.dumps(man))
    return sign_models(d, trust_test_key)


def shipped_sensor_models_listed(sensor: str = "nir", precision: str = "fp32") -> bool:
    from device.models.sensor_branch import model_names
    man = json.loads((SHIPPED / "manifest.json").read_text())["models"]
    return all(n in man and (SHIPPED / n).exists() for n in model_names(sensor, precision)) \
        and "threshold" in man.get(model_names(sensor, precision)[1], {})


@pytest.fixture(scope="session")
def synthetic_bursts():
    """Rendered once: enrolment bursts (2 each) of persons 0, 1 and presentations."""
    from device.synth.source import SyntheticPeople
    people = SyntheticPeople(seed=0, views=3, sensor="nir", threads=1)
    out = {"enrol": {i: [people.burst(i, "enrol", k) for k in range(2)] for i in (0, 1)},
           "genuine": [people.burst(0, "genuine", 0), people.burst(1, "genuine", 0),
                       people.burst(0, "genuine", 1)],
           "impostor": [people.burst(5, "impostor", 0), people.burst(6, "impostor", 0)],
           "attack": [people.burst(0, "attack", 0, species="printed_photo"),
                      people.burst(1, "attack", 1, species="silicone_cast")]}
    return out


def wait_until(pred, timeout=5.0) -> bool:
    """Poll ``pred`` every 20 ms until it is true (True) or ``timeout`` s pass (False): for
    the threads of a gate, a reader or a panel to catch up."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def gate_config(tmp_path, models=None, **sections):
    from device.eval.demo import DEMO_THRESHOLD
    from device.config import load_config
    base = {"gate": {"cooldown_s": 0.0, "precision": "fp32"},
            "paths": {"store": str(tmp_path / "state" / "templates.db"),
                      "device_key": str(tmp_path / "state" / "device.key"),
                      "models": str(models or "")},
            "match": {"threshold": DEMO_THRESHOLD},
            # a shared, loaded test machine: stage time limits are tested on their own
            "timeouts": {k: 120_000 for k in ("capture", "quality", "regions", "sensor",
                                              "binding", "feature", "match",
                                              "identity")}}
    for s, kv in sections.items():
        base.setdefault(s, {}).update(kv)
    return load_config(None, **base)


def enrolled_replay_gate(tmp_path, models, bursts, presentations: int, relay: dict):
    """A gate that has person-000 enrolled and ``presentations`` copies of their genuine burst
    to replay: (config, its TOML file). For tests that run ``palmgate run`` in a subprocess."""
    from device.sources.replay import write_burst
    from device.gate.enrol import enrol_user
    from device.gate.gate import open_store
    from device.gate.pipeline import Pipeline
    replay = tmp_path / "replay"
    for n in range(presentations):
        write_burst(replay / f"{n:02d}", bursts["genuine"][0])
    cfg = gate_config(tmp_path, models, source={"kind": "replay", "replay_dir": str(replay)},
                      relay=relay)
    pipe = Pipeline(cfg)
    try:
        with open_store(cfg) as st:
            enrol_user(pipe, st, "person-000", bursts["enrol"][0])
    finally:
        pipe.close()
    return cfg, write_toml(tmp_path / "p.toml", cfg)


def write_toml(path: Path, cfg) -> Path:
    from device.config_text import toml_value
    lines = []
    for s, kv in cfg.as_dict().items():
        lines.append(f"[{s}]")
        for k, v in kv.items():
            if v is not None:
                lines.append(f"{k} = {toml_value(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.fixture
def pty_pair(tmp_path):
    """Two linked pseudo-terminals made by socat (``socat`` must be installed; tests that use
    this mark themselves ``skipif(shutil.which("socat") is None)``): (path A, path B)."""
    a, b = tmp_path / "A", tmp_path / "B"
    proc = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={a}",
                             f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(250):
            if a.exists() and b.exists():
                break
            time.sleep(0.02)
        else:
            pytest.fail("socat did not create the pty pair")
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def modbus_peer(pty_pair):
    """(host end of a pty pair, a pymodbus RTU relay board serving the other end)."""
    from test_relay import ModbusPeer
    host, board = pty_pair
    peer = ModbusPeer(board)
    try:
        yield host, peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def front_end():
    """The gate's front end for 3 views with the shipped landmark model (the binding tests)."""
    from device.config import load_config
    from device.gate.front_end_stage import front_end_from_config
    fe, _, lmk = front_end_from_config(load_config(None, gate={"views": 3}))
    if lmk is None or lmk.get() is None:
        pytest.skip("no hand landmark model")
    return fe


# ------------------------------------------------------------------ the binding tests
class ExemptCalibration:
    """A unit with no factory registration to apply: the binding uses the synthetic rig's."""
    state, correction = "exempt", None


def binding_stage(sensor, models=None, **liveness):
    """The gate's binding stage for the synthetic rig (seed 0, 3 views); ``models``: a signed
    models folder (default the shipped one); ``liveness``: more ``[liveness]`` keys."""
    from device.config import load_config
    from device.gate.sensor_binding import BindingStage
    cfg = load_config(None, source={"synthetic_seed": 0}, gate={"views": 3},
                      paths={"models": str(models) if models else ""},
                      liveness=dict({"sensor": sensor}, **liveness))
    return BindingStage(cfg, ExemptCalibration())


def view_landmarks(front_end, views) -> dict:
    """{view: its (21, 2) landmarks} as the gate hands them to the binding: a view the quality
    gate refuses, or with no hand found, hands over nothing."""
    from device.vision.quality import QualityIssue
    out = {}
    for k, v in enumerate(views):
        try:
            r = front_end(v)
        except QualityIssue:
            continue
        if r.landmarks is not None:
            out[k] = r.landmarks[:, :2]
    return out


def sensor_u8(frame):
    """A rendered sensor frame ([0, 1] float) as the capture's uint8."""
    import numpy as np
    return np.clip(np.round(frame * 255), 0, 255).astype(np.uint8)


def judge_binding(stage, front_end, shot):
    """(denied, the gate's Decision, the uint8 frame) of one synthetic presentation through the
    binding stage, with the front end's landmarks as the gate hands them over; a deny must be
    ``sensor_mismatch``."""
    from device.gate.decision import Decision, Deny
    from device.sources.replay import Burst
    out = Decision()
    out.landmarks.update(view_landmarks(front_end, shot.views))
    frame = sensor_u8(shot.sensor)
    try:
        stage(Burst(shot.views, frame, {}), out)
        return False, out, frame
    except Deny as e:
        assert e.reason == "sensor_mismatch"
        return True, out, frame


# ------------------------------------------------------------------ the X-ray bones' tests
DRAWN_PX_MM = 1.0
"""The drawn X-ray hand's pixels per mm (:func:`drawn_xray_hand`)."""


def drawn_xray_hand(shape=(200, 200), scale=1.0, bones=True):
    """A drawn X-ray hand: five straight fingers from a palm centre (100, 150), each a row of
    bright bones with dark joint spaces at known places; (image float32, the 21 landmarks at
    the joints). ``scale`` draws the bones that many times longer (the landmarks stay);
    ``bones=False`` draws uniform fingers (no joints)."""
    import cv2
    import numpy as np

    from device.gate.binding_joints import CHAINS
    img = np.full(shape, 20.0, np.float32)
    c = np.array([100.0, 150.0])
    lm = np.zeros((21, 2))
    lm[0] = c + [0, 30]
    angles = np.deg2rad([-100, -80, -60, -120, -150])      # index, middle, ring, little, thumb
    joints_r = (30.0, 60.0, 80.0, 95.0)                     # MCP, PIP, DIP, tip from the centre
    for chain, a in zip(CHAINS, angles):
        u = np.array([np.cos(a), np.sin(a)])
        pts = [c + u * r for r in joints_r]
        for i, p in zip(chain, pts):
            lm[i] = p
        p0, p1 = c + u * 5 * scale, c + u * 95 * scale
        cv2.line(img, tuple(int(round(v)) for v in p0), tuple(int(round(v)) for v in p1), 150.0, 6)
        if bones:
            for r in joints_r[:3]:
                q, n = c + u * r * scale, np.array([-u[1], u[0]]) * 5
                cv2.line(img, tuple(int(round(v)) for v in q - n),
                         tuple(int(round(v)) for v in q + n), 100.0, 2)
    return cv2.GaussianBlur(img, (0, 0), 0.8), lm


def drawn_joint_stats(mu=0.0, sigma=2.0, dip=30.0) -> dict:
    """Bone statistics (:func:`device.gate.binding_joints.fit_bone_stats`'s keys) for the
    drawn hand: every joint alike."""
    from device.gate import binding_joints as J
    return {"mu": [mu] * 15, "sigma": [sigma] * 15, "dip": [dip] * 15, "stretch_lo": -0.05,
            "stretch_hi": 0.05, "joint_gain": J.JOINT_GAIN, "joint_free": J.JOINT_FREE,
            "stretch_gain": J.STRETCH_GAIN}


def xray_probes(front_end, shot):
    """The binding's :class:`~device.gate.sensor_binding.HandProbes` of one rendered X-ray
    presentation, through the front end's landmarks and the synthetic gate's registration
    (seed 0, 3 views); asserts the hand was placed and the bones are there."""
    from device.config import load_config
    from device.gate import sensor_binding as B
    cfg = load_config(None, source={"synthetic_seed": 0}, gate={"views": 3},
                      liveness={"sensor": "xray"})
    reg = B.nominal_registration(cfg)
    frame = sensor_u8(shot.sensor)
    fs = (frame.shape[1], frame.shape[0])
    plane, centres = {}, {}
    for k, lm in view_landmarks(front_end, shot.views).items():
        vs = (shot.views[k].shape[1], shot.views[k].shape[0])
        plane[k] = reg.to_sensor(lm, k, vs, fs)
        centres[k] = reg.centre(k, vs, fs)
    m = B.measure(frame, plane, centres, "xray")
    assert m is not None and m.bones is not None
    return m

"""Secrets (issue 18, item 8): the device key outside the store's folder by default (old
configurations still work), protection keys straight from os.urandom, one HKDF key per
purpose (calibration MAC, split link keys), owner-only files and folders, no core dumps,
split links with an ephemeral X25519 exchange (over a real socket pair) and the terminal's
link keys sealed by the device key."""
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, gate_config

from device.protect import core
from device.protect.osrandom import OsRandom, normal_from_uniform, uniform_from_bytes
from device.store.key_location import LEGACY_DEFAULT, default_key_path, resolve_key_path
from device.store.subkeys import CALIBRATION, SPLIT_LINK, derive_subkey
from device.store.store import derive_key

# --------------------------------------------------------------------------- key placement


def test_default_key_path_is_never_the_store_folder(tmp_path):
    assert default_key_path({"PALMGATE_DEVICE_KEY": "/k/d.key"}) == Path("/k/d.key")
    sysdir = tmp_path / "etc-palmgate"
    sysdir.mkdir()
    assert default_key_path({}, system_dir=sysdir) == sysdir / "device.key"
    assert default_key_path({"XDG_CONFIG_HOME": str(tmp_path / "cfg")},
                            system_dir=tmp_path / "none") == \
        tmp_path / "cfg" / "palmgate" / "device.key"
    from device.config import load_config
    assert load_config(None).paths.device_key is None          # the default: not beside it


def test_old_default_key_beside_the_store_still_works(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    store = Path("palmgate/templates.db")
    # a unit set up by an earlier version: key at the old default palmgate/device.key
    LEGACY_DEFAULT.parent.mkdir()
    LEGACY_DEFAULT.write_bytes(os.urandom(32))
    got = resolve_key_path(None, store, env=env, system_dir=tmp_path / "none")
    assert got == LEGACY_DEFAULT and "move it" in caplog.text
    # explicit paths are taken as they are (old configurations that named it)
    assert resolve_key_path("x/y.key", store, env=env) == Path("x/y.key")
    # fresh unit: the new place
    os.unlink(LEGACY_DEFAULT)
    assert resolve_key_path(None, store, env=env, system_dir=tmp_path / "none") == \
        tmp_path / "cfg" / "palmgate" / "device.key"


def _cli(*args, cwd, env=None, umask=0o022, trust=None):
    """palmgate in a subprocess with ``umask``; ``trust``: a signing key whose models folder
    that process trusts (as tests/trusting_cli.py does)."""
    from device.models.signing import public_key_text
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    code = f"import os, sys; os.umask({umask}); "
    if trust is not None:
        pub = public_key_text(trust.public_key())
        code += ("from device.models.signing import public_key_from_text; "
                 "from device.models.trust import trust_in_this_process; "
                 f"trust_in_this_process(public_key_from_text({pub!r})); ")
    code += "from device.cli import main; raise SystemExit(main())"
    return subprocess.run([sys.executable, "-c", code, *args],
                          capture_output=True, text=True, cwd=cwd, env=e, timeout=300)


def test_files_private_and_key_outside_state_folder_in_a_subprocess(tmp_path, tiny_models,
                                                                    signing_key):
    """`palmgate enroll` with the defaults and a permissive umask (022): the state folder is
    0700, the database (and its WAL, seal) 0600, and the key is not in the state folder."""
    from device.sources.replay import write_burst
    from device.synth.source import SyntheticPeople
    p = SyntheticPeople(seed=0, views=3, sensor="nir", threads=1)
    for k in range(2):
        write_burst(tmp_path / "b" / str(k), p.burst(0, "enrol", k))
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[paths]\nmodels = "{tiny_models}"\n[gate]\nprecision = "fp32"\n')
    r = _cli("enroll", "alice", "--burst", str(tmp_path / "b"), "--config", str(cfg),
             cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "home-cfg")},
             trust=signing_key)
    assert r.returncode == 0, r.stderr[-2000:]
    state = tmp_path / "palmgate"
    modes = {q.name: stat.S_IMODE(q.stat().st_mode) for q in state.iterdir()}
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert modes and all(m == 0o600 for m in modes.values()), modes
    assert "device.key" not in modes
    key = tmp_path / "home-cfg" / "palmgate" / "device.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_store_files_private_by_explicit_mode_and_tightened(tmp_path):
    from device.gate.gate import open_store
    cfg = gate_config(tmp_path, None, paths={"store": str(tmp_path / "a" / "b" / "t.db")})
    old = os.umask(0o022)                     # explicit modes, whatever the umask
    try:
        with open_store(cfg) as st:
            st.audit.append("decision", decision="deny")
            for f in (Path(cfg.paths.store), Path(cfg.paths.store + "-wal")):
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        for d in (tmp_path / "a", tmp_path / "a" / "b"):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700
    finally:
        os.umask(old)
    os.chmod(cfg.paths.store, 0o644)
    with open_store(cfg):
        assert stat.S_IMODE(os.stat(cfg.paths.store).st_mode) == 0o600


# --------------------------------------------------------------------------- randomness
def test_protection_keys_come_straight_from_os_urandom(monkeypatch):
    reads = []
    real = os.urandom

    def counting(n):
        reads.append(n)
        return real(n)
    monkeypatch.setattr(os, "urandom", counting)
    x = np.random.default_rng(0).standard_normal((49, 16))
    t = core.enrol(x)                          # the gate's call: no rng given
    assert isinstance(core.secure_rng(), OsRandom)
    # key (49x16 normals), mask ranks, at least: 8 bytes a draw, nothing merely seeded
    assert sum(reads) >= 8 * 49 * 16 * 2
    assert t.key.shape == (49, 16)
    # a seeded generator still gives reproducible templates (evaluation)
    a = core.enrol(x, rng=np.random.default_rng(7))
    b = core.enrol(x, rng=np.random.default_rng(7))
    assert np.array_equal(a.key, b.key) and np.array_equal(a.mask, b.mask)


def test_os_random_draws_are_sound():
    r = OsRandom()
    z = r.standard_normal((200_000,))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    u = r.random((3, 4))
    assert u.shape == (3, 4) and (u >= 0).all() and (u < 1).all()
    assert isinstance(r.standard_normal(), float)
    # pure parts
    assert uniform_from_bytes(b"\xff" * 8, 1)[0] < 1.0
    assert uniform_from_bytes(b"\0" * 8, 1)[0] == 0.0
    assert np.allclose(normal_from_uniform(np.array([1.0]), np.array([0.0])), [0.0, 0.0])


# --------------------------------------------------------------------------- per-purpose keys
def test_every_purpose_has_its_own_key_and_the_construction_matches_the_store():
    k = os.urandom(32)
    subs = {p: derive_subkey(k, p) for p in (CALIBRATION, SPLIT_LINK, "template store seal",
                                             "attempt state")}
    assert len(set(subs.values())) == len(subs) and k not in subs.values()
    assert derive_subkey(k, "template store seal") == derive_key(k, "template store seal")


def test_calibration_tool_and_loader_agree_and_the_raw_key_no_longer_signs(tmp_path):
    import hashlib
    import hmac

    from calibration.calfile import new_document, write_document
    from calibration.resign import resign
    from device.vision.calibration import (CalibrationError, calibration_key, canonical_json,
                                           key_id, load_calibration)
    key = os.urandom(32)
    path = tmp_path / "unit.json"
    doc = write_document(path, new_document("PG-1"), key)
    assert doc["signature"]["alg"] == "HMAC-SHA256-HKDF"
    body = canonical_json({k: v for k, v in doc.items() if k != "signature"})
    assert doc["signature"]["mac"] == hmac.new(calibration_key(key), body,
                                               hashlib.sha256).hexdigest()
    assert doc["signature"]["mac"] != hmac.new(key, body, hashlib.sha256).hexdigest()
    assert load_calibration(path, key, unit_serial="PG-1").calibrated
    # a file of the old tool (raw key): refused with the way out, then re-signed once
    old = dict(doc, signature={"alg": "HMAC-SHA256", "key_id": key_id(key),
                               "mac": hmac.new(key, body, hashlib.sha256).hexdigest()})
    path.write_text(json.dumps(old))
    with pytest.raises(CalibrationError, match="calibration.resign"):
        load_calibration(path, key)
    assert resign(path, key, "PG-1")["resigned"] is True
    c = load_calibration(path, key, unit_serial="PG-1")
    assert c.doc["signed_utc"] == doc["signed_utc"]        # a stale file stays stale
    old["unit_serial"] = "PG-2"                            # tampered old file: still refused
    path.write_text(json.dumps(old))
    with pytest.raises(CalibrationError, match="tampered"):
        resign(path, key)


# --------------------------------------------------------------------------- core dumps
def test_gate_start_switches_core_dumps_off_in_a_subprocess():
    code = ("import json, resource; from device.ops.hardening import harden_process, dumpable;"
            "r = harden_process(); print(json.dumps([r, resource.getrlimit("
            "resource.RLIMIT_CORE), dumpable(), oct(__import__('os').umask(0))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60, check=True)
    rep, lim, dump, umask = json.loads(out.stdout)
    assert lim == [0, 0] and umask == "0o77"
    if sys.platform.startswith("linux"):
        assert dump == 0 and rep["not_dumpable"]


def test_systemd_unit_limits_core_dumps():
    unit = (ROOT / "packaging" / "systemd" / "palmgate.service").read_text()
    assert "\nLimitCORE=0\n" in unit and "\nUMask=0077\n" in unit


# --------------------------------------------------------------------------- split links
def _pair(key0, key1, tap=None):
    from device.split.transport import SecureChannel, SocketLink
    a, b = socket.socketpair()
    la = SocketLink(a, timeout=5)
    if tap is not None:
        tap.link = la
        la = tap
    box = {}

    def other():
        try:
            box[1] = SecureChannel(SocketLink(b, 5), key1, 1)
        except Exception as e:     # noqa: BLE001
            box[1] = e
    t = threading.Thread(target=other)
    t.start()
    c0 = SecureChannel(la, key0, 0)
    t.join()
    return c0, box[1]


class Recorder:
    """Every byte side 0 writes and reads: a wiretap."""

    def __init__(self):
        self.link, self.out, self.inb = None, bytearray(), bytearray()

    def write(self, b):
        self.out += b
        self.link.write(b)

    def read_exact(self, n):
        b = self.link.read_exact(n)
        self.inb += b
        return b

    def close(self):
        self.link.close()


def test_split_link_forward_secrecy_over_a_socket_pair():
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from device.split.transport import HEADER, HELLO_BYTES, _hkdf
    key = os.urandom(32)
    rec = Recorder()
    c0, c1 = _pair(key, key, rec)
    c0.send(b"palm share 0")
    assert c1.recv() == b"palm share 0"
    c0.close(), c1.close()
    h0, h1 = bytes(rec.out[:HELLO_BYTES]), bytes(rec.inb[:HELLO_BYTES])
    frame = bytes(rec.out[HELLO_BYTES:])
    header, body = frame[:HEADER.size], frame[HEADER.size:]
    assert h0 != h1 and len(h0) == 48
    # the link key stolen later, with the recorded session: the keys of the first scheme
    # (link key + nonces) do not open it; the X25519 secrets are gone with the session
    k01 = _hkdf(key, h0[:16] + h1[:16], b"palmgate-split/1 peer 0>1")
    with pytest.raises(InvalidTag):
        AESGCM(k01).decrypt(b"\0\0\0\0" + header[4:], body, header)


def test_split_link_without_the_link_key_fails_and_bad_points_are_refused():
    from device.split.transport import ChannelError, SecureChannel, SocketLink
    c0, c1 = _pair(os.urandom(32), os.urandom(32))            # a man in the middle
    c0.send(b"x")
    with pytest.raises(ChannelError, match="authentication"):
        c1.recv()
    a, b = socket.socketpair()
    b.sendall(os.urandom(16) + bytes(32))                     # the all-zero (low-order) point
    with pytest.raises(ChannelError, match="X25519"):
        SecureChannel(SocketLink(a, 5), os.urandom(32), 0)


def test_terminal_link_keys_are_sealed_by_the_device_key(tmp_path):
    from device.split.link_keys import (PLAIN, SEALED, LinkKeyError, load_terminal_keys,
                                        open_keys)
    from device.split.provision import provision_dir, terminal_keys
    provision_dir(tmp_path, mode="plain", capacity=2, inferences=1, matches=1, seed=b"s" * 32)
    clear = terminal_keys(tmp_path)
    dk = os.urandom(32)
    assert load_terminal_keys(tmp_path, dk) == clear
    assert not (tmp_path / PLAIN).exists()
    blob = (tmp_path / SEALED).read_bytes()
    assert stat.S_IMODE((tmp_path / SEALED).stat().st_mode) == 0o600
    assert clear[0] not in blob and clear[1] not in blob
    assert load_terminal_keys(tmp_path, dk) == clear            # from the sealed file now
    with pytest.raises(LinkKeyError, match="another unit"):
        open_keys(blob, os.urandom(32))
    with pytest.raises(LinkKeyError):
        open_keys(blob[:-1] + bytes([blob[-1] ^ 1]), dk)

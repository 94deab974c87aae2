"""The public API (device.api) through the runnable example of docs/api.md, run as written."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_documented_example_runs_and_decides_right(tmp_path):
    doc = (ROOT / "docs" / "api.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    expected = re.search(r"It prints:\n\n```\n(.*?)```", doc, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == expected.split()


def test_load_gate_with_no_enrolment_denies(tmp_path):
    from device import api
    from device.synth.source import SyntheticPeople
    burst = SyntheticPeople(seed=0, views=3, sensor="nir").burst(0, "genuine", 0)
    with api.load_gate(None, paths={"store": str(tmp_path / "t.db"),
                                    "device_key": str(tmp_path / "k")}) as gate:
        assert gate.users() == []
        d = gate.identify(burst)
    assert not d.opened and d.decision == "deny"


def test_identify_and_verify_follow_another_process_revocation(tmp_path, tiny_models):
    """A revocation (delete, disable) committed by another process (``palmgate users``)
    applies to the API's next identify/verify, as at the gate: the gallery it decides on
    has the change (patched in)."""
    import numpy as np
    from conftest import gate_config
    from device.api import PalmGate
    from device.gate.decision import Decision
    from device.protect.core import enrol
    from device.sources.replay import Burst
    from device.store.store import TemplateStore
    cfg = gate_config(tmp_path, tiny_models)
    pg0 = PalmGate(cfg)                                 # the store and its key made
    ext, pcfg = pg0.pipeline.extractor, pg0.pipeline.protect_config
    pg0.close()
    rng = np.random.default_rng(0)

    def templates(n):
        return [enrol(rng.standard_normal((ext.n_cells, ext.dim)).astype(np.float32), pcfg,
                      ext.importance, rng) for _ in range(n)]
    admin = TemplateStore(cfg.paths.store, key_path=cfg.paths.device_key, create=False)
    admin.enrol("alice", templates(2))
    with PalmGate(cfg) as pg:
        pipe = pg.pipeline
        seen = []
        pipe.decide = lambda burst, claimed=None: seen.append(
            (pipe.gallery.owner_set() if pipe.gallery is not None else set(),
             pipe.inactive.owner_set() if pipe.inactive is not None else set())) \
            or Decision(reason="no_match")
        burst = Burst([np.full((48, 64, 3), 128, np.uint8)] * 3,
                      np.full((16, 16), 128, np.uint8), {"burst": 0})
        try:
            pg.identify(burst)
            assert seen[-1] == ({"alice"}, set())
            admin.delete_user("alice")                  # revoked by another process
            pg.identify(burst)
            assert seen[-1] == (set(), set())
            admin.enrol("alice", templates(2))
            admin.enrol("carol", templates(1))
            pg.identify(burst)
            assert seen[-1] == ({"alice", "carol"}, set())       # enrolled meanwhile
            admin.delete_user("alice")
            admin.set_enabled("carol", False)
            pg.identify(burst)
            assert seen[-1] == (set(), {"carol"})
            admin.enrol("alice", templates(1))
            admin.delete_user("alice")
            pg.verify("alice", burst)
            assert seen[-1] == (set(), {"carol"})
        finally:
            admin.close()

"""The fleet demo's gate (device.site.gateproc) decides as the gate's pipeline does: its
gallery holds every enabled user, and the matched user's validity window and schedule then
decide -- an expired user is denied as ``expired``, not ``no_match``, with the reason in the
decision's audit record."""
import time
from types import SimpleNamespace

import numpy as np

from device.protect.core import enrol
from device.protect.defaults import DEFAULT_CONFIG
from device.recognition.cells import CellExtractor
from device.site import gateproc
from device.store.keys import load_device_key
from device.store.store import TemplateStore


def test_gateproc_denies_an_expired_user_with_its_reason(tmp_path):
    ext = CellExtractor()
    key = load_device_key(tmp_path / "device.key", create=True)
    store = TemplateStore(tmp_path / "templates.db", device_key=key)
    f = gateproc.synth_features(7, 0, 2)
    store.enrol("alice", [enrol(f[0], DEFAULT_CONFIG, ext.importance)],
                valid_until=time.time() - 3600)
    store.enrol("bob", [enrol(f[1], DEFAULT_CONFIG, ext.importance)])
    s = SimpleNamespace(store=store, gate="g1")
    gateproc._GALLERY.clear()

    def query(x):
        return np.broadcast_to(x, (1, len(ext.shifts), *x.shape)).astype(np.float32)

    try:
        r = gateproc._identify(s, ext, query(f[0]), 0.9)
        assert r["gallery"] == 2                   # the expired user is in the gallery
        assert (r["opened"], r["reason"], r["user"]) == (False, "expired", "alice")
        r = gateproc._identify(s, ext, query(f[1]), 0.9)
        assert (r["opened"], r["reason"], r["user"]) == (True, "match", "bob")
        recs = [x.payload for x in store.audit.records() if x.kind == "decision"]
        assert [(p["decision"], p["reason"]) for p in recs] == [("deny", "expired"),
                                                                 ("open", "match")]
    finally:
        gateproc._GALLERY.clear()
        store.close()

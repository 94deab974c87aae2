"""Write a provisioning directory (what the factory station puts on each node):

    node0_shard.npz, node1_shard.npz       model shard, slot masks, link keys (mode 0600)
    node0_triples.npz, node1_triples.npz   inference and match triples, in order
    node0_gallery.npz, node1_gallery.npz   optional imported gallery (masked templates)
    terminal_keys.npz                      the terminal's two link keys

Each node's files go to that node only; the directory form is for tests and benches.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from device.split.cellnet import DEFAULT_FEATURE, CellNet
from device.split.dealer import Dealer, save_shard
from device.split.node import save_triples


def provision_dir(out: str | Path, net: CellNet | None = None, mode: str = "shared",
                  capacity: int = 1000, inferences: int = 10, matches: int = 10,
                  seed: bytes | None = None, gallery: np.ndarray | None = None,
                  uids: list[str] | None = None, feature: str = DEFAULT_FEATURE) -> Path:
    """``net`` (default: the shipped ``feature``, a key of ``FEATURE_FILES``) is what the
    dealer shares; the node shards record its feature name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dealer = Dealer(net or CellNet.shipped(feature), mode, capacity=capacity, seed=seed)
    for i, s in enumerate(dealer.model_shards()):
        save_shard(out / f"node{i}_shard.npz", s)
    inf = [dealer.inference_triples() for _ in range(inferences)]
    mt = [dealer.match_triples() for _ in range(matches)]
    for i in (0, 1):
        save_triples(out / f"node{i}_triples.npz", [t[i] for t in inf], [t[i] for t in mt])
    if gallery is not None:
        F = dealer.gallery_from_plain(gallery)
        ids = np.array(uids if uids is not None else [str(k) for k in range(len(gallery))])
        for i in (0, 1):
            with open(out / f"node{i}_gallery.npz", "wb") as f:
                np.savez(f, F=F, uids=ids)
            os.chmod(out / f"node{i}_gallery.npz", 0o600)
    kp = out / "terminal_keys.npz"
    with open(kp, "wb") as f:
        np.savez(f, key0=np.frombuffer(dealer.keys["terminal0"], np.uint8),
                 key1=np.frombuffer(dealer.keys["terminal1"], np.uint8))
    os.chmod(kp, 0o600)
    return out


def terminal_keys(directory: str | Path) -> tuple[bytes, bytes]:
    with np.load(Path(directory) / "terminal_keys.npz") as z:
        return z["key0"].tobytes(), z["key1"].tobytes()

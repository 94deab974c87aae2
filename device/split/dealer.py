"""The trusted dealer (factory provisioning): model shards, Beaver triples, gallery masks and
link keys. It is the only party that ever holds the plaintext model; nodes get uniform shares.

Beaver triples with a fixed weight mask. A linear layer ``P(x) @ W`` with shared input and
shared weights needs (A, B, Z = P(A) @ B); the parties open E = x - A and F = W - B. Here B is
drawn once per weight tensor and F = W - B, a uniform matrix that reveals nothing about W, is
written into both shards (it is what the nodes would open on first use); every inference gets
a fresh A and Z = P(A) @ B. Security is that of a one-time B with fresh A: each node sees
F (uniform), E = x - A (uniform, fresh) and its own shares. The match layer does the same
with the gallery: B3 masks each template slot, F3 = T - B3 is opened once at enrolment, and
each query consumes a fresh (A3, Z3 = G(A3) @ B3).

Modes: ``"shared"`` (secret-shared kernels, claim 8: Gabor kernels and PCA shared, Beaver
layers) and ``"plain"`` (plaintext kernels, claim 9: the same plaintext weights on both nodes,
linear layers local and free, but a node that sees half the opened Gabor responses and knows
the kernels can estimate the input by least squares; ``device.eval.split_leakage`` measures
it).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from device.split.cellnet import (F_K, F_KL, F_KM, F_P, F_PU, F_U, F_Y, F_YU, MAP, N_DENSE,
                                  WINDOW_ROWS, CellNet, encode_kernels,
                                  cell_patches, gabor_patches)
from device.split.ring import Prg, derive, encode, fresh_seed, share

MODES = ("shared", "plain")
CELLS = WINDOW_ROWS.shape[1]      # 49
MAP_PIXELS = MAP * MAP            # 1024
DIM = 16


def link_keys(seed: bytes | None = None) -> dict:
    """32-byte AES-256-GCM keys for the node-node link and each terminal-node link."""
    prg = Prg(derive(seed or fresh_seed(), "link-keys"))
    return {"peer": prg.bytes(32), "terminal0": prg.bytes(32), "terminal1": prg.bytes(32)}


class Dealer:
    """Provisioning station. ``seed=None`` draws everything from os.urandom; a seed makes a
    reproducible run (tests, benches)."""

    def __init__(self, net: CellNet, mode: str = "shared", capacity: int = 1000,
                 seed: bytes | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.net, self.mode, self.capacity = net, mode, int(capacity)
        self._seed = seed if seed is not None else fresh_seed()
        self._prg = Prg(derive(self._seed, "dealer"))
        self.unit = net.activation == "unit"
        if self.unit:   # kernels twice: for the product (F_KM) and for the squares (F_KL)
            self.K = np.concatenate([encode_kernels(net.gabor, F_KM),
                                     encode_kernels(net.gabor, F_KL)], 1)      # (2025, 12)
            self.W = encode(net.pca, F_PU)              # (96, 16)
        else:
            self.K = encode(net.gabor, F_K)             # (2025, 6)
            self.W = encode(net.pca, F_P)               # (96, 16)
        self.bias = encode(net.bias, F_YU if self.unit else F_Y)    # (16,)
        self.B1 = self._prg.ring(self.K.shape)
        self.B2 = self._prg.ring(self.W.shape)
        self.B3 = self._prg.ring((CELLS * DIM, self.capacity))
        self.keys = link_keys(derive(self._seed, "keys"))

    def model_shards(self) -> tuple[dict, dict]:
        """Per-node shard dicts (numpy arrays and scalars only; see ``save_shard``)."""
        b1, b2 = share(self.bias, self._prg)
        B1 = share(self.B1, self._prg)
        B2 = share(self.B2, self._prg)
        G3 = share(self.B3, self._prg)
        out = []
        for i in (0, 1):
            s = {"role": i, "mode": self.mode, "feature": self.net.feature,
                 "activation": self.net.activation, "beta": self.net.beta,
                 "importance": self.net.importance.copy(), "bias": (b1, b2)[i],
                 "gal_B": G3[i], "key_peer": self.keys["peer"],
                 "key_terminal": self.keys[f"terminal{i}"]}
            if self.mode == "shared":
                s.update(gab_F=self.K - self.B1, gab_B=B1[i], pca_F=self.W - self.B2,
                         pca_B=B2[i])
            else:
                s.update(gab_K=self.K.copy(), pca_W=self.W.copy())
            out.append(s)
        return out[0], out[1]

    def inference_triples(self) -> tuple[dict, dict]:
        """One inference's material: mask/reshare seed (same for both); in shared mode the
        Beaver pairs of the two linear layers; for the unit feature the Beaver squares of the
        responses and the Beaver product of responses and 1/norm."""
        seed = self._prg.bytes(32)
        t = [{"seed": seed}, {"seed": seed}]
        if self.mode == "shared":
            A1 = self._prg.ring((128, 128))
            Z1 = gabor_patches(A1) @ self.B1
            A2 = self._prg.ring((6, 32, 32))
            Z2 = cell_patches(A2) @ self.B2
            for name, v in (("A1", A1), ("Z1", Z1), ("A2", A2), ("Z2", Z2)):
                s = share(v, self._prg)
                t[0][name], t[1][name] = s
        # both modes: the squares and the product are on shares in plaintext-kernel mode
        # (claim 9) too
        if self.unit:
            Alo = self._prg.ring((MAP_PIXELS, 6))     # masks the responses at F_KL (squares)
            Ar = self._prg.ring((MAP_PIXELS, 6))      # masks the responses at F_KM (product)
            Bs = self._prg.ring((MAP_PIXELS, 1))      # masks 1/norm
            for name, v in (("Alo", Alo), ("Zsq", Alo * Alo), ("Ar", Ar), ("Bs", Bs),
                            ("Zrs", Ar * Bs)):
                s = share(v, self._prg)
                t[0][name], t[1][name] = s
        return t[0], t[1]

    def match_triples(self) -> tuple[dict, dict]:
        """One query's match material: A3 over the dense cells, Z3 = G(A3) @ B3 (25, capacity)."""
        A3 = self._prg.ring((N_DENSE, DIM))
        Z3 = A3[WINDOW_ROWS].reshape(len(WINDOW_ROWS), -1) @ self.B3
        a, z = share(A3, self._prg), share(Z3, self._prg)
        return {"A3": a[0], "Z3": z[0]}, {"A3": a[1], "Z3": z[1]}

    def gallery_from_plain(self, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Import an existing plaintext gallery (K, 49, 16) of importance-weighted unit cells:
        the opened masked templates F3 (784, K) for both nodes. Benches use it to fill 1,000
        slots quickly; on a gate, ``device.split.protocol.enrol`` computes F3 from a split
        enrolment and the dealer never sees a template."""
        T = encode(np.asarray(templates, np.float64).reshape(len(templates), -1).T, F_U)
        return T - self.B3[:, :T.shape[1]]


def save_shard(path: str | Path, shard: dict) -> None:
    arrays = {}
    for k, v in shard.items():
        if isinstance(v, bytes):
            arrays[k] = np.frombuffer(v, np.uint8)
            arrays["__bytes__" + k] = np.array(1)
        else:
            arrays[k] = np.asarray(v)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_shard(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        raw = {k: z[k] for k in z.files}
    out = {}
    for k, v in raw.items():
        if k.startswith("__bytes__"):
            continue
        if "__bytes__" + k in raw:
            out[k] = v.tobytes()
        elif v.ndim == 0:
            out[k] = v.item()
        else:
            out[k] = v
    return out

"""The terminal's two long-term link keys (one per node), sealed under the device key.

The dealer writes them in the clear (``terminal_keys.npz``: it has no terminal's device key);
the first time the terminal loads them it seals them -- AES-256-GCM under HKDF(device key,
"split-link") -- into ``terminal_keys.sealed`` (0600) and deletes the clear file, so a copy of
the provisioning folder without the device key yields no link key. ``palmgate split
seal-keys`` does the same on purpose, at installation.

What is left (docs/security.md): the nodes' own shard files still hold their link keys in the
clear (a node has no device key of its own here), and a deleted file's blocks may survive on
flash until overwritten.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from device.store.subkeys import SPLIT_LINK, derive_subkey

log = logging.getLogger("palmgate.split")

PLAIN = "terminal_keys.npz"
SEALED = "terminal_keys.sealed"
_MAGIC = b"PGLK1"
_AD = b"palmgate/split-link-keys v1"


class LinkKeyError(RuntimeError):
    """The sealed link keys fail authentication (another unit's device key, or changed)."""


def seal_keys(keys: tuple[bytes, bytes], device_key: bytes) -> bytes:
    """Pure: the sealed blob of the two 32-byte link keys."""
    if len(keys) != 2 or any(len(k) != 32 for k in keys):
        raise ValueError("need two 32-byte link keys")
    nonce = os.urandom(12)
    k = derive_subkey(device_key, SPLIT_LINK)
    return _MAGIC + nonce + AESGCM(k).encrypt(nonce, keys[0] + keys[1], _AD)


def open_keys(blob: bytes, device_key: bytes, source: str = "sealed link keys"
              ) -> tuple[bytes, bytes]:
    """Pure: the two link keys of a sealed blob."""
    if not blob.startswith(_MAGIC) or len(blob) != len(_MAGIC) + 12 + 64 + 16:
        raise LinkKeyError(f"{source} is not a sealed link-key file")
    nonce, body = blob[len(_MAGIC):len(_MAGIC) + 12], blob[len(_MAGIC) + 12:]
    try:
        plain = AESGCM(derive_subkey(device_key, SPLIT_LINK)).decrypt(nonce, body, _AD)
    except InvalidTag:
        raise LinkKeyError(f"{source} fails authentication: sealed under another unit's "
                           f"device key, or changed") from None
    return plain[:32], plain[32:]


def write_sealed(directory, keys: tuple[bytes, bytes], device_key: bytes) -> Path:
    d = Path(directory)
    path, tmp = d / SEALED, d / (SEALED + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, seal_keys(keys, device_key))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def seal_plain_keys(directory, device_key: bytes) -> Path:
    """Seal ``terminal_keys.npz`` of ``directory`` and delete it. Returns the sealed file."""
    from device.split.provision import terminal_keys
    d = Path(directory)
    keys = terminal_keys(d)
    path = write_sealed(d, keys, device_key)
    if open_keys(path.read_bytes(), device_key) != keys:       # never lose the only copy
        raise LinkKeyError(f"{path}: sealed copy does not read back")
    (d / PLAIN).unlink()
    return path


def load_terminal_keys(directory, device_key: bytes) -> tuple[bytes, bytes]:
    """The terminal's link keys (node 0, node 1): from the sealed file, or -- the first time --
    from the dealer's clear file, which is then sealed and deleted. FileNotFoundError when
    neither is there."""
    d = Path(directory)
    if (d / SEALED).exists():
        keys = open_keys((d / SEALED).read_bytes(), device_key, str(d / SEALED))
        if (d / PLAIN).exists():
            log.warning("%s: a clear copy of the link keys is still there (reprovisioned?); "
                        "the sealed one is used -- delete the clear one or run palmgate split "
                        "seal-keys", d / PLAIN)
        return keys
    if not (d / PLAIN).exists():
        raise FileNotFoundError(d / SEALED)
    path = seal_plain_keys(d, device_key)
    log.warning("split link keys sealed under the device key into %s; the clear %s was "
                "deleted", path, PLAIN)
    return open_keys(path.read_bytes(), device_key)

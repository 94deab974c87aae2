"""One key per purpose from one secret: HKDF-SHA256 with the construction of
``device.store.store.derive_key`` (salt ``b"palmgate"``, info ``"palmgate <purpose> v1"``), so
no two uses (store sealing, store integrity, calibration MAC, split link-key sealing, attempt
record) ever share a key, and the raw device key is never used directly.

Pure functions, no files: ``device.store.keys`` reads the device key; the callers derive.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# the purposes outside the store's own (store.py derives "template store seal/tag/file/backup"
# and "audit log" itself, with the same construction)
CALIBRATION = "calibration file"
SPLIT_LINK = "split-link"


class SubkeyError(ValueError):
    """The secret to derive from is not 32 bytes."""


def derive_subkey(secret: bytes, purpose: str) -> bytes:
    """32 bytes for ``purpose`` from the 32-byte ``secret`` (the device key, or a key derived
    from it for a narrower tree)."""
    if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32:
        raise SubkeyError("the key to derive from must be 32 bytes")
    if not purpose or not isinstance(purpose, str):
        raise SubkeyError("a purpose is needed")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"palmgate",
                info=f"palmgate {purpose} v1".encode()).derive(bytes(secret))

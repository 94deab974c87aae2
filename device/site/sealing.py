"""Sealing for the site: what crosses the broker is ciphertext addressed to one gate.

Pure functions over bytes (X25519, HKDF-SHA256, AES-256-GCM and HMAC-SHA256 from
``cryptography``); no file, no network.

- ``pair_key(my_priv, their_pub, purpose)``: a static-static X25519 key shared by two parties
  of the site (gate and gate, service and gate, recovery and gate); either side derives the
  same 32 bytes. Sealing under it authenticates the sender too: only the two holders of the
  private keys can make a ciphertext that opens.
- ``seal(key, plain, ad)`` / ``unseal(key, blob, ad)``: AES-256-GCM, a fresh 96-bit nonce per
  message; ``ad`` (who, for whom, which user and enrolment) is bound to the ciphertext.
- ``seal_to(pub, plain, ad)`` / ``open_sealed(priv, blob, ad)``: ephemeral-static X25519 for
  the site recovery key, whose private half is kept off line (anyone can seal to it; only its
  holder can open).
- ``tag(key, data)`` / ``check_tag(key, data, mac)``: HMAC-SHA256 of the service's messages to
  a gate under their pair key (changes, roster): nobody but the service can order a gate to
  enrol or revoke.
"""
from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE = 12
KEY = 32


class SealError(ValueError):
    """A sealed message does not open: wrong key, wrong addressee or context, or changed."""


def new_private() -> bytes:
    """32 random bytes: an X25519 private key."""
    return X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())


def public_of(priv: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(_k32(priv, "private key")).public_key(
    ).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _k32(b: bytes, what: str) -> bytes:
    if not isinstance(b, (bytes, bytearray)) or len(b) != KEY:
        raise SealError(f"{what} must be {KEY} bytes")
    return bytes(b)


def _hkdf(secret: bytes, info: bytes, salt: bytes = b"palmgate site v1") -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY, salt=salt, info=info).derive(secret)


def pair_key(my_priv: bytes, their_pub: bytes, purpose: str) -> bytes:
    """The key two parties share for ``purpose`` ("seal" or "tag"): HKDF of their X25519
    secret, bound to both public keys (in a fixed order) and the purpose."""
    me = X25519PrivateKey.from_private_bytes(_k32(my_priv, "private key"))
    mine = public_of(my_priv)
    theirs = _k32(their_pub, "public key")
    shared = me.exchange(X25519PublicKey.from_public_bytes(theirs))
    if shared == bytes(KEY):
        raise SealError("degenerate public key")
    a, b = sorted((mine, theirs))
    return _hkdf(shared, b"palmgate site pair|" + purpose.encode() + b"|" + a + b)


def seal(key: bytes, plain: bytes, ad: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(_k32(key, "key")).encrypt(nonce, plain, ad)


def unseal(key: bytes, blob: bytes, ad: bytes) -> bytes:
    if len(blob) < NONCE + 16:
        raise SealError("sealed message too short")
    try:
        return AESGCM(_k32(key, "key")).decrypt(blob[:NONCE], blob[NONCE:], ad)
    except InvalidTag:
        raise SealError("sealed message does not open (other sender, other addressee or "
                        "context, or changed on the way)") from None


def seal_to(pub: bytes, plain: bytes, ad: bytes) -> bytes:
    """Ephemeral-static sealing to ``pub``: eph_pub (32) || nonce || ciphertext."""
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(_k32(pub, "public key")))
    key = _hkdf(shared, b"palmgate site to|" + eph_pub + bytes(pub))
    return eph_pub + seal(key, plain, ad)


def open_sealed(priv: bytes, blob: bytes, ad: bytes) -> bytes:
    if len(blob) < KEY + NONCE + 16:
        raise SealError("sealed message too short")
    eph_pub = blob[:KEY]
    me = X25519PrivateKey.from_private_bytes(_k32(priv, "private key"))
    shared = me.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    key = _hkdf(shared, b"palmgate site to|" + eph_pub + public_of(priv))
    return unseal(key, blob[KEY:], ad)


def tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(_k32(key, "key"), data, hashlib.sha256).digest()


def check_tag(key: bytes, data: bytes, mac: bytes) -> None:
    if not hmac.compare_digest(tag(key, data), bytes(mac)):
        raise SealError("message tag does not verify (not from the site service, or changed)")


def fingerprint(pub: bytes) -> str:
    """Short hex name of a public key, for logs and the admin page."""
    return hashlib.sha256(bytes(pub)).hexdigest()[:16]

"""Ed25519 signatures over the model manifest: pure functions (no file, no environment).

What is signed is :func:`canonical_bytes` of the whole parsed manifest -- every entry's sha256,
inputs and outputs, thresholds, metrics and notes -- as JSON with sorted keys, no whitespace,
ASCII only and no NaN, after a domain tag. The runtime verifies the very dict it then uses, so
what passed the check is exactly what decides (a re-indented file still verifies; any changed
value does not).

The signature document (``models/manifest.sig``, JSON)::

    {"format": "palmgate-manifest-signature/1", "algorithm": "ed25519",
     "manifest_sha256": "<sha256 of the canonical bytes, to tell 'changed' from 'bad key'>",
     "signatures": [{"key_id": "<16 hex>", "signature": "<base64, 64 bytes>"}, ...]}

One valid signature by a trusted key is enough: during a key rotation a release carries one
signature by the old key and one by the new (docs/model-signing.md). ``manifest_sha256`` only
words the error message; it is never trusted.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNATURE_FORMAT = "palmgate-manifest-signature/1"
ALGORITHM = "ed25519"
DOMAIN = b"palmgate model manifest v1\n"


class SignatureError(ValueError):
    """The manifest's signature is missing, malformed, by an unknown key, or does not match."""


def canonical_bytes(manifest: Mapping) -> bytes:
    """The bytes a signature covers: domain tag + canonical JSON of ``manifest``."""
    if not isinstance(manifest, Mapping):
        raise SignatureError(f"a manifest is a JSON object, not {type(manifest).__name__}")
    try:
        body = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SignatureError(f"the manifest cannot be put in canonical form: {e}") from None
    return DOMAIN + body.encode("ascii")


def manifest_digest(manifest: Mapping) -> str:
    """Hex sha256 of :func:`canonical_bytes` (names a manifest version in messages)."""
    return hashlib.sha256(canonical_bytes(manifest)).hexdigest()


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the sha256 of the raw public key."""
    return hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """Base64 of the 32 raw public-key bytes (the form device/models/trusted_keys.py holds)."""
    return base64.b64encode(raw_public(public_key)).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """The inverse of :func:`public_key_text`; a :class:`SignatureError` for anything else."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError, AttributeError) as e:
        raise SignatureError(f"not a base64 Ed25519 public key: {e}") from None


def sign(manifest: Mapping, private_keys: Ed25519PrivateKey | Iterable[Ed25519PrivateKey]
         ) -> dict:
    """The signature document of ``manifest`` signed by each of ``private_keys``."""
    if isinstance(private_keys, Ed25519PrivateKey):
        private_keys = [private_keys]
    msg = canonical_bytes(manifest)
    sigs = [{"key_id": key_id(k.public_key()),
             "signature": base64.b64encode(k.sign(msg)).decode("ascii")} for k in private_keys]
    if not sigs:
        raise SignatureError("no signing key given")
    return {"format": SIGNATURE_FORMAT, "algorithm": ALGORITHM,
            "manifest_sha256": hashlib.sha256(msg).hexdigest(), "signatures": sigs}


def verify(manifest: Mapping, document, trusted: Mapping[str, Ed25519PublicKey]) -> str:
    """The id of a trusted key whose signature in ``document`` covers ``manifest``; a
    :class:`SignatureError` naming the problem otherwise. ``trusted``: key id -> public key."""
    if not isinstance(document, Mapping):
        raise SignatureError("the signature file is not a JSON object")
    if document.get("format") != SIGNATURE_FORMAT:
        raise SignatureError(f"unknown signature format {document.get('format')!r} "
                             f"(expected {SIGNATURE_FORMAT!r})")
    if document.get("algorithm") != ALGORITHM:
        raise SignatureError(f"unsupported signature algorithm {document.get('algorithm')!r}")
    sigs = document.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise SignatureError("the signature file holds no signature")
    msg = canonical_bytes(manifest)
    unknown, failed = [], []
    for s in sigs:
        if not isinstance(s, Mapping) or not isinstance(s.get("key_id"), str) \
                or not isinstance(s.get("signature"), str):
            raise SignatureError("a signature entry needs a 'key_id' and a 'signature' string")
        kid = s["key_id"]
        if kid not in trusted:
            unknown.append(kid)
            continue
        try:
            raw = base64.b64decode(s["signature"], validate=True)
        except binascii.Error:
            failed.append(kid)
            continue
        try:
            trusted[kid].verify(raw, msg)
            return kid
        except InvalidSignature:
            failed.append(kid)
    if failed:
        changed = document.get("manifest_sha256") not in (None, hashlib.sha256(msg).hexdigest())
        why = ("the manifest was changed after it was signed (a model's sha256, a threshold or "
               "another field differs)" if changed else "the signature is not valid")
        raise SignatureError(f"signature by key {', '.join(failed)} does not verify: {why}")
    raise SignatureError(f"signed only by key(s) {', '.join(unknown)}, which this build does "
                         f"not trust (trusted: {', '.join(sorted(trusted)) or 'none'})")

"""Which keys the runtime trusts to sign the model manifest.

* The package's release keys (device/models/trusted_keys.py): adding or removing one is a
  reviewed code change (docs/model-signing.md).
* Keys that code running inside this process trusts with :func:`trust_in_this_process` (the
  tests' throwaway key, tests/conftest.py; a training tool's own key for the run that signed
  with it). Nothing else reaches this set: no file, environment variable, configuration key or
  command-line option, so nothing outside the process can widen what a gate trusts.
* An explicit ``trusted_keys`` argument (``load_manifest``, ``verified_file``, ``Model``) replaces
  the default set for that one call.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device.models.signing import key_id, public_key_from_text
from device.models.trusted_keys import RELEASE_KEYS

_process_keys: dict[str, Ed25519PublicKey] = {}


def package_keys() -> dict[str, Ed25519PublicKey]:
    """key id -> public key of every release key this build carries."""
    out = {}
    for kid, text in RELEASE_KEYS.items():
        pub = public_key_from_text(text)
        if key_id(pub) != kid:          # a typo in trusted_keys.py must not pass silently
            raise ValueError(f"device/models/trusted_keys.py: key {kid} has id {key_id(pub)}")
        out[kid] = pub
    return out


def key_map(keys: Mapping[str, Ed25519PublicKey] | Iterable[Ed25519PublicKey] | None
            ) -> dict[str, Ed25519PublicKey]:
    """``keys`` (a key-id mapping or public keys) as key id -> public key."""
    if keys is None:
        return {}
    if isinstance(keys, Mapping):
        return {key_id(k): k for k in keys.values()}
    if isinstance(keys, Ed25519PublicKey):
        keys = [keys]
    return {key_id(k): k for k in keys}


def trusted_keys(extra: Mapping | Iterable[Ed25519PublicKey] | None = None
                 ) -> dict[str, Ed25519PublicKey]:
    """The package's release keys, the keys trusted in this process, and ``extra``."""
    return {**package_keys(), **_process_keys, **key_map(extra)}


def trust_in_this_process(public_key: Ed25519PublicKey) -> str:
    """Trust ``public_key`` for every manifest this process loads from now on; its key id.
    For tests and tools only: a gate never calls it."""
    kid = key_id(public_key)
    _process_keys[kid] = public_key
    return kid


def forget_in_this_process(kid: str) -> None:
    """Undo :func:`trust_in_this_process` (a missing id is fine)."""
    _process_keys.pop(kid, None)

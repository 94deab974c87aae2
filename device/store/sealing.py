"""The store's cryptography as pure functions of bytes: purpose keys, sealed records, row tags,
backup files. Nothing here knows SQLite or a file.

- ``derive_key(device_key, purpose)``: HKDF-SHA256, one key per purpose.
- ``seal``/``unseal``: AES-256-GCM with a fresh 96-bit nonce; the associated data binds a
  record to its place (``ad_user``: user id + revision; ``ad_template``: user id + record id +
  template version), so a sealed blob moved to another row fails authentication.
- ``row_tag``: a keyed 256-bit tag of one sealed row; the store keeps the XOR of the tags of
  every row (the content tag), updated in the transaction that adds or removes the row.
- ``pack_backup``/``unpack_backup``: one AES-GCM file under a key (scrypt of a passphrase,
  or the unit's backup key), the header as associated data.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from device.store.errors import StoreError, TamperedError


def derive_key(device_key: bytes, purpose: str) -> bytes:
    if not isinstance(device_key, (bytes, bytearray)) or len(device_key) != 32:
        raise StoreError("the device key must be 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"palmgate",
                info=f"palmgate {purpose} v1".encode()).derive(bytes(device_key))


def seal(aead: AESGCM, plain: bytes, ad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(12)
    return nonce, aead.encrypt(nonce, plain, ad)


def unseal(aead: AESGCM, nonce: bytes, sealed: bytes, ad: bytes, what: str) -> bytes:
    try:
        return aead.decrypt(nonce, sealed, ad)
    except InvalidTag:
        raise TamperedError(f"{what} failed authentication: the file was changed or "
                            f"damaged") from None


def ad_user(user_id: str, rev: int) -> bytes:
    return f"palmgate/user|{user_id}|{rev}".encode()


def ad_template(user_id: str, record_id: int, version: int) -> bytes:
    return f"palmgate/template|{user_id}|{record_id}|{version}".encode()


def row_tag(key: bytes, kind: str, ident: str, version: int, nonce: bytes,
            sealed: bytes) -> int:
    """Keyed tag of one sealed row (kind "U": user, "T": template) as a 256-bit integer."""
    d = hashlib.sha256(nonce + sealed).digest()
    msg = f"{kind}|{ident}|{version}|".encode() + d
    return int.from_bytes(hmac.new(key, msg, hashlib.sha256).digest(), "big")


def scrypt_key(passphrase, salt: bytes, n: int, r: int, p: int) -> bytes:
    pw = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
    return hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, maxmem=2 ** 27, dklen=32)


def pack_backup(header: dict, payload: dict, key: bytes) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    nonce = os.urandom(12)
    body = AESGCM(key).encrypt(nonce, json.dumps(payload).encode(), head)
    return len(head).to_bytes(4, "big") + head + nonce + body


def backup_header(blob: bytes, what: str) -> tuple[dict, bytes, bytes, bytes]:
    """(header, header bytes, nonce, body) of a backup file; TamperedError if it is none."""
    try:
        n = int.from_bytes(blob[:4], "big")
        head = blob[4:4 + n]
        header = json.loads(head)
        nonce, body = blob[4 + n:16 + n], blob[16 + n:]
    except (ValueError, UnicodeDecodeError):
        raise TamperedError(f"{what} is not a PalmGate template backup") from None
    if not isinstance(header, dict) or header.get("format") != "palmgate-template-backup":
        raise TamperedError(f"{what} is not a PalmGate template backup")
    return header, head, nonce, body


def unpack_backup(head: bytes, nonce: bytes, body: bytes, key: bytes, what: str) -> dict:
    try:
        return json.loads(AESGCM(key).decrypt(nonce, body, head))
    except InvalidTag:
        raise TamperedError(f"backup {what} failed authentication: wrong passphrase or "
                            f"device key, or the file was changed") from None

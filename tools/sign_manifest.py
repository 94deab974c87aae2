"""The release step that signs models/manifest.json (docs/model-signing.md).

    python -m tools.sign_manifest --generate PATH        a new Ed25519 key pair: PATH (private,
                                                         0600, refused inside a git checkout)
                                                         and PATH.pub (the line for
                                                         device/models/trusted_keys.py)
    python -m tools.sign_manifest --key PATH [models/]   check every listed file against its
                                                         sha256, then write models/manifest.sig
                                                         (--key twice: two signatures, for a
                                                         key rotation)
    python -m tools.sign_manifest --check [models/]      verify with the keys this build trusts

The private key never enters the repository; the runtime (device/) never reads one.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.models.model import (SIGNATURE_FILE, ModelError, load_manifest, read_manifest,
                                 sha256_file)
from device.models.signing import key_id, public_key_text, sign
from device.models.trust import package_keys
from tools.paths import MODELS_DIR, PROJECT_ROOT

KEY_ENV = "PALMGATE_SIGN_KEY"                  # the release machine's key file (tools only)
PASSPHRASE_ENV = "PALMGATE_SIGN_KEY_PASSPHRASE"


def _inside_checkout(path: Path) -> Path | None:
    """The git checkout (or this project) that ``path`` would lie in, else None."""
    p = path.resolve()
    try:
        p.relative_to(PROJECT_ROOT)
        return PROJECT_ROOT
    except ValueError:
        pass
    for parent in p.parents:
        if (parent / ".git").exists():
            return parent
    return None


def generate_key(path: str | os.PathLike) -> tuple[Ed25519PrivateKey, str]:
    """Write a new private key to ``path`` (PKCS#8 PEM, mode 0600, folder 0700) and its public
    key to ``path``.pub; the key and its id. Refuses an existing file and any place inside a
    git checkout."""
    p = Path(path).expanduser()
    repo = _inside_checkout(p)
    if repo is not None:
        raise SystemExit(f"refusing to write a private key inside the git checkout {repo}: "
                         f"keep it outside the repository (e.g. ~/.palmgate-release/)")
    if p.exists():
        raise SystemExit(f"{p} exists: refusing to overwrite a key")
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(p, 0o600)
    pub = key.public_key()
    kid = key_id(pub)
    Path(str(p) + ".pub").write_text(f'"{kid}": "{public_key_text(pub)}",\n')
    return key, kid


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (a passphrase from $PALMGATE_SIGN_KEY_PASSPHRASE
    or the terminal when the file is encrypted)."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SystemExit(f"signing key {p}: {e}") from None
    if p.stat().st_mode & 0o077:
        print(f"warning: signing key {p} is readable by others (chmod 600 it)", file=sys.stderr)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:                                   # encrypted: needs a passphrase
        pw = os.environ.get(PASSPHRASE_ENV)
        if pw is None:
            pw = getpass.getpass(f"passphrase of {p}: ")
        key = serialization.load_pem_private_key(data, password=pw.encode())
    except ValueError as e:
        raise SystemExit(f"signing key {p}: not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"signing key {p}: not an Ed25519 key ({type(key).__name__})")
    return key


def stale_files(models_dir: Path, manifest: dict) -> list[str]:
    """Listed files that are missing or do not match their sha256."""
    bad = []
    for name, entry in sorted((manifest.get("models") or {}).items()):
        f = models_dir / name
        if not f.is_file():
            bad.append(f"{name}: missing")
        elif sha256_file(f) != entry.get("sha256"):
            bad.append(f"{name}: sha256 differs from the manifest")
    return bad


def write_signature(models_dir: str | os.PathLike, keys, check_files: bool = True) -> dict:
    """Sign ``models_dir``/manifest.json with ``keys`` (private keys) and write manifest.sig
    atomically; the signature document. With ``check_files``, refuse a manifest whose files
    are missing or differ (a release signs what it ships)."""
    d = Path(models_dir)
    manifest = read_manifest(d)
    if check_files:
        bad = stale_files(d, manifest)
        if bad:
            raise SystemExit(f"refusing to sign {d / 'manifest.json'}: " + "; ".join(bad))
    doc = sign(manifest, keys)
    tmp = d / (SIGNATURE_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(d / SIGNATURE_FILE)
    return doc


def remove_signature(models_dir: str | os.PathLike) -> bool:
    """Delete a stale manifest.sig (the manifest changed); whether there was one."""
    p = Path(models_dir) / SIGNATURE_FILE
    try:
        p.unlink()
        return True
    except FileNotFoundError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.sign_manifest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="?", default=str(MODELS_DIR),
                    help="models folder with manifest.json (default: the repository's models/)")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--generate", metavar="PATH", help="write a new key pair (PATH, PATH.pub)")
    g.add_argument("--key", metavar="PATH", action="append",
                   help="private key to sign with (repeat for a second signature)")
    g.add_argument("--check", action="store_true",
                   help="verify the signature with the public keys of this build")
    a = ap.parse_args(argv)
    if a.generate:
        _, kid = generate_key(a.generate)
        print(f"private key: {a.generate} (mode 0600; keep it offline, never in git)\n"
              f"public key:  {a.generate}.pub -- to trust it, add this line to RELEASE_KEYS in "
              f"device/models/trusted_keys.py (a reviewed change):\n"
              f"    {Path(a.generate + '.pub').read_text().strip()}")
        return 0
    d = Path(a.models)
    if a.check:
        try:
            load_manifest(d)
        except ModelError as e:
            print(f"FAIL {e}", file=sys.stderr)
            return 1
        doc = json.loads((d / SIGNATURE_FILE).read_text())
        ok = [s["key_id"] for s in doc["signatures"] if s["key_id"] in package_keys()]
        print(f"OK {d / 'manifest.json'} signed by trusted key {', '.join(ok)}")
        return 0
    doc = write_signature(d, [load_private_key(k) for k in a.key])
    kids = [s["key_id"] for s in doc["signatures"]]
    print(f"signed {d / 'manifest.json'} -> {d / SIGNATURE_FILE} with key {', '.join(kids)}")
    if not set(kids) & set(package_keys()):
        print(f"warning: no key of {', '.join(kids)} is in device/models/trusted_keys.py: "
              f"the gate refuses these models until one is", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

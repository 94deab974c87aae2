"""The store and the device key of a configured unit: opened as ``[paths]`` says, made once.

``open_configured_store(cfg)`` is how every command and the gate open the store:

- the key exists: the store opens (and is made, empty, when missing -- a deployed unit with
  ``create_key = false`` can still start from an empty store);
- the key is missing and the store exists: refused -- a new key cannot open a store sealed under
  the old one, and writing one beside it would only hide the real problem (a lost or moved
  key);
- the key is missing and no store exists: made when ``paths.create_key`` is true, else refused
  with how to make one (``palmgate init``).

``provision(store, key)`` makes a new unit's key and empty sealed store, refusing to overwrite
either.
"""
from __future__ import annotations

from pathlib import Path

from device.store.store import StoreError, TemplateStore


def open_configured_store(cfg, **kw) -> TemplateStore:
    """``kw``: TemplateStore options (``allow_rollback`` for ``palmgate store accept-current``)."""
    from device.store.key_location import resolve_key_path
    from device.store.private_files import private_dirs, private_file, store_files, tighten
    store = Path(cfg.paths.store)
    key = Path(resolve_key_path(cfg.paths.device_key, store))
    if not key.exists():
        if store.exists():
            raise StoreError(
                f"paths.device_key: {key} is missing, but the store {store} exists: it was "
                f"sealed under that key and no new key can open it. Put the unit's key back "
                f"(from its key backup), or restore a passphrase backup into a new unit made "
                f"with `palmgate init --dir DIR` (`palmgate restore FILE --passphrase-file "
                f"...`)")
        if not cfg.paths.create_key:
            raise StoreError(f"paths.device_key: {key} not found (paths.create_key is false): "
                             f"make the unit's key and empty store with `palmgate init --dir "
                             f"DIR`, or set paths.create_key = true")
    private_dirs(store.parent)
    private_file(store)                 # before SQLite: it gives -wal/-shm the same mode
    for f in store_files(store):
        tighten(f)                      # an existing database open to group/others
    return TemplateStore(store, key_path=key, create=True,
                         counter_path=cfg.paths.generation_counter or None, **kw)


def provision(store, key) -> dict:
    """A new device key (0600) and an empty sealed store; refuses to overwrite either."""
    from device.store.keys import load_device_key
    store, key = Path(store), Path(key)
    for p, what in ((key, "device key"), (store, "template store")):
        if p.exists():
            raise StoreError(f"{what} {p} already exists: refusing to overwrite it (move it "
                             f"away, or give another --dir)")
    from device.store.private_files import private_dirs
    private_dirs(key.parent)
    load_device_key(key, create=True)
    private_dirs(store.parent)
    with TemplateStore(store, key_path=key, create=True) as st:
        n = st.count()
    return {"device_key": str(key), "store": str(store), **n}

import os
import stat
import threading

import pytest

from device.store.keys import KEY_BYTES, DeviceKeyError, load_device_key


def test_created_on_first_use_private_and_stable(tmp_path):
    p = tmp_path / "keys" / "device.key"
    k = load_device_key(p, create=True)
    assert len(k) == KEY_BYTES == 32
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert load_device_key(p) == k                        # same key afterwards
    assert load_device_key(p, create=True) == k           # create never overwrites
    assert load_device_key(tmp_path / "other.key", create=True) != k
    assert not [q for q in p.parent.iterdir() if q.name != "device.key"]   # no temp files left


def test_missing_key_without_create(tmp_path):
    with pytest.raises(DeviceKeyError, match="not found"):
        load_device_key(tmp_path / "none.key")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_readable_by_others_is_refused(tmp_path, mode):
    p = tmp_path / "device.key"
    load_device_key(p, create=True)
    os.chmod(p, mode)
    with pytest.raises(DeviceKeyError, match="group/others"):
        load_device_key(p)


def test_wrong_length_refused(tmp_path):
    p = tmp_path / "device.key"
    p.write_bytes(b"short")
    os.chmod(p, 0o600)
    with pytest.raises(DeviceKeyError, match="5 bytes"):
        load_device_key(p)


def test_racing_first_use_yields_one_key(tmp_path):
    p = tmp_path / "device.key"
    keys, errors = [], []

    def go():
        try:
            keys.append(load_device_key(p, create=True))
        except Exception as e:                            # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=go) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and len(set(keys)) == 1

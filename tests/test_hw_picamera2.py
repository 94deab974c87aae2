"""The picamera2 adapter against a fake ``picamera2`` (and ``libcamera``) module planted in
sys.modules. The fake keeps picamera2's real call shapes (raspberrypi/picamera2, picamera2.py:
``Picamera2(camera_num=0, verbose_console=None, tuning=None, allocator=None)``,
``global_camera_info()`` with Id/Model/Location/Rotation/Num, ``load_tuning_file(tuning_file,
dir=None)``, ``create_video_configuration(main={}, lores=None, raw={}, transform=..., colour_space=
None, buffer_count=6, controls={}, display="main", encode="main", queue=True)``,
``configure(camera_config)``, ``start(config=None, show_preview=False)``, ``set_controls(controls)``,
``capture_request(wait=None, signal_function=None, flush=None)`` -> request with
``make_array(name)`` / ``get_metadata()`` / ``release()``, ``capture_sync_request(wait=None,
signal_function=None)``, ``stop()``, ``close()``) and refuses what the real one refuses: unknown
controls, odd sizes, unknown formats, an unreleased request used after release."""
import enum
import json
import sys
import types

import numpy as np
import pytest

from device.sources.base import FrameError, FrameSource
from device.errors import HardwareConfigError
from device.sources.picamera2 import (Picamera2Rig, Picamera2Source, list_cameras,
                                        load_tuning, resolve_camera)

IDS = ["/base/axi/pcie@1000120000/rp1/i2c@88000/imx219@10",
       "/base/axi/pcie@1000120000/rp1/i2c@80000/imx219@10",
       "/base/axi/pcie@1000120000/rp1/i2c@70000/ov9281@60"]
BASE_CONTROLS = {"ExposureTime": (26, 1000000, 20000), "AnalogueGain": (1.0, 16.0, 1.0),
                 "AeEnable": (False, True, True), "FrameRate": (1.0, 120.0, 30.0),
                 "AwbEnable": (False, True, True), "ColourGains": (0.0, 32.0, None)}


class SyncModeEnum(enum.IntEnum):
    Off = 0
    Server = 1
    Client = 2


class FakeRequest:
    def __init__(self, cam, n, ts):
        self.cam, self.n, self.ts = cam, n, ts
        self.released = False

    def make_array(self, name):
        assert not self.released, "make_array on a released request"
        stream = self.cam.camera_config[name]
        w, h = stream["size"]
        v = (self.cam.num * 40 + self.n) % 256
        if stream["format"] == "YUV420":
            a = np.full((h * 3 // 2, w), 128, np.uint8)
            a[:h] = v
            return a
        return np.full((h, w, 3), v, np.uint8)

    def get_metadata(self):
        assert not self.released, "get_metadata on a released request"
        c = self.cam.applied
        md = {"SensorTimestamp": self.ts, "ExposureTime": c.get("ExposureTime", 20000),
              "AnalogueGain": c.get("AnalogueGain", 1.0), "FrameDuration": 33333, "Lux": 400.0}
        if "SyncMode" in c:
            md["SyncReady"] = self.n >= 3
            md["SyncTimer"] = 120
        return md

    def release(self):
        assert not self.released, "request released twice"
        self.released = True
        self.cam.outstanding.discard(self)


class FakePicamera2:
    """Class-level state describes the attached cameras; instances are opened cameras."""
    cameras: list = []            # dicts: Id, Model, period_ns, offset_ns, sync, stall
    opened: list = []
    tuning_dirs: dict = {}        # dir -> {name: dict}

    @staticmethod
    def global_camera_info():
        return [{"Model": c["Model"], "Location": 2, "Rotation": 180, "Id": c["Id"], "Num": i}
                for i, c in enumerate(FakePicamera2.cameras)]

    @staticmethod
    def load_tuning_file(tuning_file, dir=None):
        dirs = [dir] if dir is not None else ["/usr/share/libcamera/ipa/rpi/pisp"]
        for d in dirs:
            if tuning_file in FakePicamera2.tuning_dirs.get(d, {}):
                return FakePicamera2.tuning_dirs[d][tuning_file]
        raise RuntimeError("Tuning file not found")

    def __init__(self, camera_num=0, verbose_console=None, tuning=None, allocator=None):
        info = FakePicamera2.cameras[camera_num]
        if info.get("busy"):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.num, self.info, self.tuning = camera_num, info, tuning
        self.camera_config = None
        self.applied: dict = {}
        self.started = self.closed = False
        self.outstanding: set = set()
        self.n = 0
        self.sync_waits = 0
        FakePicamera2.opened.append(self)

    @property
    def camera_controls(self):
        c = dict(BASE_CONTROLS)
        if self.info.get("sync"):
            c["SyncMode"] = (0, 2, 0)
        return c

    def _check_controls(self, controls):
        for k in controls:
            if k not in self.camera_controls:
                raise RuntimeError(f"Control {k} is not advertised by libcamera")

    def _make(self, use_case, main, lores, raw, transform, colour_space, buffer_count, controls,
              display, encode, queue):
        m = {"format": "XBGR8888", "size": (640, 480)}
        for k, v in main.items():
            if k not in ("format", "size"):
                raise ValueError(f"Bad key {k!r}: valid stream configuration keys are "
                                 f"('format', 'size')")
            m[k] = v
        return {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": m, "lores": lores,
                "raw": raw, "controls": dict(controls), "display": display, "encode": encode}

    def create_still_configuration(self, main={}, lores=None, raw={}, transform=None,
                                   colour_space=None, buffer_count=1, controls={}, display=None,
                                   encode=None, queue=True):
        return self._make("still", main, lores, raw, transform, colour_space, buffer_count,
                          controls, display, encode, queue)

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None,
                                   colour_space=None, buffer_count=6, controls={},
                                   display="main", encode="main", queue=True):
        return self._make("video", main, lores, raw, transform, colour_space, buffer_count,
                          controls, display, encode, queue)

    def configure(self, camera_config="preview"):
        main = camera_config["main"]
        if main["format"] not in ("XBGR8888", "XRGB8888", "RGB888", "BGR888", "YUV420"):
            raise RuntimeError("Bad format " + main["format"] + " in stream main")
        size = main["size"]
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in main stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")
        self._check_controls(camera_config["controls"])
        self.camera_config = camera_config
        self.applied.update(camera_config["controls"])

    def start(self, config=None, show_preview=False):
        assert self.camera_config is not None, "start before configure"
        self.started = True

    def set_controls(self, controls):
        self._check_controls(controls)
        self.applied.update(controls)

    def _next(self, wait):
        assert self.started, "capture before start"
        if self.info.get("stall"):
            raise TimeoutError(f"no frame within {wait} s")
        ts = self.info.get("offset_ns", 0) + self.n * self.info.get("period_ns", 33_333_333)
        r = FakeRequest(self, self.n, ts)
        self.n += 1
        self.outstanding.add(r)
        return r

    def capture_request(self, wait=None, signal_function=None, flush=None):
        return self._next(wait)

    def capture_sync_request(self, wait=None, signal_function=None):
        assert "SyncMode" in self.applied, "capture_sync_request without SyncMode"
        while True:
            r = self._next(wait)
            if r.get_metadata().get("SyncReady"):
                return r
            self.sync_waits += 1
            r.release()

    def stop(self):
        self.started = False

    def close(self):
        self.stop()
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = FakePicamera2
    lc = types.ModuleType("libcamera")
    lc.controls = types.SimpleNamespace(rpi=types.SimpleNamespace(SyncModeEnum=SyncModeEnum))
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    monkeypatch.setitem(sys.modules, "libcamera", lc)
    FakePicamera2.cameras = [{"Id": IDS[0], "Model": "imx219"},
                             {"Id": IDS[1], "Model": "imx219"},
                             {"Id": IDS[2], "Model": "ov9281"}]
    FakePicamera2.opened = []
    FakePicamera2.tuning_dirs = {}
    yield FakePicamera2
    for cam in FakePicamera2.opened:          # every request handed back to the camera
        assert not cam.outstanding, f"{len(cam.outstanding)} requests never released"


def test_module_imports_without_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)      # import picamera2 -> ImportError
    src = Picamera2Source(IDS[0])
    with pytest.raises(HardwareConfigError, match="python3-picamera2"):
        src.start()
    with pytest.raises(HardwareConfigError, match="system-site-packages"):
        list_cameras()


def test_camera_chosen_by_id_manual_exposure_grey(fake):
    src = Picamera2Source(IDS[1], size=(64, 48), grayscale=True, exposure_us=4000, gain=2.5)
    assert isinstance(src, FrameSource)
    src.start()
    cam = fake.opened[0]
    assert cam.num == 1 and cam.tuning is None
    cfg = cam.camera_config
    assert cfg["use_case"] == "video" and cfg["main"] == {"format": "YUV420", "size": (64, 48)}
    assert cfg["controls"] == {"AeEnable": False, "ExposureTime": 4000, "AnalogueGain": 2.5}
    frame, meta = src.capture()
    assert frame.shape == (48, 64) and frame.dtype == np.uint8 and frame[0, 0] == 40  # Y plane
    assert meta["camera_id"] == IDS[1] and meta["model"] == "imx219"
    assert meta["exposure_us"] == 4000 and meta["analogue_gain"] == 2.5
    assert meta["sensor_timestamp_ns"] == 0 and meta["index"] == 0
    src.set_exposure(exposure_us=8000)
    assert cam.applied["ExposureTime"] == 8000 and cam.applied["AeEnable"] is False
    _, meta = src.capture()
    assert meta["index"] == 1 and meta["exposure_us"] == 8000
    src.stop()
    assert cam.closed and src.describe()["running"] is False


def test_colour_still_and_id_suffix(fake):
    src = Picamera2Source("i2c@70000/ov9281@60", size=(32, 24), mode="still", warmup_frames=2)
    src.start()
    cam = fake.opened[0]
    assert cam.num == 2 and cam.camera_config["use_case"] == "still"
    assert cam.camera_config["controls"] == {}            # auto exposure left alone
    frame, meta = src.capture()
    assert frame.shape == (24, 32, 3) and meta["index"] == 0 and frame[0, 0, 0] == 82  # frame 2
    src.stop()


def test_resolve_camera_errors():
    infos = [{"Id": i} for i in IDS]
    assert resolve_camera(IDS[2], infos) == 2
    with pytest.raises(HardwareConfigError, match="not found"):
        resolve_camera("/base/nope", infos)
    with pytest.raises(HardwareConfigError, match="ambiguous"):
        resolve_camera("imx219@10", infos)
    with pytest.raises(HardwareConfigError, match="3 cameras attached"):
        resolve_camera(None, infos)
    with pytest.raises(HardwareConfigError, match="no camera found"):
        resolve_camera(IDS[0], [])
    assert resolve_camera(None, infos[:1]) == 0


def test_noir_tuning_by_name_and_by_path(fake, tmp_path):
    fake.tuning_dirs["/usr/share/libcamera/ipa/rpi/pisp"] = {
        "imx219_noir.json": {"version": 2.0, "target": "pisp", "algorithms": []}}
    src = Picamera2Source(IDS[0], size=(16, 16), tuning="imx219_noir.json")
    src.start()
    assert fake.opened[0].tuning == {"version": 2.0, "target": "pisp", "algorithms": []}
    src.stop()
    p = tmp_path / "custom_noir.json"
    p.write_text(json.dumps({"version": 2.0, "algorithms": [{"rpi.awb": {"bayes": 0}}]}))
    assert load_tuning(str(p))["algorithms"][0]["rpi.awb"] == {"bayes": 0}
    with pytest.raises(HardwareConfigError, match="not found"):
        Picamera2Source(IDS[0], tuning="imx999_noir.json").start()


def test_busy_camera_and_bad_config_are_config_errors(fake):
    fake.cameras[0]["busy"] = True
    with pytest.raises(HardwareConfigError, match="could not be opened"):
        Picamera2Source(IDS[0]).start()
    bad = Picamera2Source(IDS[1], size=(33, 24))
    with pytest.raises(HardwareConfigError, match="even"):
        bad.start()
    assert bad.cam is None and fake.opened[-1].closed        # not left open
    with pytest.raises(HardwareConfigError, match="not advertised"):
        Picamera2Source(IDS[1], controls={"NoSuchControl": 1}).start()
    with pytest.raises(ValueError):
        Picamera2Source(IDS[1], gain=0.5)


def test_stalled_camera_raises_frame_error(fake):
    fake.cameras[0]["stall"] = True
    src = Picamera2Source(IDS[0], size=(16, 16), frame_timeout_s=0.2)
    src.start()
    with pytest.raises(FrameError, match="no frame within 0.2 s"):
        src.capture()
    src.stop()
    with pytest.raises(FrameError, match="before start"):
        src.capture()


def test_rig_software_sync_matches_timestamps(fake):
    # camera 0 starts first: its queued frames are 0, 33.3, 66.7 ms; camera 1's first is at
    # 68.2 ms. No SyncMode listed: software matching drops camera 0's two stale frames.
    fake.cameras[1].update(offset_ns=68_200_000)
    rig = Picamera2Rig([Picamera2Source(IDS[0], size=(16, 12)),
                        Picamera2Source(IDS[1], size=(16, 12))], max_skew_ms=3.0)
    assert isinstance(rig, FrameSource)
    rig.start()
    frames, meta = rig.capture()
    assert frames.shape == (2, 12, 16, 3)
    assert meta["sync"] == "software" and meta["synced"] is True
    assert meta["skew_ns"] == 68_200_000 - 66_666_666 and meta["attempts"] == 2
    assert [v["sensor_timestamp_ns"] for v in meta["views"]] == [66_666_666, 68_200_000]
    assert all("SyncMode" not in c.applied for c in fake.opened)
    frames, meta = rig.capture()                        # stays matched afterwards
    assert meta["attempts"] == 0 and meta["skew_ns"] == 1_533_334
    rig.stop()
    assert all(c.closed for c in fake.opened)


def test_rig_reports_or_refuses_skew_it_cannot_remove(fake):
    fake.cameras[1].update(offset_ns=16_000_000)        # half a frame out of phase forever
    srcs = [Picamera2Source(IDS[0], size=(16, 12)), Picamera2Source(IDS[1], size=(16, 12))]
    rig = Picamera2Rig(srcs, max_skew_ms=5.0, max_attempts=4)
    rig.start()
    with pytest.raises(FrameError, match="ms apart"):
        rig.capture()
    rig.stop()
    rig = Picamera2Rig([Picamera2Source(IDS[0], size=(16, 12)),
                        Picamera2Source(IDS[1], size=(16, 12))],
                       max_skew_ms=5.0, max_attempts=4, strict=False)
    rig.start()
    _, meta = rig.capture_all()
    assert meta["synced"] is False and meta["skew_ms"] > 5.0
    assert rig.describe()["last_skew_ms"] == meta["skew_ms"]
    rig.stop()


def test_rig_uses_libcamera_sync_mode_when_offered(fake):
    for c in fake.cameras[:2]:
        c["sync"] = True
    rig = Picamera2Rig([Picamera2Source(IDS[0], size=(16, 12), frame_rate=30, name="left"),
                        Picamera2Source(IDS[1], size=(16, 12), frame_rate=30, name="right")])
    rig.start()
    server, client = fake.opened
    assert server.camera_config["controls"]["SyncMode"] == SyncModeEnum.Server
    assert client.camera_config["controls"]["SyncMode"] == SyncModeEnum.Client
    assert server.camera_config["controls"]["FrameRate"] == 30.0
    assert server.sync_waits == 3 and client.sync_waits == 3   # waited for SyncReady
    frames, meta = rig.capture()
    assert meta["sync"] == "libcamera" and meta["synced"]
    assert meta["views"][0]["sync_ready"] is True and meta["views"][0]["sync_timer_us"] == 120
    assert [v["name"] for v in rig.describe()["cameras"]] == ["left", "right"]
    assert rig.describe()["cameras"][1]["sync_role"] == "client"
    rig.stop()


def test_rig_required_libcamera_sync_missing_is_config_error(fake):
    fake.cameras[0]["sync"] = True                      # camera 2 (ov9281) has no SyncMode
    rig = Picamera2Rig([Picamera2Source(IDS[0]), Picamera2Source(IDS[2], name="ir")],
                       sync="libcamera")
    with pytest.raises(HardwareConfigError, match="ir list no SyncMode"):
        rig.start()
    assert all(c.closed for c in fake.opened)           # nothing left open
    with pytest.raises(ValueError, match="twice"):
        Picamera2Rig([Picamera2Source(IDS[0]), Picamera2Source(IDS[0])])


def test_rig_mixed_shapes_need_capture_all(fake):
    rig = Picamera2Rig([Picamera2Source(IDS[0], size=(16, 12)),
                        Picamera2Source(IDS[2], size=(8, 8), grayscale=True)])
    rig.start()
    frames, meta = rig.capture_all()
    assert [f.shape for f in frames] == [(12, 16, 3), (8, 8)]
    with pytest.raises(FrameError, match="capture_all"):
        rig.capture()
    rig.stop()


def test_camera_failing_mid_rig_releases_everything(fake):
    rig = Picamera2Rig([Picamera2Source(IDS[0], size=(16, 12)),
                        Picamera2Source(IDS[1], size=(16, 12), frame_timeout_s=0.1)])
    rig.start()
    rig.capture()
    fake.cameras[1]["stall"] = True                     # the cable comes loose
    with pytest.raises(FrameError, match="no frame"):
        rig.capture()
    fake.cameras[1]["stall"] = False                    # and is pushed back in
    _, meta = rig.capture()
    assert meta["index"] == 1
    rig.stop()


def test_open_camera_from_a_config_spec(fake):
    src = __import__("device.sources.picamera2", fromlist=["open_camera"]).open_camera(
        IDS[2] + "?size=32x24&exposure_us=3000&gain=4&grayscale=1&name=ir")
    assert (src.camera_id, src.size, src.exposure_us, src.gain, src.grayscale, src.name) == (
        IDS[2], (32, 24), 3000, 4.0, True, "ir")
    src.start()
    frame, meta = src.capture()
    assert frame.shape == (24, 32) and meta["name"] == "ir"
    src.stop()
    from device.sources.picamera2 import open_camera
    assert open_camera("").camera_id is None
    with pytest.raises(ValueError, match="unknown option 'iso'"):
        open_camera(IDS[0] + "?iso=100")
    with pytest.raises(ValueError, match="WxH"):
        open_camera(IDS[0] + "?size=640")


def test_numpy_abi_clash_names_the_fix(monkeypatch):
    class Broken(types.ModuleType):
        def __getattr__(self, name):
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")

    monkeypatch.setitem(sys.modules, "picamera2", Broken("picamera2"))
    with pytest.raises(HardwareConfigError, match="pip install simplejpeg"):
        Picamera2Source(IDS[0]).start()

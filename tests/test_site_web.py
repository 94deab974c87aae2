"""The service's admin page in a real headless browser (Debian's chromium): users, gates and
events are on the page it renders, with a revoke button per active user; the button's form
request revokes on every gate. ``PALMGATE_SITE_SCREENSHOT=docs/site_admin.png`` keeps the
screenshot (how docs/site_admin.png is made)."""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("chromium not installed (apt-get install chromium; tools/run_tests.sh does)",
                allow_module_level=True)
if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
    pytest.skip("mosquitto not installed", allow_module_level=True)

from device.site import service as S                 # noqa: E402
from device.site.provision import admin_token       # noqa: E402
from device.site.web import serve                   # noqa: E402
from test_site_e2e import Site, person, wait        # noqa: E402


def chromium(*args, timeout=60) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def site_web(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("siteweb"))
    httpd = serve(s.svc, "127.0.0.1", 0, admin_token(s.dir))
    yield s, httpd
    httpd.shutdown()
    s.close()


def test_admin_page_in_headless_chromium(site_web, tmp_path):
    s, httpd = site_web
    g1, g2 = s.gates["g1"], s.gates["g2"]
    for i, (uid, label) in enumerate((("alice", "Alice Martin"), ("bob", "Bob Chen"),
                                      ("carol", "Carol Diaz"))):
        g1.enrol_local(uid, person(40 + i), label=label).result(10)
    wait(lambda: {"alice", "bob", "carol"} <= set(s.users("g2")), what="enrolled on g2")
    s.svc.call(S.revoke, "bob")
    g2.submit(lambda x: x.store.audit.append("decision", decision="open", user_id="alice",
                                             terminal="g2")).result(5)
    wait(lambda: all(g["audit_records"] >= 1 for g in s.svc.call(S.snapshot)["gates"]),
         what="audit records at the service")
    token = admin_token(s.dir)
    url = f"http://127.0.0.1:{httpd.server_port}/?token={urllib.parse.quote(token)}"
    dom = chromium("--dump-dom", url).stdout
    for want in ("Users", "Gates", "Recent events", "alice", "Alice Martin", "carol", "g1",
                 "g2", "verified", "revoked"):
        assert want in dom, want
    assert dom.count(">revoke</button>") == 2            # alice and carol; bob is revoked
    shot = os.environ.get("PALMGATE_SITE_SCREENSHOT") or str(tmp_path / "admin.png")
    r = chromium(f"--screenshot={os.path.abspath(shot)}", "--window-size=1200,900", url)
    assert os.path.getsize(shot) > 10_000, r.stderr[-500:]
    # without the token: nothing
    assert "admin token required" in chromium("--dump-dom",
                                              url.split("?")[0]).stdout
    # the revoke button's request (its form: token + user_id) revokes carol everywhere
    form = urllib.parse.urlencode({"token": token, "user_id": "carol"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{httpd.server_port}/revoke", data=form)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200                       # followed the 303 back to the page
    for g in ("g1", "g2"):
        wait(lambda: "carol" not in s.users(g), what=f"carol revoked on {g}")
    assert chromium("--dump-dom", url).stdout.count(">revoke</button>") == 1

"""``palmgate site-service``: the management service and its admin page as one process, until
SIGTERM/SIGINT."""
from __future__ import annotations

import json
import threading

from device.site.provision import admin_token
from device.site.service import SiteService
from device.site.web import serve


def run_service(site_dir, web_port: int | None = None, host: str = "127.0.0.1") -> None:
    """``palmgate site-service``: the service and its admin page until SIGTERM/SIGINT."""
    import signal
    svc = SiteService(site_dir).start()
    port = web_port if web_port is not None else int(svc.info.get("admin_port", 8780))
    httpd = serve(svc, host, port, admin_token(site_dir))
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *a: stop.set())
    print(json.dumps({"site": svc.site, "admin": f"http://{host}:{httpd.server_port}/",
                      "broker": svc.info["broker"]}), flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        httpd.shutdown()
        svc.stop()

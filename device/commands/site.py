"""`palmgate site ... | site-service | site-sync | fleet-demo`: a site of many gates (docs/site.md)."""
from __future__ import annotations

import json
import sys

from device.commands.common import add_config, err, load_cfg


def cmd_init(a) -> int:
    from device.site.provision import init_site
    info = init_site(a.dir, a.site, [g for g in a.gates.split(",") if g], port=a.port,
                     host=a.host, admin_port=a.admin_port)
    print(json.dumps({"site": info["site"], "gates": sorted(info["gates"]), "dir": a.dir}))
    err(f"site {info['site']}: move {a.dir}/recovery/recovery.key OFF LINE now; copy "
        f"{a.dir}/gates/<G>/ onto gate <G> and add `palmgate site gate-config` to its config")
    return 0


def cmd_add_gate(a) -> int:
    from device.site.provision import add_gate
    info = add_gate(a.dir, a.gate)
    print(json.dumps({"gate": a.gate, "gates": sorted(info["gates"])}))
    err("reload the broker (SIGHUP; `palmgate site broker` rewrites its files at start) and "
        "run `palmgate site recover` to give the new gate every existing user")
    return 0


def cmd_gate_config(a) -> int:
    from device.site.provision import gate_section
    s = gate_section(a.dir, a.gate)
    print("[site]")
    for k, v in s.items():
        print(f"{k} = {json.dumps(v)}")
    return 0


def cmd_broker(a) -> int:
    """Mosquitto in the foreground with the site's configuration (systemd ExecStart=)."""
    import os
    from device.site.broker import mosquitto_binary, write_config
    conf = write_config(a.dir)
    os.execv(mosquitto_binary(), [mosquitto_binary(), "-c", str(conf)])
    return 0    # pragma: no cover - exec does not return


def cmd_service(a) -> int:
    from device.site.daemon import run_service
    run_service(a.site_dir, web_port=a.port, host=a.host)
    return 0


def cmd_sync(a) -> int:
    """The gate's sync client alone (the gate loop in another process, or none)."""
    import signal
    import threading
    from device.gate.gate import open_store
    from device.gate.pipeline import gate_feature
    from device.models.model import DEFAULT_MODELS_DIR
    from device.protect.defaults import DEFAULT_CONFIG
    from device.site.client import from_config
    cfg = load_cfg(a)
    if not cfg.site.enabled:
        raise ValueError("[site] enabled is false in this config")
    ext = gate_feature(cfg, cfg.paths.models or DEFAULT_MODELS_DIR)
    sync = from_config(cfg, lambda: open_store(cfg), DEFAULT_CONFIG, ext.importance).start()
    stop = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *x: stop.set())
    while not stop.wait(5.0):
        pass
    sync.stop()
    return 0


def cmd_recover(a) -> int:
    from device.protect.defaults import DEFAULT_CONFIG
    from device.recognition.cells import CellExtractor
    from device.site.provision import admin_token, load_site, recovery_key
    from device.site.recover import recover
    info = load_site(a.dir)
    url = a.url or f"http://127.0.0.1:{info.get('admin_port', 8780)}"
    r = recover(url, a.token or admin_token(a.dir), recovery_key(a.recovery_key), info,
                a.gate, DEFAULT_CONFIG, CellExtractor().importance)
    print(json.dumps(r))
    for x in r.get("skipped") or []:     # not enrolled on the gate; still a recovery item
        print(f"not recovered: {x['user_id']} ({x['error']})", file=sys.stderr)
    return 0


def cmd_fleet(a) -> int:
    import os
    import signal
    import sys
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # SIGTERM: stop the broker, the service and the gate processes on the way out
    signal.signal(signal.SIGTERM, lambda *x: sys.exit(143))
    from device.site.fleet import run_fleet
    r = run_fleet(gates=a.gates, users=a.users, sample=a.sample, measure=a.measure,
                  revokes=a.revokes, rate=a.rate, offline_changes=a.offline_changes,
                  out=a.out, keep=a.keep)
    print(json.dumps(r, indent=None if a.json else 2))
    return 0 if r.get("lost_changes") == 0 and r.get("broker_restart_survived") else 1


def register(sub) -> None:
    sp = sub.add_parser("site", help="provision a site of many gates (keys, broker, ACL), "
                                     "add a gate, recover users for it")
    ss = sp.add_subparsers(dest="site_cmd", metavar="SITE_COMMAND")
    p = ss.add_parser("init", help="a new site folder: keys, broker credentials, ACL")
    p.add_argument("--dir", required=True)
    p.add_argument("--site", required=True, help="site name (A-Z a-z 0-9 _ . -)")
    p.add_argument("--gates", required=True, help="comma-separated gate ids")
    p.add_argument("--host", default="127.0.0.1", help="broker address the gates use")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--admin-port", type=int, default=8780)
    p.set_defaults(fn=cmd_init)
    p = ss.add_parser("add-gate", help="provision one more gate")
    p.add_argument("--dir", required=True)
    p.add_argument("--gate", required=True)
    p.set_defaults(fn=cmd_add_gate)
    p = ss.add_parser("gate-config", help="print the [site] section of a gate's config")
    p.add_argument("--dir", required=True)
    p.add_argument("--gate", required=True)
    p.set_defaults(fn=cmd_gate_config)
    p = ss.add_parser("broker", help="run Mosquitto with the site's configuration")
    p.add_argument("--dir", required=True)
    p.set_defaults(fn=cmd_broker)
    p = ss.add_parser("recover", help="re-protect every user for a new gate (needs the "
                                      "site recovery key)")
    p.add_argument("--dir", required=True)
    p.add_argument("--gate", required=True)
    p.add_argument("--recovery-key", required=True)
    p.add_argument("--url", default=None, help="service admin URL (default: site.json's)")
    p.add_argument("--token", default=None, help="admin token (default: the site folder's)")
    p.set_defaults(fn=cmd_recover)

    p = sub.add_parser("site-service", help="the site's management service and admin page")
    p.add_argument("--site-dir", required=True)
    p.add_argument("--host", default="127.0.0.1", help="admin page address")
    p.add_argument("--port", type=int, default=None, help="admin page port (default: "
                                                          "site.json's admin_port)")
    p.set_defaults(fn=cmd_service)

    p = sub.add_parser("site-sync", help="a gate's site sync client alone ([site] section)")
    add_config(p)
    p.set_defaults(fn=cmd_sync)

    p = sub.add_parser("fleet-demo", help="a site on this machine: broker, service, N gate "
                                          "processes; enrolment/revocation latency, offline "
                                          "catch-up, broker restart")
    p.add_argument("--gates", type=int, default=4)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--sample", type=int, default=2, help="users rendered and put through the "
                                                         "real pipeline")
    p.add_argument("--measure", type=int, default=100, help="paced enrolments measured")
    p.add_argument("--revokes", type=int, default=50, help="paced revocations measured")
    p.add_argument("--rate", type=float, default=10.0, help="paced changes per second")
    p.add_argument("--offline-changes", type=int, default=1000)
    p.add_argument("--out", default=None, help="keep the site's files here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--json", action="store_true", help="one JSON line")
    p.set_defaults(fn=cmd_fleet)

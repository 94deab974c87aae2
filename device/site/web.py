"""The service's admin page and JSON API (stdlib ``http.server``; one page, no script).

    GET  /                 users, gates, recent events and audit records; a revoke button
                           per user
    GET  /api/state        the same as JSON
    POST /revoke           (form: user_id) the button; redirects back to /
    POST /api/revoke       {"user_id"}                   -> {"version", "issued", "gates"}
    POST /api/gates        {"user_id", "gates": [...] | null}
    POST /api/user         {"user_id", and some of "enabled", "valid_from", "valid_until"
                           (UNIX times or null), "schedule" ([[weekday, "HH:MM", "HH:MM"],
                           ...]), "holidays" ("closed"|"allow")}  -> {"version", "attrs"}
    POST /api/holidays     {"holidays": {"YYYY-MM-DD": "label", ...}} replaces the site's
                           list                          -> {"version", "gates"}
    GET  /api/recovery?gate=G                            -> recovery copies for gate G
    POST /api/recovered    {"gate", "items": [...], "skipped": [...]}  (``palmgate site
                           recover``; skipped: copies that did not open, recorded)
    POST /api/sync-gates   re-read site.json (a gate was added), send the roster

Every request carries the admin token (``service/admin.token``): ``Authorization: Bearer``,
or ``?token=`` / a form field for the page. Bind to localhost or a management network only.
"""
from __future__ import annotations

import hmac
import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from device.site import access as A
from device.site import service as S

_CSS = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:1.4em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#eef}.revoked{color:#a00}.ok{color:#070}.bad{color:#a00;font-weight:bold}
button{background:#c33;color:#fff;border:0;padding:2px 10px;border-radius:3px}"""


def _t(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def render(state: dict, token: str) -> str:
    e = html.escape
    rows = []
    for u in state["users"]:
        cls = "revoked" if u["state"] == "revoked" else ""
        btn = "" if u["state"] == "revoked" else (
            f'<form method="post" action="/revoke" style="margin:0">'
            f'<input type="hidden" name="token" value="{e(token)}">'
            f'<input type="hidden" name="user_id" value="{e(u["user_id"])}">'
            f'<button type="submit">revoke</button></form>')
        gates = "all" if u["gates"] is None else ", ".join(u["gates"])
        access = ", ".join(f"{k} {json.dumps(v)}" for k, v in sorted(u["attrs"].items()))
        rows.append(f'<tr class="{cls}"><td>{e(u["user_id"])}</td><td>{e(u["label"] or "")}'
                    f'</td><td>{e(u["state"])}</td><td>{u["version"]}</td><td>'
                    f'{e(u["enrolled_from"] or "")}</td><td>{e(gates)}</td><td>'
                    f'{_t(u["updated"])}</td><td>{e(access)}</td><td>{btn}</td></tr>')
    grows = []
    for g in state["gates"]:
        st = g["store"] or {}
        chain = g["audit_chain"]
        grows.append(f'<tr><td>{e(g["gate_id"])}</td><td class="{"ok" if g["online"] else "bad"}'
                     f'">{"online" if g["online"] else "offline"}</td><td>{_t(g["last_seen"])}'
                     f'</td><td>{g["applied"]} / {g["changes"]}</td><td>{st.get("users", "-")}'
                     f'</td><td>{g["audit_records"]}</td><td class="'
                     f'{"ok" if chain == "verified" else "bad"}">{e(chain)}</td></tr>')
    ev = [f'<tr><td>{_t(x["ts"])}</td><td>{e(x["kind"])}</td><td>{e(x["text"])}</td></tr>'
          for x in state["events"][:20]]
    au = [f'<tr><td>{_t(x["ts"])}</td><td>{e(x["gate"])}</td><td>{x["seq"]}</td><td>'
          f'{e(x["kind"])}</td><td>{e(json.dumps(x["payload"]))}</td></tr>'
          for x in state["audit"][:20]]
    n_act = sum(u["state"] == "active" for u in state["users"])
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>PalmGate site {e(state["site"])}</title><style>{_CSS}</style></head><body>
<h1>PalmGate site <i>{e(state["site"])}</i>: {n_act} active users, {len(state["gates"])} gates</h1>
<h2 id="users">Users</h2><table><tr><th>user</th><th>label</th><th>state</th><th>version</th>
<th>enrolled at</th><th>may open</th><th>updated</th><th>access times</th><th></th></tr>
{"".join(rows)}</table>
<h2 id="holidays">Site holidays</h2><p>{e(", ".join(f"{d} {x}".strip() for d, x in
                                          state["holidays"].items()) or "none")}</p>
<h2 id="gates">Gates</h2><table><tr><th>gate</th><th>link</th><th>last seen</th>
<th>changes applied</th><th>users in store</th><th>audit records</th><th>audit chain</th></tr>
{"".join(grows)}</table>
<h2 id="events">Recent events</h2><table><tr><th>time</th><th>kind</th><th>what</th></tr>
{"".join(ev)}</table>
<h2 id="audit">Recent audit records from the gates</h2><table><tr><th>time</th><th>gate</th>
<th>seq</th><th>kind</th><th>record</th></tr>{"".join(au)}</table></body></html>"""


def serve(svc, host: str, port: int, token: str) -> ThreadingHTTPServer:
    """Start the admin server on a thread; ``.shutdown()`` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _authorised(self, form=None) -> bool:
            got = self.headers.get("Authorization", "")
            got = got[7:] if got.startswith("Bearer ") else ""
            if not got:
                got = (parse_qs(urlparse(self.path).query).get("token") or [""])[0]
            if not got and form:
                got = (form.get("token") or [""])[0]
            return bool(got) and hmac.compare_digest(got.encode(), token.encode())

        def _send(self, code: int, body, ctype="application/json") -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _json(self, code, obj) -> None:
            self._send(code, json.dumps(obj))

        def do_GET(self):
            u = urlparse(self.path)
            if not self._authorised():
                return self._json(401, {"error": "admin token required"})
            try:
                if u.path == "/":
                    return self._send(200, render(svc.call(S.snapshot), token),
                                      "text/html; charset=utf-8")
                if u.path == "/api/state":
                    return self._json(200, svc.call(S.snapshot))
                if u.path == "/api/recovery":
                    gate = (parse_qs(u.query).get("gate") or [""])[0]
                    return self._json(200, svc.call(S.recovery_items, gate))
            except Exception as e:      # noqa: BLE001 - an error page, never a crash
                return self._json(500, {"error": f"{type(e).__name__}: {e}"})
            return self._json(404, {"error": "not found"})

        def do_POST(self):
            u = urlparse(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(n, 64 << 20))
            form = parse_qs(raw.decode(errors="replace")) if u.path == "/revoke" else None
            if not self._authorised(form):
                return self._json(401, {"error": "admin token required"})
            try:
                if u.path == "/revoke":
                    svc.call(S.revoke, (form.get("user_id") or [""])[0])
                    self.send_response(303)
                    self.send_header("Location", f"/?token={token}")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                body = json.loads(raw or b"{}")
                if u.path == "/api/revoke":
                    return self._json(200, svc.call(S.revoke, body["user_id"]))
                if u.path == "/api/gates":
                    return self._json(200, svc.call(S.set_gates, body["user_id"],
                                                    body.get("gates")))
                if u.path == "/api/user":
                    uid = body.pop("user_id")
                    return self._json(200, svc.call(A.update_user, uid, body))
                if u.path == "/api/holidays":
                    return self._json(200, svc.call(A.set_holidays, body["holidays"]))
                if u.path == "/api/recovered":
                    return self._json(200, svc.call(S.add_recovered, body["gate"],
                                                    body["items"], body.get("skipped")))
                if u.path == "/api/sync-gates":
                    return self._json(200, svc.call(S.sync_gates))
            except (KeyError, ValueError) as e:
                return self._json(400, {"error": str(e)})
            except Exception as e:      # noqa: BLE001
                return self._json(500, {"error": f"{type(e).__name__}: {e}"})
            return self._json(404, {"error": "not found"})

    httpd = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="site-web").start()
    return httpd

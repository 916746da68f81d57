"""A small stand-in for Grafana's annotation HTTP API (Grafana itself cannot be installed on these machines).

Follows the requests grafana-client sends (shared/reference/local-services.md §7): `GET /api/frontend/settings`,
`GET /api/health`, `POST/GET /api/annotations`, `PUT/PATCH/DELETE /api/annotations/{id}`; bearer-token auth
(401 otherwise); 400 for an empty text. `/_log` lists the requests it saw. `answer_delay` makes creates slow.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class GrafanaStandIn:
    def __init__(self, token: str = "testtoken", port: int = 0) -> None:
        self.token = token
        self.annotations: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        # seconds a create waits, after storing, before it answers: a Grafana slower than its client's timeout
        self.answer_delay = 0.0
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def _send(self, code: int, obj: Any) -> None:
                b = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length", 0))
                return json.loads(self.rfile.read(n)) if n else None

            def _auth(self) -> bool:
                return self.headers.get("Authorization") == f"Bearer {outer.token}"

            def _record(self, body: Any = None) -> None:
                outer.log.append(
                    {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )

            def do_GET(self) -> None:
                u = urlparse(self.path)
                q = parse_qs(u.query)
                self._record()
                if u.path == "/api/health":
                    return self._send(200, {"database": "ok", "version": "10.4.0"})
                if u.path == "/api/frontend/settings":
                    return self._send(200, {"buildInfo": {"version": "10.4.0", "edition": "Open Source"}})
                if not self._auth():
                    return self._send(401, {"message": "Unauthorized"})
                if u.path == "/api/annotations":
                    res = list(outer.annotations)
                    if "tags" in q:
                        res = [a for a in res if set(q["tags"]) <= set(a["tags"])]
                    return self._send(200, sorted(res, key=lambda a: -a["time"]))
                self._send(404, {"message": "Not found"})

            def do_POST(self) -> None:
                body = self._body()
                self._record(body)
                if not self._auth():
                    return self._send(401, {"message": "Unauthorized"})
                if self.path != "/api/annotations":
                    return self._send(404, {"message": "Not found"})
                if not body or not body.get("text"):
                    return self._send(400, {"message": "text field should not be empty"})
                with outer.lock:
                    aid = len(outer.annotations) + 1
                    t = int(time.time() * 1000)
                    outer.annotations.append(
                        {
                            "id": aid,
                            "time": body.get("time") or t,
                            "timeEnd": body.get("timeEnd") or body.get("time") or t,
                            "tags": body.get("tags") or [],
                            "text": body["text"],
                            "dashboardUID": body.get("dashboardUID"),
                            "created": t,
                            "updated": t,
                        }
                    )
                if outer.answer_delay:
                    time.sleep(outer.answer_delay)
                self._send(200, {"id": aid, "message": "Annotation added"})

            def do_PUT(self) -> None:
                body = self._body()
                self._record(body)
                if not self._auth():
                    return self._send(401, {"message": "Unauthorized"})
                aid = int(self.path.rsplit("/", 1)[1])
                for a in outer.annotations:
                    if a["id"] == aid:
                        a.update(
                            {
                                "time": body.get("time") or a["time"],
                                "timeEnd": body.get("timeEnd") or a["timeEnd"],
                                "tags": body.get("tags") or [],
                                "text": body.get("text") or a["text"],
                                "updated": int(time.time() * 1000),
                            }
                        )
                        return self._send(200, {"message": "Annotation updated"})
                self._send(404, {"message": "Annotation not found"})

            do_PATCH = do_PUT

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> GrafanaStandIn:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

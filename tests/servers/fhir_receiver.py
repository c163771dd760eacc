"""A minimal FHIR transaction receiver for tests: enforces ifNoneExist, persists to a file.

Usage: python fhir_receiver.py PORT STORE [--die-after N]. POST / with a transaction Bundle:
each POST entry with ``ifNoneExist=identifier=system|value`` creates the resource unless one
with that identifier exists (then 200 with the existing one); each PUT entry upserts by id.
Every create is appended to STORE (JSON lines, fsynced) before the reply. ``--die-after N``:
the process exits abruptly after its Nth create, mid-transaction, without replying (a crash).
Not a FHIR server: it checks what the fleet's push relies on, nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PORT, STORE = int(sys.argv[1]), sys.argv[2]
DIE_AFTER = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--die-after" else None
by_identifier: dict[str, str] = {}
creates = 0
if os.path.exists(STORE):
    with open(STORE) as f:
        for line in f:
            row = json.loads(line)
            if row["key"]:
                by_identifier[row["key"]] = row["id"]


def _persist(row: dict[str, object]) -> None:
    global creates
    with open(STORE, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    creates += 1
    if DIE_AFTER is not None and creates >= DIE_AFTER:
        os._exit(3)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("resourceType") != "Bundle" or body.get("type") != "transaction":
            return self._reply(400, {"resourceType": "OperationOutcome"})
        out = []
        for entry in body["entry"]:
            request, resource = entry["request"], entry["resource"]
            if request["method"] == "POST":
                (key,) = parse_qs(request["ifNoneExist"])["identifier"]
                if key in by_identifier:
                    out.append({"response": {"status": "200 OK", "location": by_identifier[key]}})
                    continue
                rid = f"{request['url']}/{uuid.uuid4()}"
                by_identifier[key] = rid
                _persist({"key": key, "id": rid, "resource": resource})
                out.append({"response": {"status": "201 Created", "location": rid}})
            else:  # PUT Type/id: upsert
                _persist({"key": "", "id": request["url"], "resource": resource})
                out.append({"response": {"status": "200 OK", "location": request["url"]}})
        self._reply(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": out})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print("ready", flush=True)
    server.serve_forever()

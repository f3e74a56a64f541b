"""A webhook receiver written as a plant's integrator would: Python's standard library only,
checking MANTIS's signature with `hmac` the way the README tells receivers to.

    python3 webhook_receiver.py SECRET [PORT]

Prints `listening <port>` once ready, then one JSON line per POST received:
`{"path", "event", "delivery", "signatureValid", "fresh", "status", "body"}`. The answer is
chosen by the event's message (alerts) or description (work orders): one containing
`[answer:NNN]` is always answered NNN, `[answer:NNN-once]` NNN the first time and 204
afterwards; anything else 204. A request with a bad signature is answered 401.
"""

import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = sys.argv[1].encode()
TOLERANCE_SECS = 300
seen_once = set()
lock = threading.Lock()


def verify(header, body):
    """The receiver's check: `t=<unix>,v1=<hex hmac-sha256 of "<t>.<body>">`, any `v1` matching
    (there are two while MANTIS's secret is rotated)."""
    items = [p.split("=", 1) for p in header.split(",") if "=" in p]
    t = next((v for k, v in items if k == "t"), "")
    expected = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    valid = any(hmac.compare_digest(expected, v) for k, v in items if k == "v1")
    fresh = t.isdigit() and abs(time.time() - int(t)) <= TOLERANCE_SECS
    return valid, fresh


def chosen_answer(doc):
    data = doc.get("data", {})
    text = data.get("message") or data.get("description") or ""
    if "[answer:" not in text:
        return 204
    code = text.split("[answer:", 1)[1].split("]", 1)[0]
    if code.endswith("-once"):
        with lock:
            if doc["id"] in seen_once:
                return 204
            seen_once.add(doc["id"])
        return int(code[: -len("-once")])
    return int(code)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        valid, fresh = verify(self.headers.get("X-Mantis-Signature", ""), body)
        # Only a signed body is read.
        doc = json.loads(body) if valid else {}
        status = chosen_answer(doc) if valid and fresh else 401
        with lock:
            print(
                json.dumps(
                    {
                        "path": self.path,
                        "event": self.headers.get("X-Mantis-Event"),
                        "delivery": self.headers.get("X-Mantis-Delivery"),
                        "contentType": self.headers.get("Content-Type"),
                        "traceparent": self.headers.get("traceparent"),
                        "signatureValid": valid,
                        "fresh": fresh,
                        "status": status,
                        "body": doc,
                    }
                ),
                flush=True,
            )
        self.send_response(status)
        reply = b"" if status == 204 else json.dumps({"status": status}).encode()
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0), Receiver)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()

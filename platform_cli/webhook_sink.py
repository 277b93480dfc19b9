"""A local webhook receiver for `platform local`: the notifier's generic-webhook channel posts here.

Every POST body is appended as one JSON line to the output file and answered 204, so the demo
can count delivered notifications from the file. `GET /healthz` answers 200 for the readiness wait.

    python -m platform_cli.webhook_sink --port 9000 --out deliveries.jsonl
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType


def make_handler(out: Path, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                record = json.loads(body)
            except ValueError:
                record = {"raw": body.decode("utf-8", errors="replace")}
            line = json.dumps({"path": self.path, "body": record}, sort_keys=True)
            with lock, out.open("a", encoding="utf-8") as sink:
                sink.write(line + "\n")
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the output file is the record of what arrived."""

    return Sink


def count_deliveries(out: Path, event_type: str | None = None) -> int:
    """How many webhook calls the sink has recorded (of one envelope type, if given)."""
    if not out.exists():
        return 0
    with out.open(encoding="utf-8") as sink:
        lines = [line for line in sink if line.strip()]
    if event_type is None:
        return len(lines)
    return sum(1 for line in lines if _body_type(line) == event_type)


def _body_type(line: str) -> str | None:
    try:
        body = json.loads(line).get("body")
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.out, threading.Lock()))

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

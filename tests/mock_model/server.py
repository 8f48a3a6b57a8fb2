#!/usr/bin/env python3
"""Scripted mock model server for driving real executor CLIs offline (stdlib only).

Speaks, on one port:
  * Anthropic Messages API   POST /v1/messages[?beta=true] (SSE or JSON), /v1/messages/count_tokens
  * OpenAI Responses API     POST /v1/responses (SSE)                         -> codex
  * OpenAI chat completions  POST /v1/chat/completions (SSE or JSON)          -> qwen, aider, opencode
  * Gemini                   POST /v1beta/models/<m>:generateContent, :streamGenerateContent,
                             :countTokens                                     -> gemini
  * GET /v1/models and anything else: a harmless empty answer (logged).

Behaviour comes from a scenario file (JSON, see tests/mock_model/scenarios/README.md). The
server is stateless: it picks the next scripted turn by counting the tool results already in
the request's history, so any number of CLIs (or retries) can share one server.

usage: server.py --scenario FILE [--port 0] [--port-file PATH] [--log PATH] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenario as sc  # noqa: E402
import wire  # noqa: E402

_LOG_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "codencer-mock-model/1"

    # Set on the class by main().
    scenario: sc.Scenario
    log_path: str | None = None

    def log_message(self, fmt, *args):  # silence the default stderr access log
        pass

    def _log(self, entry: dict) -> None:
        if not self.log_path:
            return
        with _LOG_LOCK, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def do_GET(self):
        self._dispatch("GET", b"")

    def do_HEAD(self):
        self._dispatch("HEAD", b"")

    def do_POST(self):
        self._dispatch("POST", self._read_body())

    def _dispatch(self, method: str, raw: bytes) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")[:2000]}
        entry = {"method": method, "path": self.path, "body": body,
                 "headers": {k.lower(): v for k, v in self.headers.items()
                             if k.lower() in ("user-agent", "content-type", "accept",
                                              "anthropic-version", "anthropic-beta")}}
        try:
            reply = wire.route(method, url.path, query, body, self.scenario)
        except Exception as exc:  # a bug in the mock must not hang the CLI
            reply = wire.Reply.json(500, {"error": {"message": f"mock error: {exc!r}",
                                                    "type": "mock_error"}})
        entry.update(reply.meta)
        entry["status"] = reply.status
        self._log(entry)
        self._send(reply, method == "HEAD")

    def _send(self, reply: "wire.Reply", head_only: bool) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        if reply.events is not None:
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in reply.events:
                self.wfile.write(chunk)
                self.wfile.flush()
            self.close_connection = True
            return
        data = reply.body or b""
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the chosen port here (atomically) once listening")
    ap.add_argument("--log", help="append one JSON line per request here")
    args = ap.parse_args(argv)

    Handler.scenario = sc.load(args.scenario)
    Handler.log_path = args.log
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"mock model listening on http://{args.host}:{port} "
          f"scenario={args.scenario}", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

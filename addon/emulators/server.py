"""Threaded HTTP/1.1 scaffolding shared by the emulators: parsing, recording, control endpoints, streaming."""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CONTROL_PREFIX = "/_emulator/"


@dataclass
class Request:
    method: str
    raw_path: str  # the request target exactly as received, percent-encoding and query included
    headers: dict[str, str]  # lowercased names; repeated headers joined with ", "
    header_items: list[tuple[str, str]]  # as received, original case and order
    body: bytes

    @property
    def path(self) -> str:
        """Path without the query, still percent-encoded."""
        return urlsplit(self.raw_path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.raw_path).query, keep_blank_values=True)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """Parsed JSON body; raises ValueError when the body is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Chunk:
    """One piece of a streamed body. `split` writes it in two flushed halves to exercise reassembly."""

    data: bytes
    delay: float = 0.0
    split: bool = False


@dataclass
class StreamResponse:
    status: int
    headers: dict[str, str]
    chunks: Iterable[Chunk]


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    hdrs = {"content-type": "application/json"}
    hdrs.update(headers or {})
    return Response(status, json.dumps(obj).encode(), hdrs)


class Emulator:
    """Base class: one provider's behaviour behind one server."""

    name = "emulator"

    def handle(self, req: Request) -> Response | StreamResponse:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}

    def reset(self) -> None:
        """Clear counters (not issued credentials)."""


def _body_for_record(req: Request) -> Any:
    if not req.body:
        return None
    try:
        return req.json()
    except ValueError:
        return req.body.decode("utf-8", errors="replace")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up on an idle keep-alive connection is normal, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class EmulatorServer:
    """Serves one Emulator on 127.0.0.1 from a daemon thread and records every non-control request."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.httpd = _QuietServer((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"emulator-{emulator.name}", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmulatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, req: Request) -> None:
        entry = {
            "method": req.method,
            "path": req.raw_path,
            "headers": dict(req.headers),
            "body": _body_for_record(req),
        }
        with self._lock:
            self._records.append(entry)

    def recorded(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
        self.emulator.reset()

    def control(self, req: Request) -> Response:
        name = req.path[len(CONTROL_PREFIX) :]
        if name == "requests" and req.method == "GET":
            return json_response(200, self.recorded())
        if name == "stats" and req.method == "GET":
            return json_response(200, {"requests": len(self.recorded()), **self.emulator.stats()})
        if name == "reset" and req.method == "POST":
            self.reset()
            return json_response(200, {"ok": True})
        return json_response(404, {"error": f"unknown control endpoint {req.method} {req.path}"})


def _make_handler(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, delayed ACKs add ~40 ms per request.
        disable_nagle_algorithm = True
        server_version = "byok-emulator"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _dispatch(self) -> None:
            items = list(self.headers.items())
            lowered: dict[str, str] = {}
            for k, v in items:
                key = k.lower()
                lowered[key] = f"{lowered[key]}, {v}" if key in lowered else v
            req = Request(self.command, self.path, lowered, items, self._read_body())
            if req.path.startswith(CONTROL_PREFIX):
                self._write(server.control(req))
                return
            server.record(req)
            try:
                resp = server.emulator.handle(req)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                resp = json_response(500, {"error": {"message": "emulator crashed; see its stderr"}})
            if isinstance(resp, StreamResponse):
                self._write_stream(resp)
            else:
                self._write(resp)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        def _write(self, resp: Response) -> None:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            self.wfile.write(resp.body)
            self.wfile.flush()

        def _write_stream(self, resp: StreamResponse) -> None:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for chunk in resp.chunks:
                    if chunk.delay:
                        time.sleep(chunk.delay)
                    if chunk.split and len(chunk.data) > 1:
                        mid = len(chunk.data) // 2
                        self._write_chunk(chunk.data[:mid])
                        time.sleep(0.01)  # so the halves really arrive in separate reads
                        self._write_chunk(chunk.data[mid:])
                    else:
                        self._write_chunk(chunk.data)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _write_chunk(self, data: bytes) -> None:
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

    return Handler

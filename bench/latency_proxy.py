#!/usr/bin/env python3
"""An HTTP/1.1 proxy that puts a fixed latency in front of a local mock EC2 (moto) and counts calls.

moto answers in a few milliseconds; real EC2 takes ~100 ms per call. This proxy holds any number
of requests at once (asyncio, standard library only), waits --latency-ms for each, forwards it to
the upstream unchanged, and counts requests by operation (the form body's `Action=`, or `X-Amz-Target`).

    latency_proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--latency-ms 100]
                     [--max-upstream 100] [--stats-file FILE]

    GET  /__stats        {"total": N, "by_action": {"RunInstances": n, ...}}  (not forwarded, no delay)
    POST /__stats/reset  the same JSON as it was, then the counts go back to zero
    SIGTERM / SIGINT     writes the stats to --stats-file (if given) and exits 0

Clients keep their connection alive (one response at a time, each with Content-Length). Each
forwarded request uses a fresh upstream connection, closed after the response; the upstream's
response may be framed by Content-Length, chunked, or end at close. Only 127.0.0.1 is accepted for
--listen and --upstream: the proxy never talks to anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import urllib.parse
from collections import Counter

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# Per-connection headers: they describe one hop, so they are not passed on (RFC 9110 §7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
LOOPBACK = "127.0.0.1"


class BadRequest(Exception):
    """The client sent something that is not a well-formed HTTP/1.x request."""


# What a peer that breaks HTTP framing makes the readers raise.
FRAMING_ERRORS = (BadRequest, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


class Stats:
    """Request counts by EC2 operation."""

    def __init__(self) -> None:
        self.by_action: Counter[str] = Counter()

    def count(self, action: str) -> None:
        self.by_action[action] += 1

    def snapshot(self) -> dict:
        return {
            "total": sum(self.by_action.values()),
            "by_action": dict(sorted(self.by_action.items())),
        }

    def reset(self) -> dict:
        before = self.snapshot()
        self.by_action.clear()
        return before

    def write(self, path: str) -> None:
        """Writes the snapshot atomically, so a reader never sees half a file."""
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.snapshot(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)


class Message:
    """One parsed HTTP message head plus its body."""

    def __init__(self, start_line: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.start_line = start_line
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def split_host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected 127.0.0.1:PORT, got {text!r}")
    if host != LOOPBACK:
        raise argparse.ArgumentTypeError(f"only {LOOPBACK} is allowed, got {host!r}")
    return host, int(port)


def action_of(method: str, target: str, body: bytes, amz_target: str | None = None) -> str:
    """The operation of a request: `Action=` of the query API (EC2), or the `X-Amz-Target` header
    of the JSON API (SSM, e.g. `AmazonSSM.GetParameter`); others are named by method and path."""
    if amz_target:
        return amz_target.rpartition(".")[2]
    path, _, query = target.partition("?")
    for source in (body.decode("utf-8", "replace"), query):
        values = urllib.parse.parse_qs(source).get("Action")
        if values:
            return values[0]
    return f"{method} {path}"


async def read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]] | None:
    """Reads a start line and headers; None at a clean end of stream before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise BadRequest("connection closed inside a message head") from e
    except asyncio.LimitOverrunError as e:
        raise BadRequest("message head too large") from e
    lines = raw.decode("latin-1").split("\r\n")
    start_line = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"malformed header line {line!r}")
        headers.append((name, value.strip()))
    return start_line, headers


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailer fields, if any, end with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY_BYTES:
            raise BadRequest("body too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_body(reader: asyncio.StreamReader, msg_headers: Message, until_close: bool) -> bytes:
    """Reads a body framed by Transfer-Encoding: chunked, Content-Length, or (responses) close."""
    encoding = (msg_headers.header("transfer-encoding") or "").lower()
    if "chunked" in encoding:
        return await read_chunked(reader)
    length = msg_headers.header("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise BadRequest(f"bad Content-Length {length!r}")
        return await reader.readexactly(int(length))
    if until_close:
        return await reader.read(MAX_BODY_BYTES)
    return b""


def serialize(
    start_line: str, headers: list[tuple[str, str]], body: bytes, connection: str, head_only: bool = False
) -> bytes:
    """A message for the next hop: hop-by-hop headers replaced by `Connection: {connection}` and
    an exact Content-Length. `head_only` (the answer to HEAD) keeps the upstream's Content-Length
    and sends no body."""
    kept = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
    kept.append(("Connection", connection))
    if not head_only:
        kept = [(k, v) for k, v in kept if k.lower() != "content-length"]
        kept.append(("Content-Length", str(len(body))))
    head = start_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n"
    return head.encode("latin-1") + (b"" if head_only else body)


def simple_response(status: str, body: bytes, content_type: str) -> tuple[str, list[tuple[str, str]], bytes]:
    return f"HTTP/1.1 {status}", [("Content-Type", content_type)], body


def json_response(value: dict) -> tuple[str, list[tuple[str, str]], bytes]:
    body = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
    return simple_response("200 OK", body, "application/json")


class Proxy:
    def __init__(self, upstream: tuple[str, int], latency_s: float, max_upstream: int, stats: Stats) -> None:
        self.upstream = upstream
        self.latency_s = latency_s
        # moto's listen backlog is 128; more simultaneous connects get dropped SYNs and 1 s retries.
        self.upstream_slots = asyncio.Semaphore(max_upstream)
        self.stats = stats

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self.serve_one(reader, writer):
                pass
        except FRAMING_ERRORS as e:
            status, headers, body = simple_response("400 Bad Request", f"{e}\n".encode(), "text/plain")
            writer.write(serialize(status, headers, body, "close"))
        except ConnectionError:
            pass
        finally:
            try:
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serves one request on a client connection; False when the connection should end."""
        head = await read_head(reader)
        if head is None:
            return False
        start_line, headers = head
        parts = start_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise BadRequest(f"malformed request line {start_line!r}")
        method, target, version = parts
        request = Message(start_line, headers, b"")
        if (request.header("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.body = await read_body(reader, request, until_close=False)

        asked = (request.header("connection") or "").lower()
        keep_alive = "close" not in asked and (version == "HTTP/1.1" or "keep-alive" in asked)

        path = target.partition("?")[0]
        if path == "/__stats" and method == "GET":
            response = json_response(self.stats.snapshot())
        elif path == "/__stats/reset" and method == "POST":
            response = json_response(self.stats.reset())
        else:
            response = await self.respond(method, target, request)

        status, response_headers, body = response
        connection = "keep-alive" if keep_alive else "close"
        writer.write(serialize(status, response_headers, body, connection, head_only=method == "HEAD"))
        await writer.drain()
        return keep_alive

    async def respond(self, method: str, target: str, request: Message) -> tuple[str, list[tuple[str, str]], bytes]:
        """Counts the request, waits the latency and forwards it; a subclass may answer itself."""
        self.stats.count(action_of(method, target, request.body, request.header("x-amz-target")))
        await asyncio.sleep(self.latency_s)
        async with self.upstream_slots:
            return await self.forward(request, no_body=method == "HEAD")

    async def forward(self, request: Message, no_body: bool) -> tuple[str, list[tuple[str, str]], bytes]:
        """Sends the request upstream on a new connection and reads the whole response."""
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=MAX_HEAD_BYTES)
        except OSError as e:
            return simple_response("502 Bad Gateway", f"upstream: {e}\n".encode(), "text/plain")
        try:
            up_writer.write(serialize(request.start_line, request.headers, request.body, "close"))
            await up_writer.drain()
            while True:
                head = await read_head(up_reader)
                if head is None:
                    reason = b"upstream closed without a response\n"
                    return simple_response("502 Bad Gateway", reason, "text/plain")
                status_line, headers = head
                code = status_line.split(" ", 2)[1] if " " in status_line else ""
                if not code.startswith("1"):
                    break  # 1xx interim responses are skipped.
            response = Message(status_line, headers, b"")
            if no_body or code in ("204", "304"):
                body = b""
            else:
                body = await read_body(up_reader, response, until_close=True)
            return status_line, headers, body
        except (*FRAMING_ERRORS, ConnectionError) as e:
            return simple_response("502 Bad Gateway", f"upstream: {e}\n".encode(), "text/plain")
        finally:
            up_writer.close()
            try:
                await up_writer.wait_closed()
            except ConnectionError:
                pass


async def serve(proxy: Proxy, listen: tuple[str, int], stats_file: str | None, describe: str) -> None:
    """Serves until SIGTERM or SIGINT, then writes the stats. The first line on stderr says
    `NAME: listening on 127.0.0.1:PORT, ...` (`describe` completes it), for whoever started it."""
    server = await asyncio.start_server(
        proxy.handle_client, listen[0], listen[1], limit=MAX_HEAD_BYTES, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    name = os.path.basename(sys.argv[0]).removesuffix(".py")
    print(f"{name}: listening on {LOOPBACK}:{port}, upstream {proxy.upstream[0]}:{proxy.upstream[1]}, {describe}",
          file=sys.stderr, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Stats first: idle keep-alive clients must not delay them. Open connections are dropped
    # when asyncio.run cancels their handlers.
    if stats_file:
        proxy.stats.write(stats_file)
    server.close()


async def main_async(args: argparse.Namespace) -> None:
    proxy = Proxy(args.upstream, args.latency_ms / 1000.0, args.max_upstream, Stats())
    await serve(proxy, args.listen, args.stats_file, f"latency {args.latency_ms} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=split_host_port, required=True, help="127.0.0.1:PORT (0 picks one)")
    parser.add_argument("--upstream", type=split_host_port, required=True, help="127.0.0.1:PORT of moto")
    parser.add_argument(
        "--latency-ms", type=float, default=100.0, help="delay added to each request (default 100)"
    )
    parser.add_argument(
        "--max-upstream", type=int, default=100, help="upstream connections at once (default 100)"
    )
    parser.add_argument("--stats-file", help="where to write the stats JSON on SIGTERM/SIGINT")
    args = parser.parse_args()
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    if args.max_upstream < 1:
        parser.error("--max-upstream must be >= 1")
    if args.upstream[1] == 0:
        parser.error("--upstream needs a port")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

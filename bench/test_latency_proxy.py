#!/usr/bin/env python3
"""Tests of latency_proxy.py: framing, keep-alive, concurrency, stats, SIGTERM; and boto3 through moto.

Run with the project's venv: `.venv/bin/python bench/test_latency_proxy.py` (scripts/test does);
the moto test fails, saying how to install it, when moto_server is not next to the interpreter.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import latency_proxy  # noqa: E402  (the module under test, beside this file)

PROXY = os.path.join(HERE, "latency_proxy.py")
MOTO_SERVER = os.path.join(os.path.dirname(sys.executable), "moto_server")


class FakeUpstream(http.server.BaseHTTPRequestHandler):
    """Echoes the request; /chunked answers chunked, /close ends the body by closing."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply = json.dumps(
            {"path": self.path, "body": body.decode(), "x-test": self.headers.get("X-Test")}
        ).encode()
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(reply), 7):
                part = reply[i : i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


class UpstreamServer(http.server.ThreadingHTTPServer):
    # The default backlog of 5 drops concurrent connects, which then wait a 1 s SYN retry.
    request_queue_size = 128
    daemon_threads = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_moto(port: int) -> None:
    """Waits until a moto_server on `port` answers (at most 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_proxy(
    upstream_port: int, latency_ms: int, stats_file: str | None = None
) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, PROXY, "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream_port}",
           "--latency-ms", str(latency_ms)]
    if stats_file:
        cmd += ["--stats-file", stats_file]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"proxy did not start: {line!r}")
    return proc, int(match.group(1))


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()
    return code


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.upstream = UpstreamServer(("127.0.0.1", 0), FakeUpstream)
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()
        cls.stats_file = os.path.join(tempfile.mkdtemp(), "stats.json")
        cls.proxy, cls.port = start_proxy(cls.upstream.server_address[1], 100, cls.stats_file)

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.proxy.poll() is None:
            stop(cls.proxy)
        cls.upstream.shutdown()

    def setUp(self) -> None:
        self.call("POST", "/__stats/reset")

    def call(self, method: str, path: str, body: str = "", conn: http.client.HTTPConnection | None = None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request(method, path, body=body, headers={"X-Test": "kept",
                                                        "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        data = resp.read()
        if own:
            conn.close()
        return resp, data

    def test_forwards_body_headers_and_path(self) -> None:
        for path in ("/", "/chunked", "/close"):
            resp, data = self.call("POST", path, "Action=DescribeRegions&Version=2016-11-15")
            self.assertEqual(resp.status, 200, path)
            self.assertIsNotNone(resp.getheader("Content-Length"), path)
            self.assertIsNone(resp.getheader("Transfer-Encoding"), path)
            echoed = json.loads(data)
            self.assertEqual(echoed, {"path": path, "body": "Action=DescribeRegions&Version=2016-11-15",
                                      "x-test": "kept"})

    def test_client_connection_is_kept_alive(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.call("POST", "/", "Action=A", conn)
        sock = conn.sock
        for path in ("/chunked", "/close", "/"):
            resp, _ = self.call("POST", path, "Action=B", conn)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Connection"), "keep-alive")
            self.assertIs(conn.sock, sock, "the proxy closed a keep-alive connection")
        conn.close()

    def test_connection_close_is_honoured(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 8\r\n\r\nAction=C")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk  # ends only if the proxy closes the connection
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 "))
        self.assertIn(b"\r\nConnection: close\r\n", reply)

    def test_holds_many_requests_at_once(self) -> None:
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            statuses = pool.map(lambda _: self.call("POST", "/", "Action=X")[0].status, range(20))
            results = list(statuses)
        elapsed = time.monotonic() - start
        self.assertEqual(results, [200] * 20)
        self.assertGreaterEqual(elapsed, 0.1)
        self.assertLess(elapsed, 0.6, "20 requests of 100 ms each were not served concurrently")

    def test_stats_count_by_action_and_reset(self) -> None:
        self.call("POST", "/", "Action=RunInstances&Version=2016-11-15")
        self.call("POST", "/", "Version=2016-11-15&Action=RunInstances")
        self.call("POST", "/?Action=DescribeVolumes")
        self.call("GET", "/moto-api/")
        _, data = self.call("GET", "/__stats")
        expected = {"total": 4, "by_action": {"DescribeVolumes": 1, "GET /moto-api/": 1, "RunInstances": 2}}
        self.assertEqual(json.loads(data), expected)
        _, data = self.call("POST", "/__stats/reset")
        self.assertEqual(json.loads(data), expected)
        _, data = self.call("GET", "/__stats")
        self.assertEqual(json.loads(data), {"total": 0, "by_action": {}})

    def test_malformed_request_gets_400(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"NONSENSE\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 400 "))

    def test_zz_sigterm_writes_stats_file(self) -> None:
        self.call("POST", "/", "Action=TerminateInstances")
        self.assertEqual(stop(self.proxy), 0)
        with open(self.stats_file, encoding="utf-8") as f:
            self.assertEqual(json.load(f), {"total": 1, "by_action": {"TerminateInstances": 1}})


class ActionTest(unittest.TestCase):
    def test_operation_from_query_body_or_json_target(self) -> None:
        self.assertEqual(
            latency_proxy.action_of("POST", "/", b"Action=RunInstances&Version=2016-11-15"),
            "RunInstances",
        )
        self.assertEqual(
            latency_proxy.action_of("POST", "/", b"{}", "AmazonSSM.GetParameter"), "GetParameter"
        )
        self.assertEqual(latency_proxy.action_of("GET", "/moto-api/?x=1", b""), "GET /moto-api/")


class ArgumentsTest(unittest.TestCase):
    def test_only_loopback_upstream(self) -> None:
        for bad in ("10.0.0.1:80", "localhost:80", "0.0.0.0:80"):
            proc = subprocess.run([sys.executable, PROXY, "--listen", "127.0.0.1:0", "--upstream", bad],
                                  capture_output=True, text=True, timeout=10)
            self.assertEqual(proc.returncode, 2, bad)
            self.assertIn("only 127.0.0.1 is allowed", proc.stderr)

    def test_unreachable_upstream_is_502(self) -> None:
        proc, port = start_proxy(free_port(), 0)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/", body="Action=X")
            self.assertEqual(conn.getresponse().status, 502)
            conn.close()
        finally:
            stop(proc)


class MotoThroughProxyTest(unittest.TestCase):
    def test_boto3_concurrent_calls_through_proxy(self) -> None:
        self.assertTrue(
            os.path.exists(MOTO_SERVER),
            f"{MOTO_SERVER} is missing: run with the project's venv "
            "(python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5')",
        )
        import boto3
        import botocore.config

        moto_port = free_port()
        moto = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy, port = start_proxy(moto_port, 100)
        try:
            wait_for_moto(moto_port)
            ec2 = boto3.client("ec2", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{port}",
                               aws_access_key_id="testing", aws_secret_access_key="testing",
                               config=botocore.config.Config(max_pool_connections=20))
            ec2.describe_regions()  # the first call loads moto's EC2 backend (~1 s)
            start = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                list(pool.map(lambda _: ec2.describe_regions(), range(20)))
            self.assertLess(time.monotonic() - start, 1.0, "20 × 100 ms calls should overlap")
            with self.assertRaises(ec2.exceptions.ClientError) as err:
                ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])
            self.assertEqual(err.exception.response["Error"]["Code"], "InvalidInstanceID.NotFound")
            stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/__stats").read())
            expected = {"total": 22, "by_action": {"DescribeInstances": 1, "DescribeRegions": 21}}
            self.assertEqual(stats, expected)
        finally:
            stop(proxy)
            moto.terminate()
            moto.wait(timeout=10)


if __name__ == "__main__":
    unittest.main()

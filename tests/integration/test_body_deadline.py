"""The whole-body deadline: body_timeout bounds each pause of a request body, and the whole body
must arrive within twice body_timeout plus one second per 16 KiB it announces (a chunked body:
the route's body limit). A client that trickles one byte every 200 ms never pauses for
body_timeout, yet is answered 408 and closed at that total, whether its body is buffered for
validation or streamed to the upstream (whose connection, carrying the partial body, is then
closed)."""

import json
import select
import socket
import ssl
import threading
import time

import pytest

import harness
from harness import (assert_gateway_error, base_policy, build_request, is_closed, read_response,
                     send, tls_connect, wait_until)

BODY_TIMEOUT = 1.0
TOTAL = 2 * BODY_TIMEOUT  # for a body under 16 KiB
GAP = 0.2                 # the trickle: one byte every 200 ms, well inside body_timeout


class SilentUpstream:
    """A loopback upstream that reads requests and never answers: it records the bytes each
    connection carried and whether the gateway closed it."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = []  # [received bytes, closed by the gateway]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            record = [b"", False]
            with self.lock:
                self.connections.append(record)
            threading.Thread(target=self._read, args=(conn, record), daemon=True).start()

    def _read(self, conn, record):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                with self.lock:
                    if not data:
                        record[1] = True
                        return
                    record[0] += data

    def snapshot(self):
        with self.lock:
            return [(bytes(r[0]), r[1]) for r in self.connections]

    def reset(self):
        with self.lock:
            self.connections = []

    def stop(self):
        self.running = False
        self.listener.close()


@pytest.fixture(scope="module")
def env(certs):
    upstream = SilentUpstream()
    policy = base_policy(certs, f"127.0.0.1:{upstream.port}", server={"limits": {
        "body_timeout": "1s", "header_timeout": "5s", "idle_timeout": "5s",
        "max_body_bytes": "64KiB"}})
    policy["upstreams"] = {"silent": {"endpoints": [f"127.0.0.1:{upstream.port}"],
                                      "response_timeout": "30s", "retries": 0}}
    policy["routes"] = [
        {"name": "checked", "match": {"path_prefix": "/checked"}, "upstream": "silent",
         "validate": {"content_types": ["application/json"], "json_schema": "any.json"}},
        {"name": "small", "match": {"path_prefix": "/small"}, "upstream": "silent",
         "validate": {"max_body_bytes": "1KiB"}},
        {"name": "api", "match": {"path_prefix": "/"}, "upstream": "silent"},
    ]
    gw = harness.Gateway(policy, files={"any.json": json.dumps({"type": "object"})})
    yield gw, upstream
    gw.stop(timeout=3)
    upstream.stop()


def head(path, length=None, content_type="application/octet-stream"):
    headers = [("Content-Type", content_type)]
    headers.append(("Transfer-Encoding", "chunked") if length is None
                   else ("Content-Length", str(length)))
    return build_request("POST", path, headers=headers)


def answered(sock, wait):
    """Whether the gateway answered or closed within `wait` seconds. What arrives stays for
    read_response; TLS records that carry no data (session tickets) do not count."""
    if not (sock.pending() or select.select([sock], [], [], wait)[0]):
        return False
    sock.settimeout(0.0)
    try:
        data = sock.recv(65536)
    except ssl.SSLWantReadError:
        return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    finally:
        sock.settimeout(10)
    harness._buffer(sock).extend(data)
    return True


def trickle(sock, data, limit):
    """Sends `data` one byte every GAP seconds until the gateway answers (or closes), at most
    `limit` seconds. Returns (seconds from the first body byte to the answer, bytes sent)."""
    started = time.monotonic()
    sent = 0
    while sent < len(data):
        try:
            send(sock, data[sent:sent + 1])
        except (ssl.SSLError, ConnectionError, OSError):
            break
        sent += 1
        if answered(sock, GAP):
            break
        assert time.monotonic() - started < limit, "the trickled body was never cut"
    return time.monotonic() - started, sent


@pytest.mark.parametrize("path,length,body,content_type,streamed", [
    ("/stream", 100, b"x" * 100, "application/octet-stream", True),
    ("/small", None, b"a\r\n" + b"x" * 10 + b"\r\n" + b"5\r\n12345\r\n" * 20,
     "application/octet-stream", True),
    ("/checked", 100, b'{"a":"' + b"x" * 92 + b'"}', "application/json", False),
], ids=["streamed-content-length", "streamed-chunked", "buffered-for-validation"])
def test_trickled_body_is_cut_at_the_whole_body_deadline(env, path, length, body, content_type,
                                                         streamed):
    gw, upstream = env
    upstream.reset()
    assert len(body) * GAP > TOTAL * 3  # unbounded, the trickle would last far longer
    sock = tls_connect(gw.tls_port, timeout=10)
    try:
        send(sock, head(path, length, content_type))
        elapsed, sent = trickle(sock, body, limit=TOTAL + 3)
        response = read_response(sock, timeout=3)
        assert_gateway_error(response, 408, "request_timeout")
        # Cut by the total, not by a pause: every gap was GAP, and it lasted past body_timeout.
        assert TOTAL * 0.8 <= elapsed <= TOTAL + 2.0, f"cut after {elapsed:.2f}s"
        assert sent > BODY_TIMEOUT / GAP
        assert is_closed(sock)
    finally:
        sock.close()
    if streamed:
        # The upstream got the head and part of the body, and then its connection was closed.
        wait_until(lambda: upstream.snapshot() and all(c for _, c in upstream.snapshot()),
                   timeout=5, message="the upstream connection was not closed")
        [(received, _)] = upstream.snapshot()
        assert received.startswith(b"POST " + path.encode())
        assert len(received.split(b"\r\n\r\n", 1)[1]) < len(body)
    else:
        assert upstream.snapshot() == []  # a buffered body never reached the upstream
    # The access log is written asynchronously: wait for the line.
    wait_until(lambda: any(r.get("status") == 408 and r.get("reason") == "body_timeout"
                           and r.get("path") == path for r in gw.access_log()),
               timeout=5, message="no 408 body_timeout line in the access log")


def test_large_body_gets_a_second_per_16_kib(env):
    """A 48 KiB Content-Length adds 3 s to the 2 s: the trickle is cut at about 5 s."""
    gw, upstream = env
    upstream.reset()
    sock = tls_connect(gw.tls_port, timeout=10)
    try:
        send(sock, head("/stream", 48 * 1024))
        elapsed, _ = trickle(sock, b"y" * 1000, limit=TOTAL + 3 + 3)
        response = read_response(sock, timeout=3)
        assert_gateway_error(response, 408, "request_timeout")
        assert TOTAL + 3 - 0.5 <= elapsed <= TOTAL + 3 + 2.0, f"cut after {elapsed:.2f}s"
    finally:
        sock.close()


def test_body_within_the_whole_body_deadline_is_read(env):
    """Pauses shorter than body_timeout, the whole body within the total: forwarded whole."""
    gw, upstream = env
    upstream.reset()
    body = b"abcdef"
    sock = tls_connect(gw.tls_port, timeout=10)
    try:
        send(sock, head("/stream", len(body)))
        started = time.monotonic()
        for i in range(len(body)):
            time.sleep(GAP)  # 1.2 s in all: past body_timeout, inside the total
            send(sock, body[i:i + 1])
        assert time.monotonic() - started < TOTAL * 0.9
        wait_until(lambda: upstream.snapshot() and upstream.snapshot()[0][0].endswith(body),
                   timeout=5, message="the body did not reach the upstream whole")
    finally:
        sock.close()

"""server.limits: URI, header and body sizes (414 / 431 / 413), the header, body and keep-alive
timeouts (408 and closing), and the connection caps (closed at accept, before TLS)."""

import select
import socket
import ssl
import time

import pytest

import harness
from harness import (assert_gateway_error, base_policy, build_request, chunked, client_context,
                     is_closed, read_response, request, send, tls_connect, wait_until)

MAX_URI = 1024
MAX_HEADER_BYTES = 2048
MAX_HEADER_COUNT = 10
MAX_BODY = 4096
TIMEOUT = 1.0  # header_timeout, body_timeout and idle_timeout

LIMITS = {
    "max_uri_bytes": "1KiB",
    "max_header_bytes": "2KiB",
    "max_header_count": MAX_HEADER_COUNT,
    "max_body_bytes": "4KiB",
    "header_timeout": "1s",
    "body_timeout": "1s",
    "idle_timeout": "1s",
    "max_connections": 20,
    "max_connections_per_ip": 3,
}


def limits_policy(certs, upstream, **limits):
    return base_policy(certs, upstream, server={"limits": {**LIMITS, **limits}})


@pytest.fixture(scope="module")
def env(certs):
    """One upstream and one gateway with the small limits, shared by the size and timeout tests
    (each closes its connections, so the per-IP cap of 3 is never reached)."""
    upstream = harness.Upstream(name="core")
    try:
        gw = harness.Gateway(limits_policy(certs, upstream))
    except BaseException:
        upstream.stop()
        raise
    yield gw, upstream
    gw.stop(timeout=3)
    upstream.stop()


@pytest.fixture
def connect(env):
    """connect() -> a TLS connection to the shared gateway, closed after the test."""
    gw, _ = env
    opened = []

    def open_one():
        sock = tls_connect(gw.tls_port, timeout=5)
        opened.append(sock)
        return sock

    yield open_one
    for sock in opened:
        sock.close()


def targets(upstream):
    return [r["target"] for r in upstream.requests()]


def send_tolerant(sock, data):
    """Sends data; the gateway may close before all of it is read (it answers early)."""
    try:
        send(sock, data)
    except (ssl.SSLError, ConnectionError, OSError):
        pass


def head_with_header_bytes(total, count=2, target="/echo"):
    """A GET whose header lines (Host first, CRLFs included) take exactly `total` bytes, spread
    over `count` lines (Host and count - 1 padding headers)."""
    lines = [b"Host: localhost\r\n"]
    fillers = count - 1
    room = total - len(lines[0])
    for i in range(fillers):
        prefix = b"X-Pad-%d: " % i
        share = room // (fillers - i)
        value_len = share - len(prefix) - 2
        assert value_len >= 1, "header lines too short for the requested count"
        lines.append(prefix + b"v" * value_len + b"\r\n")
        room -= share
    assert room == 0
    head = b"GET " + target.encode() + b" HTTP/1.1\r\n" + b"".join(lines)
    assert sum(map(len, lines)) == total
    return head + b"\r\n"


def head_with_header_count(count):
    lines = [b"Host: localhost\r\n"] + [b"X-H-%d: %d\r\n" % (i, i) for i in range(count - 1)]
    return b"GET /echo HTTP/1.1\r\n" + b"".join(lines) + b"\r\n"


# ---- URI --------------------------------------------------------------------------------------


def uri_of(length, query=False):
    base = "/echo?q=" if query else "/echo/"
    return base + "a" * (length - len(base))


@pytest.mark.parametrize("query", [False, True], ids=["path", "query"])
def test_uri_at_limit_passes(env, query):
    gw, upstream = env
    upstream.reset()
    target = uri_of(MAX_URI, query)
    assert len(target) == MAX_URI
    response = request(gw.tls_port, "GET", target)
    assert response.status == 200, response
    assert targets(upstream) == [target]


@pytest.mark.parametrize("query", [False, True], ids=["path", "query"])
def test_uri_one_byte_over_is_414(env, query):
    gw, upstream = env
    upstream.reset()
    target = uri_of(MAX_URI + 1, query)
    response = request(gw.tls_port, "GET", target)
    assert_gateway_error(response, 414, "uri_too_long")
    assert upstream.requests() == []


def test_long_uri_refused_while_it_arrives(env, connect):
    """414 as soon as the target passes the limit, without waiting for the rest of the head."""
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, b"GET /" + b"a" * (2 * MAX_URI))
    assert_gateway_error(read_response(sock, timeout=TIMEOUT * 0.8), 414, "uri_too_long")
    assert is_closed(sock)
    assert upstream.requests() == []


# ---- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3, MAX_HEADER_COUNT])
def test_header_bytes_at_limit_pass(env, connect, count):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, head_with_header_bytes(MAX_HEADER_BYTES, count))
    response = read_response(sock)
    assert response.status == 200, response
    assert len(upstream.requests()) == 1


@pytest.mark.parametrize("count", [2, 3, MAX_HEADER_COUNT])
def test_header_bytes_one_over_is_431(env, connect, count):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, head_with_header_bytes(MAX_HEADER_BYTES + 1, count))
    assert_gateway_error(read_response(sock), 431, "request_header_fields_too_large")
    assert upstream.requests() == []


def test_uri_and_headers_both_at_limit_pass(env, connect):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    target = uri_of(MAX_URI)
    send(sock, head_with_header_bytes(MAX_HEADER_BYTES, 4, target=target))
    response = read_response(sock)
    assert response.status == 200, response
    assert targets(upstream) == [target]


def test_large_header_refused_while_it_arrives(env, connect):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"v" * (2 * MAX_HEADER_BYTES))
    assert_gateway_error(read_response(sock, timeout=TIMEOUT * 0.8), 431,
                         "request_header_fields_too_large")
    assert is_closed(sock)
    assert upstream.requests() == []


def test_header_count_at_limit_passes(env, connect):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, head_with_header_count(MAX_HEADER_COUNT))
    response = read_response(sock)
    assert response.status == 200, response
    assert len(upstream.requests()) == 1


def test_header_count_one_over_is_431(env, connect):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, head_with_header_count(MAX_HEADER_COUNT + 1))
    assert_gateway_error(read_response(sock), 431, "request_header_fields_too_large")
    assert upstream.requests() == []


# ---- body ---------------------------------------------------------------------------------------


def post_head(length=None, te_chunked=False):
    headers = [("Content-Type", "application/octet-stream")]
    if te_chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(length)))
    return build_request("POST", "/echo", headers=headers)


def test_content_length_at_limit_passes(env, connect):
    gw, upstream = env
    upstream.reset()
    body = harness.pattern_body(MAX_BODY)
    sock = connect()
    send(sock, post_head(MAX_BODY) + body)
    response = read_response(sock)
    assert response.status == 200, response
    [record] = upstream.requests()
    assert record["body_length"] == MAX_BODY and record.body_bytes == body


def test_chunked_at_limit_passes(env, connect):
    gw, upstream = env
    upstream.reset()
    body = harness.pattern_body(MAX_BODY)
    sock = connect()
    send(sock, post_head(te_chunked=True) + chunked(body, 1000))
    response = read_response(sock)
    assert response.status == 200, response
    [record] = upstream.requests()
    assert record["body_length"] == MAX_BODY and record.body_bytes == body


@pytest.mark.parametrize("with_body", [False, True], ids=["head-only", "head-and-body"])
def test_content_length_over_limit_is_413(env, connect, with_body):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    data = post_head(MAX_BODY + 1)
    if with_body:
        data += b"x" * (MAX_BODY + 1)
    send_tolerant(sock, data)
    response = read_response(sock)
    assert_gateway_error(response, 413, "payload_too_large")
    assert (response.header("Connection") or "").lower() == "close", response
    assert is_closed(sock)
    assert upstream.requests() == []


@pytest.mark.parametrize("chunk_size", [1000, MAX_BODY + 1000], ids=["small-chunks", "one-chunk"])
def test_chunked_over_limit_is_413(env, connect, chunk_size):
    gw, upstream = env
    upstream.reset()
    body = harness.pattern_body(MAX_BODY + 1000)
    sock = connect()
    send_tolerant(sock, post_head(te_chunked=True) + chunked(body, chunk_size))
    response = read_response(sock)
    assert_gateway_error(response, 413, "payload_too_large")
    assert is_closed(sock)
    # the upstream may have seen the start of it, never a complete request (neither the whole
    # body nor a truncated one passed off as complete)
    assert upstream.requests() == []


def test_chunked_over_limit_refused_while_it_arrives(env, connect):
    """413 once the decoded body passes the limit, while the client is still sending."""
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, post_head(te_chunked=True) + b"%x\r\n" % (MAX_BODY + 1) + b"x" * (MAX_BODY + 1))
    assert_gateway_error(read_response(sock, timeout=TIMEOUT * 0.8), 413, "payload_too_large")
    assert is_closed(sock)
    assert upstream.requests() == []


# ---- timeouts -----------------------------------------------------------------------------------


def read_timed(sock, started, timeout=3.0):
    """(response, seconds since `started`) for the next response."""
    response = read_response(sock, timeout=timeout)
    return response, time.monotonic() - started


def assert_timely(elapsed, low=TIMEOUT * 0.8, high=TIMEOUT + 2.0):
    assert low <= elapsed <= high, f"answered after {elapsed:.2f}s, timeout is {TIMEOUT}s"


@pytest.mark.parametrize("partial", [
    b"GET /echo HTTP/1.1\r\nHost: localhost\r\n",
    b"GET /echo HTT",
    b"G",
], ids=["headers-unfinished", "request-line-unfinished", "one-byte"])
def test_slow_head_is_408_and_closed(env, connect, partial):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    send(sock, partial)
    response, elapsed = read_timed(sock, time.monotonic())
    assert_gateway_error(response, 408, "request_timeout")
    assert_timely(elapsed)
    assert is_closed(sock)
    assert upstream.requests() == []


def test_trickled_head_is_408(env, connect):
    """header_timeout bounds the whole head: a byte every 150 ms does not keep it alive."""
    gw, upstream = env
    upstream.reset()
    sock = connect()
    data = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"s" * 100
    started = time.monotonic()
    for i in range(len(data)):
        try:
            send(sock, data[i:i + 1])
        except (ssl.SSLError, ConnectionError, OSError):
            break
        if sock.pending() or select.select([sock], [], [], 0.15)[0]:
            break
        assert time.monotonic() - started < TIMEOUT + 2.0, "no answer to a trickled head"
    response, elapsed = read_timed(sock, started)
    assert_gateway_error(response, 408, "request_timeout")
    assert_timely(elapsed)
    assert is_closed(sock)
    assert upstream.requests() == []


@pytest.mark.parametrize("data", [
    post_head(100) + b"0123456789",
    post_head(100),
    post_head(te_chunked=True) + b"a\r\n01234",
    post_head(te_chunked=True) + b"5\r\nhello\r\n",
], ids=["content-length-after-10-bytes", "content-length-no-bytes", "chunked-mid-chunk",
        "chunked-between-chunks"])
def test_stalled_body_is_408_and_closed(env, connect, data):
    gw, upstream = env
    upstream.reset()
    sock = connect()
    started = time.monotonic()
    send(sock, data)
    response, elapsed = read_timed(sock, started)
    assert_gateway_error(response, 408, "request_timeout")
    assert_timely(elapsed)
    assert is_closed(sock)
    assert upstream.requests() == []


def test_slow_but_steady_body_passes(env, connect):
    """body_timeout is about stalls: a body that keeps arriving is read, within the whole-body
    deadline of twice body_timeout (test_body_deadline.py cuts one that takes longer)."""
    gw, upstream = env
    upstream.reset()
    sock = connect()
    body = b"abcd"
    send(sock, post_head(len(body)))
    for i in range(len(body)):
        time.sleep(TIMEOUT * 0.3)  # 1.2 s in all: longer than body_timeout, no gap as long
        send(sock, body[i:i + 1])
    response = read_response(sock)
    assert response.status == 200, response
    [record] = upstream.requests()
    assert record.body_bytes == body


def test_idle_keep_alive_connection_closed_after_idle_timeout(env, connect):
    gw, upstream = env
    sock = connect()
    send(sock, build_request("GET", "/echo/once"))
    assert read_response(sock).status == 200
    started = time.monotonic()
    assert is_closed(sock, timeout=TIMEOUT + 2.0), "idle connection not closed"
    assert_timely(time.monotonic() - started)


def test_connection_without_request_closed(env, connect):
    gw, upstream = env
    sock = connect()
    started = time.monotonic()
    assert is_closed(sock, timeout=TIMEOUT + 2.0), "silent connection not closed"
    assert_timely(time.monotonic() - started)


def test_busy_keep_alive_connection_stays_open(env, connect):
    """Requests closer together than idle_timeout keep the connection, for longer than it."""
    gw, upstream = env
    upstream.reset()
    sock = connect()
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < TIMEOUT * 2.2:
        send(sock, build_request("GET", f"/echo/busy{i}"))
        response = read_response(sock)
        assert response.status == 200, response
        assert response.json()["target"] == f"/echo/busy{i}"
        i += 1
        time.sleep(TIMEOUT * 0.4)
    assert i >= 4
    assert targets(upstream) == [f"/echo/busy{n}" for n in range(i)]
    # and once it stops, it is closed
    assert is_closed(sock, timeout=TIMEOUT + 2.0)


# ---- connection caps ----------------------------------------------------------------------------
# Over max_connections_per_ip or max_connections, a connection is closed at accept, before any
# TLS. The gateways here keep long timeouts so held connections are not closed as idle meanwhile.

LONG = {"header_timeout": "30s", "body_timeout": "30s", "idle_timeout": "30s"}


def connect_from(port, source, timeout=5.0):
    """A TLS connection to the gateway from the loopback address `source` (127.0.0.0/8)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))
    try:
        sock.settimeout(timeout)
        return client_context().wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


def serves(sock, tag):
    send(sock, build_request("GET", f"/echo/{tag}"))
    response = read_response(sock, timeout=5)
    return response.status == 200 and response.json()["target"] == f"/echo/{tag}"


def refused_before_tls(port, source="127.0.0.1", timeout=3.0):
    """True when the gateway closes a new connection without sending a single byte: a ClientHello
    goes out, and only EOF or a reset comes back (an accepted connection answers ServerHello)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello, "no ClientHello produced"
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                        source_address=(source, 0))
    except ConnectionError:
        return True  # reset before connect() even returned
    received = b""
    try:
        sock.sendall(hello)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except (socket.timeout, TimeoutError):
        return False  # still open: it was accepted
    except (ConnectionError, OSError):
        pass
    finally:
        sock.close()
    return received == b""


def handshake_refused(port, source="127.0.0.1"):
    try:
        sock = connect_from(port, source)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        return not serves(sock, "probe")
    except (ssl.SSLError, ConnectionError, OSError, ValueError):
        return True
    finally:
        sock.close()


@pytest.fixture
def held():
    """Connections a test keeps open; closed after it."""
    socks = []
    yield socks
    for sock in socks:
        sock.close()


def test_per_ip_cap(gateway_factory, certs, upstream, held):
    gw = gateway_factory(limits_policy(certs, upstream, **LONG))
    for i in range(3):
        sock = connect_from(gw.tls_port, "127.0.0.1")
        held.append(sock)
        assert serves(sock, f"held{i}")
    # the 4th from the same address: closed at accept, no TLS
    assert refused_before_tls(gw.tls_port, "127.0.0.1")
    assert handshake_refused(gw.tls_port, "127.0.0.1")
    # the 3 held connections are unaffected
    for i, sock in enumerate(held):
        assert serves(sock, f"still{i}")
    # another address has its own budget
    other = connect_from(gw.tls_port, "127.0.0.2")
    held.append(other)
    assert serves(other, "other-ip")
    # closing one frees its slot (refusals took none)
    held.pop(0).close()
    sock = wait_until(lambda: try_connect(gw.tls_port, "127.0.0.1"), timeout=5,
                      message="a slot freed by closing a connection")
    held.append(sock)
    assert refused_before_tls(gw.tls_port, "127.0.0.1")


def try_connect(port, source):
    """A connection that serves a request, or None."""
    try:
        sock = connect_from(port, source)
    except (ssl.SSLError, ConnectionError, OSError):
        return None
    try:
        if serves(sock, "retry"):
            return sock
    except (ssl.SSLError, ConnectionError, OSError, ValueError):
        pass
    sock.close()
    return None


@pytest.mark.parametrize("per_ip, sources", [
    (20, ["127.0.0.1"]),
    (3, [f"127.0.0.{n}" for n in range(1, 8)]),
], ids=["one-address", "seven-addresses"])
def test_max_connections_cap(gateway_factory, certs, upstream, held, per_ip, sources):
    gw = gateway_factory(limits_policy(certs, upstream, max_connections_per_ip=per_ip, **LONG))
    total = 20
    # fill the gateway: `total` connections spread over the addresses, within the per-IP cap
    slots = [sources[i % len(sources)] for i in range(total)]
    for i, source in enumerate(slots):
        sock = connect_from(gw.tls_port, source)
        held.append(sock)
        assert serves(sock, f"held{i}")
    for source in sources + ["127.0.0.9"]:
        assert refused_before_tls(gw.tls_port, source), f"connection from {source} accepted"
    # the admin listener is not counted
    health = harness.plain_request(gw.admin_port, "GET", "/healthz")
    assert health.status == 200
    # held connections keep working; closing one lets exactly one more in
    assert serves(held[-1], "still")
    held.pop(0).close()
    sock = wait_until(lambda: try_connect(gw.tls_port, "127.0.0.9"), timeout=5,
                      message="a slot freed by closing a connection")
    held.append(sock)
    assert refused_before_tls(gw.tls_port, "127.0.0.10")

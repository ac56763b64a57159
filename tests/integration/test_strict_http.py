"""Strict HTTP/1.1: every malformed or ambiguous request (spec, "What a client sees": 400,
connection closed, nothing reaches the upstream; and the parser's documented rules) sent as raw
bytes over TLS. An Expect other than 100-continue is answered 417."""

import pytest

import harness
from harness import (assert_gateway_error, base_policy, build_request, is_closed, read_response,
                     request, send, tls_connect)


def raw(lines, body=b"", request_line=b"POST /echo HTTP/1.1"):
    """Request bytes: the request line, the header lines as given (each without its CRLF), the
    empty line, then body. Nothing is added or fixed up."""
    return request_line + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


def get(target=b"/echo", version=b"HTTP/1.1", lines=(b"Host: localhost",), method=b"GET"):
    return raw(list(lines), request_line=method + b" " + target + b" " + version)


SMUGGLED = b"GET /echo/smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"


def chunked_post(chunks):
    return raw([b"Host: localhost", b"Transfer-Encoding: chunked"], chunks)


# Each case: (id, request bytes). Every one must be answered 400 bad_request, the connection
# closed, and the upstream must record nothing.
CASES = [
    # ---- framing: Content-Length and Transfer-Encoding together ----
    ("cl-te", raw([b"Host: localhost", b"Content-Length: 5", b"Transfer-Encoding: chunked"],
                  b"0\r\n\r\n")),
    ("te-cl", raw([b"Host: localhost", b"Transfer-Encoding: chunked", b"Content-Length: 5"],
                  b"0\r\n\r\n")),
    ("cl-te-smuggle", raw([b"Host: localhost", b"Content-Length: %d" % (5 + len(SMUGGLED)),
                           b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SMUGGLED)),
    ("te-cl-smuggle", raw([b"Host: localhost", b"Transfer-Encoding: chunked",
                           b"Content-Length: 4"], b"5c\r\n" + SMUGGLED + b"\r\n0\r\n\r\n")),
    # ---- Content-Length ----
    ("cl-twice-equal", raw([b"Host: localhost", b"Content-Length: 5", b"Content-Length: 5"],
                           b"hello")),
    ("cl-twice-different", raw([b"Host: localhost", b"Content-Length: 5", b"Content-Length: 6"],
                               b"hello!")),
    ("cl-plus", raw([b"Host: localhost", b"Content-Length: +5"], b"hello")),
    ("cl-list", raw([b"Host: localhost", b"Content-Length: 5, 5"], b"hello")),
    ("cl-list-nospace", raw([b"Host: localhost", b"Content-Length: 5,5"], b"hello")),
    ("cl-negative", raw([b"Host: localhost", b"Content-Length: -1"], b"hello")),
    ("cl-letters", raw([b"Host: localhost", b"Content-Length: abc"], b"hello")),
    ("cl-hex", raw([b"Host: localhost", b"Content-Length: 0x5"], b"hello")),
    ("cl-inner-space", raw([b"Host: localhost", b"Content-Length: 1 0"], b"helloworld")),
    ("cl-empty", raw([b"Host: localhost", b"Content-Length: "], b"hello")),
    ("cl-decimal", raw([b"Host: localhost", b"Content-Length: 5.0"], b"hello")),
    ("cl-huge", raw([b"Host: localhost", b"Content-Length: 99999999999999999999"], b"hello")),
    # ---- Transfer-Encoding ----
    ("te-xchunked", chunked_post(b"0\r\n\r\n").replace(b": chunked", b": xchunked")),
    ("te-chunked-chunked", chunked_post(b"0\r\n\r\n").replace(b": chunked", b": chunked, chunked")),
    ("te-gzip-chunked", chunked_post(b"0\r\n\r\n").replace(b": chunked", b": gzip, chunked")),
    ("te-identity", chunked_post(b"0\r\n\r\n").replace(b": chunked", b": identity")),
    ("te-chunked-identity",
     chunked_post(b"0\r\n\r\n").replace(b": chunked", b": chunked, identity")),
    ("te-twice", raw([b"Host: localhost", b"Transfer-Encoding: chunked",
                      b"Transfer-Encoding: chunked"], b"0\r\n\r\n")),
    ("te-space-before-colon", raw([b"Host: localhost", b"Transfer-Encoding : chunked"],
                                  b"0\r\n\r\n")),
    ("te-tab-before-colon", raw([b"Host: localhost", b"Transfer-Encoding\t: chunked"],
                                b"0\r\n\r\n")),
    ("te-http10", raw([b"Host: localhost", b"Transfer-Encoding: chunked"], b"0\r\n\r\n",
                      request_line=b"POST /echo HTTP/1.0")),
    ("te-http10-no-host", raw([b"Transfer-Encoding: chunked"], b"0\r\n\r\n",
                              request_line=b"POST /echo HTTP/1.0")),
    # ---- chunked body (decoded by the gateway) ----
    ("chunk-size-zz", chunked_post(b"zz\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-negative", chunked_post(b"-1\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-17-hex-digits", chunked_post(b"10000000000000000\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-17-hex-digits-small", chunked_post(b"00000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-empty", chunked_post(b"\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-0x", chunked_post(b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-data-no-crlf", chunked_post(b"5\r\nhelloXX\r\n0\r\n\r\n")),
    ("chunk-data-too-short", chunked_post(b"5\r\nhel\r\n0\r\n\r\n")),
    ("chunk-size-bare-lf", chunked_post(b"5\nhello\r\n0\r\n\r\n")),
    ("chunk-data-bare-lf", chunked_post(b"5\r\nhello\n0\r\n\r\n")),
    ("chunk-last-bare-lf", chunked_post(b"5\r\nhello\r\n0\n\n")),
    # ---- line endings ----
    ("bare-lf-head", b"GET /echo HTTP/1.1\nHost: localhost\n\n"),
    ("bare-lf-request-line", b"GET /echo HTTP/1.1\nHost: localhost\r\n\r\n"),
    ("bare-lf-end-of-head", b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\n"),
    ("bare-lf-in-value", get(lines=[b"Host: localhost", b"X-A: a\nX-B: b"])),
    ("bare-cr-in-value", get(lines=[b"Host: localhost", b"X-A: a\rX-B: b"])),
    ("bare-cr-end-of-line", get(lines=[b"Host: localhost", b"X-A: a\r"])),
    ("bare-cr-request-line", b"GET /echo\rHTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("bare-cr-after-version", b"GET /echo HTTP/1.1\r\rHost: localhost\r\n\r\n"),
    # ---- obs-fold ----
    ("obs-fold-space", get(lines=[b"Host: localhost", b"X-A: a", b" folded"])),
    ("obs-fold-tab", get(lines=[b"Host: localhost", b"X-A: a", b"\tfolded"])),
    ("obs-fold-first-line", get(lines=[b" X-A: a", b"Host: localhost"])),
    ("obs-fold-host", get(lines=[b"Host: localhost", b" evil.example"])),
    # ---- control characters ----
    ("nul-in-value", get(lines=[b"Host: localhost", b"X-A: a\x00b"])),
    ("soh-in-value", get(lines=[b"Host: localhost", b"X-A: a\x01b"])),
    ("esc-in-value", get(lines=[b"Host: localhost", b"X-A: a\x1b[0mb"])),
    ("vt-in-value", get(lines=[b"Host: localhost", b"X-A: a\x0bb"])),
    ("ff-in-value", get(lines=[b"Host: localhost", b"X-A: a\x0cb"])),
    ("del-in-value", get(lines=[b"Host: localhost", b"X-A: a\x7fb"])),
    ("nul-in-name", get(lines=[b"Host: localhost", b"X-\x00A: b"])),
    ("nul-in-target", get(target=b"/echo\x00x")),
    ("nul-in-host", get(lines=[b"Host: local\x00host"])),
    # ---- header names ----
    ("name-with-space", get(lines=[b"Host: localhost", b"X A: b"])),
    ("name-with-at", get(lines=[b"Host: localhost", b"X@A: b"])),
    ("name-with-underscore", get(lines=[b"Host: localhost", b"X_Forwarded_For: 1.2.3.4"])),
    ("name-with-slash", get(lines=[b"Host: localhost", b"X/A: b"])),
    ("name-non-ascii", get(lines=[b"Host: localhost", b"X-\xe9: b"])),
    ("name-empty", get(lines=[b"Host: localhost", b": b"])),
    ("line-without-colon", get(lines=[b"Host: localhost", b"NoColonHere"])),
    # ---- Host ----
    ("host-twice-same", get(lines=[b"Host: localhost", b"Host: localhost"])),
    ("host-twice-different", get(lines=[b"Host: localhost", b"Host: evil.example"])),
    ("host-missing-http11", get(lines=[b"X-A: b"])),
    ("host-with-space", get(lines=[b"Host: a b"])),
    ("host-with-at", get(lines=[b"Host: x@y"])),
    ("host-empty", get(lines=[b"Host: "])),
    ("host-list", get(lines=[b"Host: localhost, evil.example"])),
    ("host-bad-port", get(lines=[b"Host: localhost:99999"])),
    ("host-port-letters", get(lines=[b"Host: localhost:ab"])),
    ("host-slash", get(lines=[b"Host: localhost/evil"])),
    ("host-partial-ipv4", get(lines=[b"Host: 1.2.3"])),
    # ---- request line ----
    ("two-spaces-before-target", b"GET  /echo HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("two-spaces-before-version", b"GET /echo  HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("trailing-space", b"GET /echo HTTP/1.1 \r\nHost: localhost\r\n\r\n"),
    ("tab-separator", b"GET\t/echo HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("no-version", b"GET /echo\r\nHost: localhost\r\n\r\n"),
    ("leading-space", b" GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("method-with-separator", get(method=b"GE(T")),
    ("too-many-leading-empty-lines", b"\r\n" * 5 + get()),
    # ---- version ----
    ("version-1.2", get(version=b"HTTP/1.2")),
    ("version-2.0", get(version=b"HTTP/2.0")),
    ("version-0.9", get(version=b"HTTP/0.9")),
    ("version-lowercase", get(version=b"http/1.1")),
    ("version-no-minor", get(version=b"HTTP/1")),
    ("version-extra-digit", get(version=b"HTTP/1.10")),
    ("version-garbage", get(version=b"FOO/1.1")),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    # ---- request target ----
    ("absolute-form", get(target=b"http://evil/x")),
    ("absolute-form-https", get(target=b"https://localhost/echo")),
    ("asterisk-form", get(target=b"*", method=b"OPTIONS")),
    ("authority-form", get(target=b"evil.example:443", method=b"CONNECT")),
    ("target-with-space", get(target=b"/echo/a b")),
    ("target-raw-non-ascii", get(target=b"/echo/caf\xc3\xa9")),
    ("target-raw-high-byte", get(target=b"/echo/\xff")),
    ("target-backslash", get(target=b"/echo\\..\\x")),
    ("target-fragment", get(target=b"/echo#frag")),
    ("target-angle-brackets", get(target=b"/echo/<script>")),
    ("target-double-quote", get(target=b'/echo/"x"')),
    ("target-empty", b"GET  HTTP/1.1\r\nHost: localhost\r\n\r\n"),
]


@pytest.fixture(scope="module")
def env(certs):
    """One upstream and one gateway (base policy) shared by the cases of this module."""
    upstream = harness.Upstream(name="core")
    try:
        gw = harness.Gateway(base_policy(certs, upstream))
    except BaseException:
        upstream.stop()
        raise
    yield gw, upstream
    gw.stop(timeout=3)
    upstream.stop()


@pytest.fixture
def private_env(certs):
    """A gateway and upstream of its own, for a test that may leave the gateway unusable."""
    upstream = harness.Upstream(name="core")
    try:
        gw = harness.Gateway(base_policy(certs, upstream))
    except BaseException:
        upstream.stop()
        raise
    yield gw, upstream
    gw.stop(timeout=1)
    upstream.stop()


def targets(upstream):
    return [r["target"] for r in upstream.requests()]


def assert_refused(response, status=400, error="bad_request"):
    assert_gateway_error(response, status, error)
    assert (response.header("Connection") or "").lower() == "close", response


def assert_fresh_connection_works(gw, upstream):
    """A new connection is served normally, and it is the only thing the upstream saw."""
    response = request(gw.tls_port, "GET", "/echo/fresh", read_timeout=5, timeout=5)
    assert response.status == 200, response
    assert targets(upstream) == ["/echo/fresh"]


def exchange(gw, data):
    """Sends data on a new connection: (first response, whether the gateway then closed)."""
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, data)
        response = read_response(sock, timeout=5)
        return response, is_closed(sock, timeout=3)
    finally:
        sock.close()


@pytest.mark.parametrize("data", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_request_is_400_closed_and_not_forwarded(env, data):
    gw, upstream = env
    upstream.reset()
    response, closed = exchange(gw, data)
    assert_refused(response)
    assert closed, "the connection stays open after a 400"
    assert upstream.requests() == []
    assert_fresh_connection_works(gw, upstream)


# ---- controls: the strictness is aimed, well-formed requests pass ------------------------------

ACCEPTED = [
    ("plain-get", get(), b""),
    ("content-length", raw([b"Host: localhost", b"Content-Length: 5"], b"hello"), b"hello"),
    ("content-length-leading-zeros", raw([b"Host: localhost", b"Content-Length: 005"], b"hello"),
     b"hello"),
    ("content-length-ows", raw([b"Host: localhost", b"Content-Length:  5 "], b"hello"), b"hello"),
    ("chunked", chunked_post(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), b"hello world"),
    ("chunked-uppercase-name-and-value",
     raw([b"Host: localhost", b"TRANSFER-ENCODING: Chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
     b"hello"),
    ("chunk-size-16-hex-digits", chunked_post(b"0000000000000005\r\nhello\r\n0\r\n\r\n"), b"hello"),
    ("chunk-extension", chunked_post(b"5;name=value\r\nhello\r\n0\r\n\r\n"), b"hello"),
    ("chunk-trailer", chunked_post(b"5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"), b"hello"),
    ("http10-no-host", get(version=b"HTTP/1.0", lines=[]), b""),
    ("host-with-port", get(lines=[b"Host: localhost:8443"]), b""),
    ("host-ipv4", get(lines=[b"Host: 127.0.0.1"]), b""),
    ("host-ipv6", get(lines=[b"Host: [::1]:8443"]), b""),
    ("tab-in-value", get(lines=[b"Host: localhost", b"X-A: a\tb"]), b""),
    ("obs-text-in-value", get(lines=[b"Host: localhost", b"X-A: caf\xc3\xa9"]), b""),
    ("two-leading-empty-lines", b"\r\n\r\n" + get(), b""),
    ("http10", get(version=b"HTTP/1.0"), b""),
    ("expect-100-continue", raw([b"Host: localhost", b"Content-Length: 5",
                                 b"Expect: 100-continue"], b"hello"), b"hello"),
]


@pytest.mark.parametrize("data, body", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_well_formed_request_passes(env, data, body):
    gw, upstream = env
    upstream.reset()
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, data)
        response = read_response(sock, timeout=5)
        while response.status == 100:
            response = read_response(sock, timeout=5)
    finally:
        sock.close()
    assert response.status == 200, response
    records = upstream.requests()
    assert len(records) == 1, records
    assert records[0].body_bytes == body


# ---- rejection is per request -------------------------------------------------------------------

PER_REQUEST = ["cl-te", "cl-twice-different", "te-xchunked", "chunk-size-zz", "bare-lf-head",
               "obs-fold-space", "nul-in-value", "host-twice-different", "version-2.0",
               "absolute-form"]


@pytest.mark.parametrize("name", PER_REQUEST)
def test_valid_request_before_malformed_one_is_answered(env, name):
    gw, upstream = env
    malformed = dict(CASES)[name]
    upstream.reset()
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, build_request("GET", "/echo/first"))
        first = read_response(sock, timeout=5)
        assert first.status == 200, first
        assert first.json()["target"] == "/echo/first"
        send(sock, malformed)
        second = read_response(sock, timeout=5)
        assert_refused(second)
        assert is_closed(sock), "the connection stays open after a 400"
    finally:
        sock.close()
    assert targets(upstream) == ["/echo/first"]
    upstream.reset()
    assert_fresh_connection_works(gw, upstream)


@pytest.mark.parametrize("name", ["cl-te-smuggle", "te-cl", "bare-lf-in-value", "h2-preface"])
def test_pipelined_valid_then_malformed(env, name):
    gw, upstream = env
    upstream.reset()
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, build_request("GET", "/echo/first") + dict(CASES)[name]
             + build_request("GET", "/echo/after"))
        first = read_response(sock, timeout=5)
        assert first.status == 200 and first.json()["target"] == "/echo/first", first
        assert_refused(read_response(sock, timeout=5))
        assert is_closed(sock), "the connection stays open after a 400"
    finally:
        sock.close()
    # nothing after the malformed request is read as a request
    assert targets(upstream) == ["/echo/first"]


def test_smuggled_request_never_reaches_upstream_on_reused_upstream_connection(env):
    """The gateway pools upstream connections: a rejected request must not leave bytes on one
    that the next client's request would be glued to."""
    gw, upstream = env
    upstream.reset()
    assert request(gw.tls_port, "GET", "/echo/warm").status == 200
    for name in ("cl-te-smuggle", "te-cl-smuggle", "chunk-data-no-crlf", "chunk-size-zz"):
        response, closed = exchange(gw, dict(CASES)[name])
        assert_refused(response)
        assert closed
    for i in range(3):
        response = request(gw.tls_port, "GET", f"/echo/next{i}")
        assert response.status == 200 and response.json()["target"] == f"/echo/next{i}"
    assert targets(upstream) == ["/echo/warm", "/echo/next0", "/echo/next1", "/echo/next2"]


# ---- Expect ------------------------------------------------------------------------------------
# An Expect other than 100-continue is answered 417 Expectation Failed (RFC 9110 10.1.1; the
# parser and its unit tests), and the request is not forwarded.


@pytest.mark.parametrize("expect", [b"200-ok", b"100-continue, foo", b"", b"foo"])
def test_unknown_expect_is_417_and_not_forwarded(private_env, expect):
    gw, upstream = private_env
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, get(lines=[b"Host: localhost", b"Expect: " + expect]))
        response = read_response(sock, timeout=5)
        assert_gateway_error(response, 417, "expectation_failed")
    finally:
        sock.close()
    assert upstream.requests() == []


def test_unknown_expect_is_answered_once(private_env):
    """After the 417 the gateway either closes the connection or serves the next request on it;
    it never answers the refused request again."""
    gw, upstream = private_env
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, get(lines=[b"Host: localhost", b"Expect: foo"]))
        assert_gateway_error(read_response(sock, timeout=5), 417, "expectation_failed")
        try:
            send(sock, build_request("GET", "/echo/next"))
            following = read_response(sock, timeout=3)
        except (ConnectionError, OSError):
            following = None  # closed after the 417: acceptable
        if following is not None:
            assert following.status == 200, f"the 417 was repeated: {following!r}"
            assert following.json()["target"] == "/echo/next"
    finally:
        sock.close()


def test_unknown_expect_then_close_leaves_gateway_serving(private_env):
    gw, upstream = private_env
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, get(lines=[b"Host: localhost", b"Expect: foo"]))
        assert_gateway_error(read_response(sock, timeout=5), 417, "expectation_failed")
    finally:
        sock.close()
    response = request(gw.tls_port, "GET", "/echo/fresh", read_timeout=3, timeout=3)
    assert response.status == 200, response


def test_unknown_expect_with_body_is_not_smuggled(private_env):
    """The refused request's body is never read as a request of its own."""
    gw, upstream = private_env
    sock = tls_connect(gw.tls_port, timeout=5)
    try:
        send(sock, raw([b"Host: localhost", b"Expect: foo",
                        b"Content-Length: %d" % len(SMUGGLED)], SMUGGLED))
        assert_gateway_error(read_response(sock, timeout=5), 417, "expectation_failed")
    finally:
        sock.close()
    assert upstream.requests() == []

"""The harness itself, against demo-upstream directly and a stand-in gateway process: if these fail,
the other integration tests cannot be trusted."""

import os
import socket
import ssl
import stat
import subprocess
import threading
import time
import warnings

import pytest

import harness
from harness import (build_request, chunked, is_closed, pattern_body, plain_connect,
                     read_response, send, tls_connect)


def plain_get(port, path, **kwargs):
    sock = plain_connect(port)
    try:
        send(sock, build_request("GET", path, **kwargs))
        return read_response(sock)
    finally:
        sock.close()


# ---- certificates -------------------------------------------------------------------------------


def openssl_verify(ca, cert, purpose=None):
    args = ["openssl", "verify", "-CAfile", ca]
    if purpose:
        args += ["-purpose", purpose]
    return subprocess.run(args + [cert], capture_output=True, text=True)


def test_certificates_chain_to_their_cas(certs):
    for cert in (certs.server_cert, certs.other_cert, certs.upstream_cert):
        assert openssl_verify(certs.ca, cert, "sslserver").returncode == 0
        assert openssl_verify(certs.wrong_ca, cert).returncode != 0
    assert openssl_verify(certs.client_ca, certs.client_cert, "sslclient").returncode == 0
    assert openssl_verify(certs.ca, certs.client_cert).returncode != 0
    assert openssl_verify(certs.wrong_ca, certs.wrong_server_cert).returncode == 0
    text = subprocess.run(["openssl", "x509", "-in", certs.client_cert, "-noout", "-subject"],
                          capture_output=True, text=True).stdout
    assert "teller-01" in text
    text = subprocess.run(["openssl", "x509", "-in", certs.ca, "-noout", "-text"],
                          capture_output=True, text=True).stdout
    assert "prime256v1" in text or "P-256" in text


# ---- demo upstream, plain -----------------------------------------------------------------------


def test_upstream_records_resets_and_counts(upstream):
    assert upstream.stats() == {"connections_accepted": 0, "requests": 0, "name": "core"}
    response = plain_get(upstream.port, "/some/path?x=1", headers=[("X-Test", "1")])
    assert response.status == 200
    assert response.body == b"hello from the legacy service\n"
    assert response.header("Server") == "LegacyIIS/6.0"
    assert response.header("x-powered-by") == "ASP.NET"
    assert response.header("Content-Type") == "text/plain"

    records = upstream.requests()
    assert len(records) == 1
    r = records[0]
    assert (r["method"], r["target"], r["version"]) == ("GET", "/some/path?x=1", "HTTP/1.1")
    assert r.path == "/some/path"
    assert r["headers"][0] == ["Host", "localhost"]
    assert r.header("x-test") == "1"
    assert r["raw_head"].startswith("GET /some/path?x=1 HTTP/1.1\r\nHost: localhost\r\n")
    assert r["raw_head"].endswith("\r\n\r\n")
    assert r["body_length"] == 0
    # control requests are neither recorded nor counted
    assert upstream.stats() == {"connections_accepted": 1, "requests": 1, "name": "core"}

    upstream.reset()
    assert upstream.requests() == []
    assert upstream.stats()["requests"] == 0
    assert upstream.stats()["connections_accepted"] == 0


def test_upstream_keeps_headers_in_order_and_raw(upstream):
    sock = plain_connect(upstream.port)
    send(sock, b"GET /raw HTTP/1.1\r\nHost: a\r\nX-B: 2\r\nx-a:  1 \r\nX-B: 3\r\n\r\n")
    assert read_response(sock).status == 200
    sock.close()
    r = upstream.requests()[0]
    assert r["headers"] == [["Host", "a"], ["X-B", "2"], ["x-a", "1"], ["X-B", "3"]]
    assert r.headers_all("x-b") == ["2", "3"]
    assert r["raw_head"] == "GET /raw HTTP/1.1\r\nHost: a\r\nX-B: 2\r\nx-a:  1 \r\nX-B: 3\r\n\r\n"


def test_upstream_is_lenient(upstream):
    # bare LF, both Content-Length and Transfer-Encoding (chunked wins), odd spacing
    sock = plain_connect(upstream.port)
    send(sock, b"POST /echo HTTP/1.1\nHost: x\nContent-Length: 3\nTransfer-Encoding: chunked\n\n"
               b"5\r\nhello\r\n0\r\n\r\n")
    response = read_response(sock)
    sock.close()
    echo = response.json()
    assert echo["body"] == "hello"
    assert echo["chunked"] is True
    assert upstream.requests()[0]["body_length"] == 5


def test_keep_alive_and_pipelining(upstream):
    sock = plain_connect(upstream.port)
    for i in range(3):
        send(sock, build_request("GET", f"/k{i}"))
        assert read_response(sock).status == 200
    send(sock, build_request("GET", "/echo/one") + build_request("GET", "/echo/two"))
    first, second = read_response(sock), read_response(sock)
    assert first.json()["target"] == "/echo/one"
    assert second.json()["target"] == "/echo/two"
    assert not is_closed(sock, 0.2)
    sock.close()
    ids = {r["connection_id"] for r in upstream.requests()}
    assert len(ids) == 1
    assert upstream.stats()["connections_accepted"] == 1


def test_bodies(upstream):
    body = os.urandom(200_000)
    sock = plain_connect(upstream.port)
    send(sock, build_request("POST", "/echo", body=body))
    echo = read_response(sock).json()
    assert echo["body_length"] == len(body)
    assert echo["body"].encode("latin-1") == body[:65536]

    send(sock, build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
         + chunked(b"x" * 2500, 1000))
    echo = read_response(sock).json()
    assert echo["body_length"] == 2500 and echo["chunked"] is True

    send(sock, build_request("POST", "/echo", headers=[("Expect", "100-continue")],
                             body=None) .replace(b"\r\n\r\n", b"\r\nContent-Length: 4\r\n\r\n"))
    interim = read_response(sock)
    assert interim.status == 100
    send(sock, b"abcd")
    final = read_response(sock)
    assert final.status == 200 and final.json()["body"] == "abcd"
    sock.close()


def test_generated_responses(upstream):
    sock = plain_connect(upstream.port)
    send(sock, build_request("GET", "/size/1048576"))
    r = read_response(sock)
    assert r.header("Content-Length") == "1048576" and r.body == pattern_body(1048576)
    send(sock, build_request("GET", "/chunked/123457"))
    r = read_response(sock)
    assert r.header("Transfer-Encoding") == "chunked" and r.body == pattern_body(123457)
    send(sock, build_request("HEAD", "/size/10"))
    r = read_response(sock, head_request=True)
    assert r.header("Content-Length") == "10" and r.body == b""
    send(sock, build_request("GET", "/status/503"))
    r = read_response(sock)
    assert r.status == 503 and r.header("Content-Type") == "text/html"
    assert b"NullPointerException" in r.body
    send(sock, build_request("GET", "/cookie"))
    r = read_response(sock)
    assert r.headers_all("set-cookie") == ["session=abc123; Path=/",
                                           "theme=dark; Secure; HttpOnly; SameSite=Lax"]
    send(sock, build_request("GET", "/health"))
    assert read_response(sock).body == b"ok"
    send(sock, build_request("GET", "/health-fail"))
    assert read_response(sock).status == 503
    start = time.monotonic()
    send(sock, build_request("GET", "/delay/300"))
    assert read_response(sock).status == 200
    assert time.monotonic() - start >= 0.3
    sock.close()


def test_close_and_reset(upstream):
    sock = plain_connect(upstream.port)
    send(sock, build_request("GET", "/close"))
    r = read_response(sock)
    assert r.header("Connection") == "close"
    assert is_closed(sock, 3)
    sock.close()

    sock = plain_connect(upstream.port)
    send(sock, build_request("GET", "/reset"))
    with pytest.raises((ConnectionError, OSError)):
        read_response(sock, timeout=3)
    sock.close()

    sock = plain_connect(upstream.port)
    send(sock, build_request("GET", "/", headers=[("Connection", "close")]))
    assert read_response(sock).status == 200
    assert is_closed(sock, 3)
    sock.close()

    sock = plain_connect(upstream.port)
    assert not is_closed(sock, 0.3)
    sock.close()


def test_upstream_threads(upstream_factory):
    up = upstream_factory(name="multi", threads=3)
    socks = [plain_connect(up.port) for _ in range(6)]
    for i, s in enumerate(socks):
        send(s, build_request("GET", f"/t{i}"))
    for s in socks:
        assert read_response(s).status == 200
        s.close()
    assert sorted(r["target"] for r in up.requests()) == [f"/t{i}" for i in range(6)]
    assert up.stats() == {"connections_accepted": 6, "requests": 6, "name": "multi"}


# ---- demo upstream, TLS, and the TLS client -----------------------------------------------------


def test_tls_upstream_and_client(upstream_factory, certs):
    up = upstream_factory(name="secure", tls=True)
    sock = tls_connect(up.port, server_name="upstream.test")
    assert sock.version() in ("TLSv1.2", "TLSv1.3")
    assert ("DNS", "upstream.test") in harness.peer_san(sock)
    send(sock, build_request("GET", "/echo", host="upstream.test"))
    assert read_response(sock).json()["target"] == "/echo"
    sock.close()
    assert [r["target"] for r in up.requests()] == ["/echo"]
    assert up.stats()["requests"] == 1

    # the test CA is what makes it trusted
    with pytest.raises(ssl.SSLError):
        tls_connect(up.port, server_name="upstream.test", cafile=certs.wrong_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_connect(up.port, server_name="localhost")
    unverified = tls_connect(up.port, server_name="nothing.test", verify=False)
    assert ("DNS", "upstream.test") in harness.peer_san(unverified)
    unverified.close()
    ip = tls_connect(up.port, server_name="127.0.0.1")
    ip.close()


@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_session_resumption_helpers(upstream_factory, version):
    up = upstream_factory(name="secure", tls=True)
    first = tls_connect(up.port, server_name="upstream.test", min_version=version,
                        max_version=version)
    assert first.version() == version.replace("TLS", "TLSv")
    # TLS 1.3 tickets arrive after the handshake: complete one exchange first
    send(first, build_request("GET", "/"))
    read_response(first)
    session = first.session
    first.close()
    second = tls_connect(up.port, server_name="upstream.test", min_version=version,
                         max_version=version, session=session)
    assert second.session_reused
    second.close()


def test_cipher_and_version_options_are_really_offered(upstream_factory):
    up = upstream_factory(name="secure", tls=True)
    # demo-upstream runs OpenSSL's default list, which still has CBC suites: if the client
    # offers what it is told, this handshake succeeds (so refusals seen elsewhere are the server's)
    sock = tls_connect(up.port, server_name="upstream.test", max_version="TLS1.2",
                       ciphers="ECDHE-ECDSA-AES128-SHA")
    assert sock.cipher()[0] == "ECDHE-ECDSA-AES128-SHA"
    sock.close()
    # demo-upstream refuses TLS 1.0 and 1.1
    for old in ("TLS1", "TLS1.1"):
        assert harness.handshake_fails(up.port, server_name="upstream.test", min_version=old,
                                       max_version=old)


@pytest.mark.parametrize("version", ["TLS1", "TLS1.1"])
def test_client_offers_old_versions_when_asked(certs, version):
    """A local server that accepts TLS 1.0 and 1.1 sees the client's old handshake succeed, so a
    refusal by the gateway is the gateway's."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server_ctx.minimum_version = ssl.TLSVersion.TLSv1
    server_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    versions = []

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                versions.append(tls.version())
                tls.recv(1)
        except (ssl.SSLError, OSError):
            versions.append("failed")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    expected = version.replace("TLS", "TLSv")  # Python names them TLSv1 and TLSv1.1
    sock = tls_connect(port, min_version=version, max_version=version)
    assert sock.version() == expected
    sock.close()
    t.join(5)
    listener.close()
    assert versions == [expected]


def test_client_certificate_helpers(certs):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)
    server_ctx.load_verify_locations(certs.client_ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    peers = []

    def serve():
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    peers.append(dict(x[0] for x in tls.getpeercert()["subject"])["commonName"])
                    tls.recv(100)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            except (ssl.SSLError, OSError):
                peers.append(None)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert not harness.handshake_fails(port, cert=certs.client_cert, key=certs.client_key)
    assert harness.handshake_fails(port)
    t.join(5)
    listener.close()
    assert peers == ["teller-01", None]


# ---- YAML, policies -----------------------------------------------------------------------------


def test_yaml_emitter():
    text = harness.to_yaml({
        "version": 1,
        "server": {"listen": [{"address": "127.0.0.1:0", "redirect_https": True}], "x": []},
        "headers": {"response": {"set": {"X-Frame-Options": "DENY", "Weird: key": "a\"b"}}},
        "empty": {},
        "nested": [[1, 2], "s"],
    })
    assert text == (
        'version: 1\n'
        'server:\n'
        '  listen:\n'
        '    - address: "127.0.0.1:0"\n'
        '      redirect_https: true\n'
        '  x: []\n'
        'headers:\n'
        '  response:\n'
        '    set:\n'
        '      X-Frame-Options: "DENY"\n'
        '      "Weird: key": "a\\"b"\n'
        'empty: {}\n'
        'nested:\n'
        '  - - 1\n'
        '    - 2\n'
        '  - "s"\n')


def test_base_policy_and_merge(certs):
    p = harness.base_policy(certs, ["127.0.0.1:1", "127.0.0.1:2"],
                            server={"limits": {"idle_timeout": "1s"}},
                            upstreams={"core": {"retries": 0}})
    assert p["server"]["limits"]["idle_timeout"] == "1s"
    assert p["server"]["limits"]["header_timeout"] == "2s"
    assert p["server"]["workers"] == 1
    assert p["upstreams"]["core"] == {"endpoints": ["127.0.0.1:1", "127.0.0.1:2"], "retries": 0}
    assert p["routes"] == [{"name": "api", "match": {"path_prefix": "/"}, "upstream": "core"}]
    assert harness.to_yaml(p).startswith("version: 1\nserver:\n  workers: 1\n")


# ---- Gateway process handling, with a stand-in binary -------------------------------------------

FAKE_GATEWAY = r'''#!/usr/bin/python3
import json, signal, socket, sys, time
args = sys.argv[1:]
mode = open(args[args.index("-c") + 1]).read().strip()
if "--check" in args:
    print("OK" if mode == "good" else "policy.yaml:3:5: unknown key")
    sys.exit(0 if mode == "good" else 1)
if mode == "crash":
    print("fatal: cannot load policy", file=sys.stderr)
    sys.exit(3)
socks = []
for kind in ("tls", "tls", "redirect", "admin"):
    s = socket.create_server(("127.0.0.1", 0))
    socks.append(s)
    print(json.dumps({"event": "listening", "kind": kind, "configured": "127.0.0.1:0",
                      "bound": "127.0.0.1:%d" % s.getsockname()[1]}), file=sys.stderr, flush=True)
print("not json", file=sys.stderr, flush=True)
if mode == "slow":
    time.sleep(60)
print(json.dumps({"event": "ready"}), file=sys.stderr, flush=True)
for i in range(5000):
    print(json.dumps({"status": 200, "i": i}), flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(1)
'''


@pytest.fixture
def fake_gateway(tmp_path_factory):
    path = tmp_path_factory.mktemp("fake") / "portcullis"
    path.write_text(FAKE_GATEWAY)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_gateway_process_handling(fake_gateway):
    g = harness.Gateway("ok", binary=fake_gateway)
    ports = g.tls_ports
    assert len(ports) == 2 and g.tls_port == ports[0]
    assert g.redirect_port not in ports and g.admin_port not in ports
    assert any("not json" in line for line in g.stderr_lines())
    # stdout is drained while the process runs, so a chatty access log never blocks it
    harness.wait_until(lambda: len(g.access_log()) == 5000, 10)
    assert [e["event"] for e in g.stderr_events()][-1] == "ready"
    assert g.stop() == 0
    assert not os.path.exists(g.dir)


def test_gateway_start_failures(fake_gateway):
    with pytest.raises(harness.ProcessError, match="cannot load policy"):
        harness.Gateway("crash", binary=fake_gateway)
    start = time.monotonic()
    with pytest.raises(harness.ProcessError, match="not ready"):
        harness.Gateway("slow", binary=fake_gateway, ready_timeout=1)
    assert time.monotonic() - start < 5


def test_run_check(fake_gateway, tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("good")
    bad.write_text("bad")
    assert harness.run_check(str(good), binary=fake_gateway) == (0, "OK\n")
    code, output = harness.run_check(str(bad), binary=fake_gateway)
    assert code == 1 and "policy.yaml:3:5:" in output

"""Forwarding to the upstream: bodies and connection handling, the connection pool, load
balancing, upstream failures (502/503/504), retries, health checks and upstream TLS."""

import os
import time

import pytest

from harness import (RefusedPort, assert_gateway_error, base_policy, build_request, chunked,
                     pattern_body, read_response, request, send, tls_connect, wait_until)


def targets(upstream, path=None):
    return [r["target"] for r in upstream.requests() if path is None or r.path == path]


# ---- request bodies -----------------------------------------------------------------------------


def test_content_length_body_forwarded_intact(gateway, upstream):
    body = os.urandom(100_000)
    response = request(gateway.tls_port, "POST", "/echo", body=body,
                       headers=[("Content-Type", "application/octet-stream")])
    assert response.status == 200, response
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["body_length"] == len(body)
    assert echo["body"].encode("latin-1") == body[:65536]


def test_small_body_forwarded_exactly(gateway, upstream):
    response = request(gateway.tls_port, "PUT", "/echo/x", body=b'{"amount": 100}',
                       headers=[("Content-Type", "application/json")])
    record = upstream.requests()[0]
    assert response.status == 200
    assert record["method"] == "PUT" and record.body_bytes == b'{"amount": 100}'
    assert record.header("Content-Type") == "application/json"


def test_chunked_body_forwarded_intact(gateway, upstream):
    body = os.urandom(70_001)
    response = request(gateway.tls_port, "POST", "/echo",
                       headers=[("Transfer-Encoding", "chunked")], body=chunked(body, 4096))
    assert response.status == 200, response
    echo = response.json()
    assert echo["body_length"] == len(body)
    assert echo["body"].encode("latin-1") == body[:65536]
    record = upstream.requests()[0]
    # re-framed by the gateway: either chunked or with a Content-Length, never both
    framing = (record.header("Transfer-Encoding"), record.header("Content-Length"))
    assert (framing[0] is None) != (framing[1] is None), record["headers"]


def test_small_chunked_body_arrives_with_a_content_length(gateway, upstream):
    """A chunked body that arrives whole is validated first and forwarded de-chunked."""
    sock = tls_connect(gateway.tls_port)
    try:
        send(sock, build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
             + chunked(b'{"amount": "12.50", "currency": "EUR"}', 7))
        response = read_response(sock)
    finally:
        sock.close()
    assert response.status == 200, response
    record = upstream.requests()[0]
    assert record.header("Transfer-Encoding") is None
    assert record.header("Content-Length") == "38"
    assert record.body_bytes == b'{"amount": "12.50", "currency": "EUR"}'


def test_malformed_buffered_chunked_body_never_reaches_the_upstream(gateway_factory, certs,
                                                                    upstream_factory):
    up = upstream_factory()
    gw = gateway_factory(base_policy(certs, up))
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
             + b"5\r\nhello\r\n3\r\nabcX\r\n0\r\n\r\n")
        assert_gateway_error(read_response(sock), 400, "bad_request")
    finally:
        sock.close()
    # Not even a connection was opened: the head never left the gateway.
    assert up.stats()["connections_accepted"] == 0
    assert up.requests() == []


def test_expect_100_continue(gateway, upstream):
    sock = tls_connect(gateway.tls_port)
    try:
        send(sock, build_request("POST", "/echo",
                                 headers=[("Content-Length", "5"), ("Expect", "100-continue")]))
        interim = read_response(sock, timeout=5)
        assert (interim.version, interim.status) == ("HTTP/1.1", 100)
        send(sock, b"hello")
        final = read_response(sock)
        while final.status == 100:
            final = read_response(sock)
        assert final.status == 200
        assert final.json()["body"] == "hello"
    finally:
        sock.close()


def test_keep_alive(gateway, upstream):
    sock = tls_connect(gateway.tls_port)
    try:
        for i in range(3):
            send(sock, build_request("GET", f"/echo/{i}"))
            response = read_response(sock)
            assert response.status == 200
            assert response.json()["target"] == f"/echo/{i}"
    finally:
        sock.close()
    assert targets(upstream) == ["/echo/0", "/echo/1", "/echo/2"]


def test_keep_alive_connection_resumes_after_idling(gateway, upstream):
    """A connection idle for a while gives up its coroutine (it is parked) and is served again
    when the next request arrives; the connection-count gauge is not disturbed by it."""
    sock = tls_connect(gateway.tls_port)
    try:
        for i in range(3):
            send(sock, build_request("GET", f"/echo/parked/{i}"))
            response = read_response(sock)
            assert response.status == 200
            assert response.json()["target"] == f"/echo/parked/{i}"
            time.sleep(0.35)  # longer than the gateway waits before parking
    finally:
        sock.close()
    assert targets(upstream) == ["/echo/parked/0", "/echo/parked/1", "/echo/parked/2"]


def test_upstream_restart_fails_no_idempotent_request(gateway_factory, certs):
    """Every pooled connection dies with the upstream; the next GETs still succeed (the stale
    connection is retried on a fresh one and its stale siblings are dropped)."""
    from concurrent.futures import ThreadPoolExecutor

    from harness import Upstream

    first = Upstream(name="first")
    port = first.port
    gw = gateway_factory(base_policy(certs, first))
    # Three slow requests at once leave three connections in the gateway's pool.
    with ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda _: request(gw.tls_port, "GET", "/delay/300").status,
                                 range(3)))
    assert statuses == [200, 200, 200]
    assert first.stats()["connections_accepted"] == 3
    first.stop()
    second = Upstream(name="second", port=port)
    try:
        for i in range(5):
            response = request(gw.tls_port, "GET", f"/echo/after-restart/{i}")
            assert response.status == 200, response
        assert len(targets(second)) == 5
    finally:
        second.stop()


def test_pipelined_requests_answered_in_order(gateway, upstream):
    sock = tls_connect(gateway.tls_port)
    try:
        send(sock, build_request("GET", "/delay/200") + build_request("GET", "/echo/second"))
        first, second = read_response(sock), read_response(sock)
        assert first.status == 200 and first.body.startswith(b"delayed")
        assert second.status == 200 and second.json()["target"] == "/echo/second"
    finally:
        sock.close()


def test_large_response_intact(gateway):
    response = request(gateway.tls_port, "GET", "/size/1048576")
    assert response.status == 200
    assert len(response.body) == 1048576
    assert response.body == pattern_body(1048576)


def test_chunked_response_intact(gateway):
    response = request(gateway.tls_port, "GET", "/chunked/300001")
    assert response.status == 200
    assert response.body == pattern_body(300001)


def test_head_response_has_no_body(gateway):
    sock = tls_connect(gateway.tls_port)
    try:
        send(sock, build_request("HEAD", "/size/100"))
        head = read_response(sock, head_request=True)
        assert head.status == 200 and head.header("Content-Length") == "100"
        # the connection stays usable: no body bytes were sent after the head
        send(sock, build_request("GET", "/"))
        assert read_response(sock).body == b"hello from the legacy service\n"
    finally:
        sock.close()


# ---- pool and load balancing --------------------------------------------------------------------


def test_upstream_connections_pooled(gateway, upstream):
    for i in range(5):
        assert request(gateway.tls_port, "GET", f"/pooled/{i}").status == 200
    assert upstream.stats()["connections_accepted"] == 1
    assert len({r["connection_id"] for r in upstream.requests()}) == 1


def test_round_robin_over_endpoints(gateway_factory, certs, upstream_factory):
    a, b = upstream_factory(name="a"), upstream_factory(name="b")
    gw = gateway_factory(base_policy(certs, [a, b]))
    for i in range(20):
        assert request(gw.tls_port, "GET", f"/rr/{i}").status == 200
    sa, sb = a.stats(), b.stats()
    assert (sa["name"], sb["name"]) == ("a", "b")
    assert sa["requests"] > 0 and sb["requests"] > 0
    assert sa["requests"] + sb["requests"] == 20


# ---- failures -----------------------------------------------------------------------------------


def test_refused_connection_is_502(gateway_factory, certs, refused_port):
    gw = gateway_factory(base_policy(certs, refused_port.address))
    assert_gateway_error(request(gw.tls_port, "GET", "/"), 502, "bad_gateway")


def test_upstream_reset_is_502(gateway, upstream):
    assert_gateway_error(request(gateway.tls_port, "GET", "/reset"), 502, "bad_gateway")


def test_slow_upstream_is_504(gateway_factory, certs, upstream):
    gw = gateway_factory(base_policy(certs, upstream,
                                     upstreams={"core": {"response_timeout": "500ms"}}))
    start = time.monotonic()
    response = request(gw.tls_port, "GET", "/delay/3000")
    assert_gateway_error(response, 504)
    assert time.monotonic() - start < 2.9


def test_all_endpoints_down_becomes_503(gateway_factory, certs):
    with RefusedPort() as r1, RefusedPort() as r2:
        gw = gateway_factory(base_policy(certs, [r1, r2]))
        statuses = []

        def got_503():
            response = request(gw.tls_port, "GET", "/")
            statuses.append(response.status)
            return response if response.status == 503 else None

        response = wait_until(got_503, timeout=15, interval=0.1,
                              message="a 503 once every endpoint is marked down")
        assert_gateway_error(response, 503, "service_unavailable")
        assert set(statuses) <= {502, 503}, statuses


# ---- retries ------------------------------------------------------------------------------------


def test_get_retried_on_next_endpoint_when_one_refuses(gateway_factory, certs, upstream,
                                                       refused_port):
    gw = gateway_factory(base_policy(certs, [refused_port, upstream]))
    for i in range(6):
        assert request(gw.tls_port, "GET", f"/retry/{i}").status == 200
    assert targets(upstream) == [f"/retry/{i}" for i in range(6)]


def test_post_not_retried_when_endpoint_refuses(gateway_factory, certs, upstream, refused_port):
    # Round robin over [refused, healthy]: one of the first two POSTs lands on the refusing
    # endpoint, and a POST is never retried.
    gw = gateway_factory(base_policy(certs, [refused_port, upstream]))
    responses = [request(gw.tls_port, "POST", f"/post/{i}", body=b"x") for i in range(2)]
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 502], responses
    assert len(targets(upstream)) == 1


def test_idempotent_request_retried_after_reset(gateway_factory, certs, upstream_factory):
    a, b = upstream_factory(name="a"), upstream_factory(name="b")
    gw = gateway_factory(base_policy(certs, [a, b]))
    assert_gateway_error(request(gw.tls_port, "GET", "/reset"), 502, "bad_gateway")
    # retries: 1 (the default) = at most two attempts
    assert len(targets(a, "/reset")) + len(targets(b, "/reset")) == 2


def test_post_sent_once_when_upstream_resets(gateway_factory, certs, upstream_factory):
    a, b = upstream_factory(name="a"), upstream_factory(name="b")
    gw = gateway_factory(base_policy(certs, [a, b]))
    assert_gateway_error(request(gw.tls_port, "POST", "/reset", body=b"{}"), 502, "bad_gateway")
    assert len(targets(a, "/reset")) + len(targets(b, "/reset")) == 1


def test_retries_zero_means_no_retry(gateway_factory, certs, upstream, refused_port):
    # As with POST: round robin sends one of the first two GETs to the refusing endpoint.
    gw = gateway_factory(base_policy(certs, [refused_port, upstream],
                                     upstreams={"core": {"retries": 0}}))
    responses = [request(gw.tls_port, "GET", f"/once/{i}") for i in range(2)]
    assert sorted(r.status for r in responses) == [200, 502], responses


# ---- health checks ------------------------------------------------------------------------------


def test_active_health_check_skips_and_restores_endpoint(gateway_factory, certs, upstream_factory):
    a, b = upstream_factory(name="a"), upstream_factory(name="b")
    gw = gateway_factory(base_policy(
        certs, [a, b], upstreams={"core": {"health_check": {"path": "/health", "interval": "1s"}}}))
    a.set_healthy(False)

    def batch_avoids_a():
        before = len(targets(a, "/probe"))
        for _ in range(4):
            assert request(gw.tls_port, "GET", "/probe").status == 200
        return len(targets(a, "/probe")) == before

    wait_until(batch_avoids_a, timeout=10, interval=0.1,
               message="traffic leaves the endpoint failing its health check")
    before_a, before_b = len(targets(a, "/probe")), len(targets(b, "/probe"))
    for _ in range(6):
        assert request(gw.tls_port, "GET", "/probe").status == 200
    assert len(targets(a, "/probe")) == before_a
    assert len(targets(b, "/probe")) == before_b + 6
    # the checks themselves reached the endpoint
    assert all(r["method"] in ("GET", "HEAD") for r in a.requests() if r.path == "/health")
    assert targets(a, "/health")

    a.set_healthy(True)

    def batch_reaches_a():
        before = len(targets(a, "/probe"))
        for _ in range(4):
            assert request(gw.tls_port, "GET", "/probe").status == 200
        return len(targets(a, "/probe")) > before

    wait_until(batch_reaches_a, timeout=10, interval=0.1,
               message="traffic returns once the endpoint passes its health check")


def test_lone_endpoint_failing_its_health_check_is_still_tried(gateway_factory, certs, upstream):
    """Panic mode: when every endpoint is held down, requests still try them rather than
    answering 503 to everyone on a judgement that may be wrong."""
    gw = gateway_factory(base_policy(certs, upstream, upstreams={
        "core": {"health_check": {"path": "/health", "interval": "1s"}}}))
    upstream.set_healthy(False)
    wait_until(lambda: len(targets(upstream, "/health")) >= 2, timeout=10, interval=0.1,
               message="two health checks (the first one answered) reached the endpoint")
    for i in range(4):
        response = request(gw.tls_port, "GET", f"/still/{i}")
        assert response.status == 200, response
    assert len(targets(upstream, "/still/0")) == 1


def test_slow_answers_do_not_take_the_endpoint_down(gateway_factory, certs, upstream):
    gw = gateway_factory(base_policy(certs, upstream,
                                     upstreams={"core": {"response_timeout": "300ms"}}))
    for _ in range(5):
        assert_gateway_error(request(gw.tls_port, "GET", "/delay/1000"), 504)
    response = request(gw.tls_port, "GET", "/after-slow")
    assert response.status == 200, response
    assert targets(upstream, "/after-slow")


def test_health_belongs_to_one_upstream_not_to_its_address(gateway_factory, certs,
                                                           upstream_factory):
    x, y = upstream_factory(name="x"), upstream_factory(name="y")
    gw = gateway_factory(base_policy(
        certs, x,
        upstreams={"checked": {"endpoints": [x.address],
                               "health_check": {"path": "/health", "interval": "1s"}},
                   "shared": {"endpoints": [x.address, y.address]}},
        routes=[{"name": "checked", "match": {"path_prefix": "/checked"}, "upstream": "checked"},
                {"name": "shared", "match": {"path_prefix": "/shared"}, "upstream": "shared"}]))
    x.set_healthy(False)
    wait_until(lambda: len(targets(x, "/health")) >= 2, timeout=10, interval=0.1,
               message="the health check of `checked` found x failing")
    for i in range(6):
        assert request(gw.tls_port, "GET", f"/shared/{i}").status == 200
    # `shared` has no health check of its own: x stays in its rotation.
    assert targets(x, None) and [t for t in targets(x) if t.startswith("/shared/")]
    assert [t for t in targets(y) if t.startswith("/shared/")]


# ---- upstream TLS -------------------------------------------------------------------------------


@pytest.fixture
def tls_upstream(upstream_factory):
    return upstream_factory(name="secure", tls=True)


def tls_upstream_policy(certs, up, **tls):
    settings = {"enabled": True, "server_name": "upstream.test"}
    settings.update(tls)
    return base_policy(certs, up, upstreams={"core": {"tls": settings}})


def test_upstream_tls_verified(gateway_factory, certs, tls_upstream):
    gw = gateway_factory(tls_upstream_policy(certs, tls_upstream, ca_file=certs.ca))
    response = request(gw.tls_port, "POST", "/echo", body=b"over tls")
    assert response.status == 200, response
    assert response.json()["body"] == "over tls"
    assert targets(tls_upstream) == ["/echo"]


def test_upstream_tls_wrong_ca_is_502(gateway_factory, certs, tls_upstream):
    gw = gateway_factory(tls_upstream_policy(certs, tls_upstream, ca_file=certs.wrong_ca))
    assert_gateway_error(request(gw.tls_port, "GET", "/"), 502, "bad_gateway")
    assert tls_upstream.requests() == []


def test_upstream_tls_wrong_name_is_502(gateway_factory, certs, tls_upstream):
    gw = gateway_factory(tls_upstream_policy(certs, tls_upstream, ca_file=certs.ca,
                                             server_name="other.test"))
    assert_gateway_error(request(gw.tls_port, "GET", "/"), 502, "bad_gateway")
    assert tls_upstream.requests() == []


def test_upstream_tls_without_verification(gateway_factory, certs, tls_upstream):
    gw = gateway_factory(tls_upstream_policy(certs, tls_upstream, ca_file=certs.wrong_ca,
                                             verify=False))
    assert request(gw.tls_port, "GET", "/").status == 200
    assert targets(tls_upstream) == ["/"]

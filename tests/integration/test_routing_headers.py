"""Routing, path normalisation, the headers forwarded to the upstream, the headers a client gets
back, and masking of upstream errors."""

import pytest

from harness import (REQUEST_ID, SECURITY_HEADERS, assert_gateway_error, assert_security_headers,
                     base_policy, build_request, is_closed, read_response, request, send,
                     tls_connect)


def routes_policy(certs, upstream, routes, **overrides):
    policy = base_policy(certs, upstream, **overrides)
    policy["routes"] = routes
    return policy


def echo(gateway, path="/echo", headers=None, body=None, method="GET"):
    """A request through the gateway to demo-upstream's /echo: (client response, what the
    upstream received)."""
    response = request(gateway.tls_port, method, path, headers=headers, body=body)
    assert response.status == 200, response
    return response, response.json()


def received_header(record, name):
    return [v for k, v in record["headers"] if k.lower() == name.lower()]


# ---- routing ------------------------------------------------------------------------------------


@pytest.fixture
def api_gateway(gateway_factory, certs, upstream):
    return gateway_factory(routes_policy(certs, upstream, [
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core"},
    ]))


def test_no_route_is_404(api_gateway, upstream):
    response = request(api_gateway.tls_port, "GET", "/other")
    body = assert_gateway_error(response, 404, "not_found")
    assert set(body) == {"error", "request_id"}
    assert upstream.requests() == []


def test_404_carries_security_headers_with_configured_values(api_gateway):
    response = request(api_gateway.tls_port, "GET", "/nowhere")
    for name, value in SECURITY_HEADERS.items():
        assert response.header(name) == value
    assert response.header("X-Request-Id") == response.json()["request_id"]


@pytest.mark.parametrize("path, routed", [
    ("/api", True),
    ("/api/", True),
    ("/api/x", True),
    ("/api/x/y?z=1", True),
    ("/api?x=1", True),
    ("/apix", False),
    ("/apix/y", False),
    ("/ap", False),
    ("/", False),
])
def test_path_prefix_matches_whole_segments(api_gateway, upstream, path, routed):
    response = request(api_gateway.tls_port, "GET", path)
    if routed:
        assert response.status == 200, response
        assert [r["target"] for r in upstream.requests()] == [path]
    else:
        assert_gateway_error(response, 404, "not_found")
        assert upstream.requests() == []


def test_first_matching_route_wins(gateway_factory, certs, upstream_factory):
    a, b = upstream_factory(name="a"), upstream_factory(name="b")
    policy = routes_policy(certs, a, [
        {"name": "special", "match": {"path_prefix": "/api/special"}, "upstream": "other"},
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core"},
        {"name": "shadowed", "match": {"path_prefix": "/api/special/x"}, "upstream": "core"},
    ], upstreams={"other": {"endpoints": [b.address]}})
    gw = gateway_factory(policy)
    assert request(gw.tls_port, "GET", "/api/special/x").status == 200
    assert request(gw.tls_port, "GET", "/api/plain").status == 200
    assert [r["target"] for r in b.requests()] == ["/api/special/x"]
    assert [r["target"] for r in a.requests()] == ["/api/plain"]


def test_method_not_allowed(gateway_factory, certs, upstream):
    gw = gateway_factory(routes_policy(certs, upstream, [
        {"name": "read", "match": {"path_prefix": "/", "methods": ["GET"]}, "upstream": "core"},
    ]))
    response = request(gw.tls_port, "POST", "/thing", body=b"{}")
    assert_gateway_error(response, 405)
    assert response.header("Allow") == "GET, HEAD"
    assert upstream.requests() == []
    assert request(gw.tls_port, "GET", "/thing").status == 200
    head = request(gw.tls_port, "HEAD", "/thing")
    assert head.status == 200 and head.body == b""
    assert [r["method"] for r in upstream.requests()] == ["GET", "HEAD"]


# ---- path normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("sent, forwarded", [
    ("/api/a/../b", "/api/b"),
    ("/api/a/../b?x=1", "/api/b?x=1"),
    ("/api/./b", "/api/b"),
    ("/api/a/./../b/", "/api/b/"),
])
def test_dot_segments_are_resolved_before_forwarding(gateway, upstream, sent, forwarded):
    assert request(gateway.tls_port, "GET", sent).status == 200
    assert [r["target"] for r in upstream.requests()] == [forwarded]


def test_encoded_dot_segments_cannot_escape_a_prefix(gateway_factory, certs, upstream_factory):
    api, admin = upstream_factory(name="api"), upstream_factory(name="admin")
    policy = routes_policy(certs, api, [
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core"},
        {"name": "admin", "match": {"path_prefix": "/admin"}, "upstream": "admin"},
    ], upstreams={"admin": {"endpoints": [admin.address]}})
    gw = gateway_factory(policy)
    assert request(gw.tls_port, "GET", "/api/%2e%2e/admin").status == 200
    assert api.requests() == []
    assert [r["target"] for r in admin.requests()] == ["/admin"]


def test_encoded_dot_segments_without_a_matching_route_are_404(api_gateway, upstream):
    assert_gateway_error(request(api_gateway.tls_port, "GET", "/api/%2e%2e/admin"), 404)
    # Climbing above the root is refused outright, encoded or not.
    assert_gateway_error(request(api_gateway.tls_port, "GET", "/api/%2E%2E/%2e%2e/etc"), 400)
    assert upstream.requests() == []


@pytest.mark.parametrize("path", [
    "/api/a%2fb",      # encoded slash
    "/api/a%2Fb",
    "/api/%252e",      # double encoding
    "/api/%252e%252e/admin",
    "/api/a%5cb",      # encoded backslash
    "/api/%00",        # NUL
    "/api/%0d%0a",     # other encoded control characters
    "/api/../../etc",  # climbs above the root
    "/api/%zz",        # not a percent-encoding
])
def test_ambiguous_paths_are_400_and_close(gateway, upstream, path):
    sock = tls_connect(gateway.tls_port)
    try:
        send(sock, build_request("GET", path))
        response = read_response(sock)
        assert_gateway_error(response, 400)
        assert is_closed(sock, 3)
    finally:
        sock.close()
    assert upstream.requests() == []


# ---- towards the upstream -----------------------------------------------------------------------


def test_forwarding_headers_set(gateway):
    response, received = echo(gateway)
    r = received
    assert received_header(r, "X-Forwarded-For") == ["127.0.0.1"]
    assert received_header(r, "X-Forwarded-Proto") == ["https"]
    assert received_header(r, "X-Forwarded-Host") == ["localhost"]
    ids = received_header(r, "X-Request-Id")
    assert len(ids) == 1 and REQUEST_ID.match(ids[0])
    assert response.header("X-Request-Id") == ids[0]


def test_client_copies_of_forwarding_headers_are_replaced(gateway):
    response, r = echo(gateway, headers=[
        ("X-Forwarded-For", "1.2.3.4"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "evil.test"),
        ("x-forwarded-for", "5.6.7.8"),
        ("X-Request-Id", "client-chosen-id"),
    ])
    assert received_header(r, "X-Forwarded-For") == ["127.0.0.1"]
    assert received_header(r, "X-Forwarded-Proto") == ["https"]
    assert received_header(r, "X-Forwarded-Host") == ["localhost"]
    ids = received_header(r, "X-Request-Id")
    assert len(ids) == 1 and ids[0] != "client-chosen-id" and REQUEST_ID.match(ids[0])
    assert response.header("X-Request-Id") == ids[0]
    assert "1.2.3.4" not in r["raw_head"] and "evil.test" not in r["raw_head"]


def test_request_ids_are_unique(gateway):
    ids = [request(gateway.tls_port, "GET", "/").header("X-Request-Id") for _ in range(5)]
    assert all(REQUEST_ID.match(i) for i in ids), ids
    assert len(set(ids)) == 5


def test_x_forwarded_for_appended_from_trusted_proxy(gateway_factory, certs, upstream):
    gw = gateway_factory(base_policy(certs, upstream,
                                     server={"trusted_proxies": ["127.0.0.1/32"]}))
    _, r = echo(gw, headers=[("X-Forwarded-For", "1.2.3.4")])
    assert received_header(r, "X-Forwarded-For") == ["1.2.3.4, 127.0.0.1"]
    _, r = echo(gw)
    assert received_header(r, "X-Forwarded-For") == ["127.0.0.1"]


def test_x_forwarded_for_not_trusted_from_other_networks(gateway_factory, certs, upstream):
    gw = gateway_factory(base_policy(certs, upstream, server={"trusted_proxies": ["10.0.0.0/8"]}))
    _, r = echo(gw, headers=[("X-Forwarded-For", "1.2.3.4")])
    assert received_header(r, "X-Forwarded-For") == ["127.0.0.1"]


def test_incoming_request_id_kept_when_trusted(gateway_factory, certs, upstream):
    gw = gateway_factory(base_policy(
        certs, upstream, server={"request_id": {"header": "X-Request-Id", "trust_incoming": True}}))
    incoming = "0123456789abcdef0123456789abcdef"
    response, r = echo(gw, headers=[("X-Request-Id", incoming)])
    assert received_header(r, "X-Request-Id") == [incoming]
    assert response.header("X-Request-Id") == incoming
    # without one, the gateway still makes one
    response, r = echo(gw)
    assert REQUEST_ID.match(received_header(r, "X-Request-Id")[0])
    assert response.header("X-Request-Id") == received_header(r, "X-Request-Id")[0]


def test_hop_by_hop_headers_not_forwarded(gateway):
    _, r = echo(gateway, headers=[
        ("Connection", "keep-alive, X-Secret"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "websocket"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Secret", "s3cr3t"),
        ("X-Normal", "kept"),
    ])
    names = [k.lower() for k, _ in r["headers"]]
    for name in ("keep-alive", "te", "upgrade", "proxy-connection", "x-secret"):
        assert name not in names, r["headers"]
    for value in received_header(r, "Connection"):
        assert "x-secret" not in value.lower()
    assert "s3cr3t" not in r["raw_head"]
    assert received_header(r, "X-Normal") == ["kept"]


def test_end_to_end_headers_forwarded_in_order(gateway):
    _, r = echo(gateway, headers=[("Accept", "application/json"), ("X-Multi", "1"),
                                  ("Authorization", "Basic dTpw"), ("X-Multi", "2")])
    assert received_header(r, "Accept") == ["application/json"]
    assert received_header(r, "X-Multi") == ["1", "2"]
    assert received_header(r, "Authorization") == ["Basic dTpw"]
    assert r["method"] == "GET" and r["version"] == "HTTP/1.1"


# ---- towards the client -------------------------------------------------------------------------


def test_response_headers_cleaned_and_set(gateway):
    response = request(gateway.tls_port, "GET", "/")
    assert response.status == 200
    assert_security_headers(response)
    assert response.header("Content-Type") == "text/plain"
    assert response.body == b"hello from the legacy service\n"


def cookie_attributes(cookie):
    parts = [p.strip() for p in cookie.split(";")]
    return parts[0], [p.lower() for p in parts[1:]]


def test_cookie_flags(gateway):
    response = request(gateway.tls_port, "GET", "/cookie")
    assert response.status == 200
    assert_security_headers(response)
    cookies = dict(cookie_attributes(c) for c in response.headers_all("Set-Cookie"))
    assert set(cookies) == {"session=abc123", "theme=dark"}

    session = cookies["session=abc123"]
    assert "path=/" in session
    assert "secure" in session and "httponly" in session
    assert [a for a in session if a.startswith("samesite")] == ["samesite=strict"]

    theme = cookies["theme=dark"]
    assert theme.count("secure") == 1 and theme.count("httponly") == 1
    assert [a for a in theme if a.startswith("samesite")] == ["samesite=lax"]


def test_upstream_5xx_masked(gateway):
    response = request(gateway.tls_port, "GET", "/status/500")
    body = assert_gateway_error(response, 500, "internal_error")
    assert b"NullPointerException" not in response.body
    assert "text/html" not in (response.header("Content-Type") or "")
    assert response.header("X-Request-Id") == body["request_id"]


@pytest.mark.parametrize("status", [501, 502, 503, 504])
def test_other_upstream_5xx_masked_with_same_status(gateway, status):
    response = request(gateway.tls_port, "GET", f"/status/{status}")
    assert_gateway_error(response, status)


def test_upstream_4xx_passes(gateway):
    response = request(gateway.tls_port, "GET", "/status/404")
    assert response.status == 404
    assert b"NullPointerException" in response.body
    assert_security_headers(response)


def test_unmasked_5xx_when_configured(gateway_factory, certs, upstream):
    gw = gateway_factory(base_policy(certs, upstream, errors={"mask_upstream_5xx": False}))
    response = request(gw.tls_port, "GET", "/status/500")
    assert response.status == 500
    assert b"NullPointerException" in response.body
    assert response.header("Content-Type") == "text/html"
    assert_security_headers(response)

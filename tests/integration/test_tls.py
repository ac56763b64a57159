"""TLS listeners (versions, ciphers, SNI, ALPN, resumption, client certificates) and the plain
HTTP listener that only redirects to https."""

import pytest

from harness import (assert_security_headers, base_policy, build_request, handshake_fails,
                     peer_san, plain_request, read_response, request, send, tls_connect,
                     wait_until)


def tls_policy(certs, upstream, **tls):
    """The base policy with extra keys on the first listener's `tls` block."""
    policy = base_policy(certs, upstream)
    policy["server"]["listen"][0]["tls"].update(tls)
    return policy


def get_ok(sock):
    send(sock, build_request("GET", "/"))
    response = read_response(sock)
    assert response.status == 200, response
    return response


# ---- versions and ciphers -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_supported_versions_handshake(gateway, version):
    sock = tls_connect(gateway.tls_port, min_version=version, max_version=version)
    try:
        assert sock.version() == version.replace("TLS", "TLSv")
        assert sock.selected_alpn_protocol() == "http/1.1"
        assert get_ok(sock).body == b"hello from the legacy service\n"
    finally:
        sock.close()


@pytest.mark.parametrize("version", ["TLS1", "TLS1.1"])
def test_old_versions_refused(gateway, version):
    assert handshake_fails(gateway.tls_port, min_version=version, max_version=version)


def test_min_version_tls13_refuses_tls12(gateway_factory, certs, upstream):
    gw = gateway_factory(tls_policy(certs, upstream, min_version="TLS1.3"))
    assert handshake_fails(gw.tls_port, min_version="TLS1.2", max_version="TLS1.2")
    sock = tls_connect(gw.tls_port, min_version="TLS1.3")
    try:
        assert sock.version() == "TLSv1.3"
        get_ok(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("cipher", [
    "AES128-SHA",                      # RSA key exchange, CBC
    "AES128-GCM-SHA256",               # RSA key exchange, AEAD
    "ECDHE-ECDSA-AES128-SHA",          # ECDHE, CBC
    "ECDHE-ECDSA-AES256-SHA384",       # ECDHE, CBC
])
def test_tls12_without_ecdhe_aead_refused(gateway, cipher):
    assert handshake_fails(gateway.tls_port, max_version="TLS1.2", ciphers=cipher)


@pytest.mark.parametrize("cipher", [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
])
def test_tls12_ecdhe_aead_accepted(gateway, cipher):
    sock = tls_connect(gateway.tls_port, max_version="TLS1.2", ciphers=cipher)
    try:
        assert sock.cipher()[0] == cipher
        get_ok(sock)
    finally:
        sock.close()


# ---- certificates by SNI, ALPN ------------------------------------------------------------------


@pytest.fixture
def sni_gateway(gateway_factory, certs, upstream):
    return gateway_factory(tls_policy(certs, upstream, certificates=[
        {"cert": certs.server_cert, "key": certs.server_key},
        {"cert": certs.other_cert, "key": certs.other_key},
    ]))


def test_sni_selects_second_certificate(sni_gateway):
    sock = tls_connect(sni_gateway.tls_port, server_name="other.test")
    try:
        assert ("DNS", "other.test") in peer_san(sock)
        send(sock, build_request("GET", "/", host="other.test"))
        assert read_response(sock).status == 200
    finally:
        sock.close()


@pytest.mark.parametrize("server_name", ["localhost", "unknown.test", None])
def test_unknown_or_missing_sni_gets_first_certificate(sni_gateway, server_name):
    sock = tls_connect(sni_gateway.tls_port, server_name=server_name, check_hostname=False)
    try:
        san = peer_san(sock)
        assert ("DNS", "localhost") in san and ("DNS", "other.test") not in san
    finally:
        sock.close()


def test_alpn_selects_http11(gateway):
    sock = tls_connect(gateway.tls_port, alpn=("h2", "http/1.1"))
    try:
        assert sock.selected_alpn_protocol() == "http/1.1"
        get_ok(sock)
    finally:
        sock.close()


# ---- resumption ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["TLS1.2", "TLS1.3"])
def test_session_resumption(gateway, version):
    first = tls_connect(gateway.tls_port, min_version=version, max_version=version)
    get_ok(first)  # TLS 1.3 tickets arrive after the handshake, with the first response
    session = first.session
    first.close()
    assert session is not None
    second = tls_connect(gateway.tls_port, min_version=version, max_version=version,
                         session=session)
    try:
        assert second.session_reused
        get_ok(second)
    finally:
        second.close()


# ---- client certificates ------------------------------------------------------------------------


def test_client_auth_required(gateway_factory, certs, upstream):
    gw = gateway_factory(tls_policy(certs, upstream, client_ca=certs.client_ca,
                                    client_auth="required"))
    for version in ("TLS1.2", "TLS1.3"):
        assert handshake_fails(gw.tls_port, min_version=version, max_version=version)
        sock = tls_connect(gw.tls_port, min_version=version, max_version=version,
                           cert=certs.client_cert, key=certs.client_key)
        try:
            get_ok(sock)
        finally:
            sock.close()
    assert [r["target"] for r in upstream.requests()] == ["/", "/"]
    # The verified subject is recorded with each request.
    assert wait_until(lambda: len(gw.access_log()) >= 2, 5)
    assert all("CN=teller-01" in line.get("client_certificate", "") for line in gw.access_log())


def test_client_auth_required_refuses_certificate_from_other_ca(gateway_factory, certs, upstream):
    # the client certificate chains to the client CA; with the server CA configured instead it
    # must be refused
    gw = gateway_factory(tls_policy(certs, upstream, client_ca=certs.ca, client_auth="required"))
    assert handshake_fails(gw.tls_port, cert=certs.client_cert, key=certs.client_key)
    assert upstream.requests() == []


def test_client_auth_optional(gateway_factory, certs, upstream):
    gw = gateway_factory(tls_policy(certs, upstream, client_ca=certs.client_ca,
                                    client_auth="optional"))
    assert request(gw.tls_port, "GET", "/").status == 200
    response = request(gw.tls_port, "GET", "/", cert=certs.client_cert, key=certs.client_key)
    assert response.status == 200


# ---- redirect listener --------------------------------------------------------------------------


@pytest.fixture
def redirect_gateway(gateway_factory, certs, upstream):
    policy = base_policy(certs, upstream)
    policy["server"]["listen"].append({"address": "127.0.0.1:0", "redirect_https": True})
    return gateway_factory(policy)


def test_redirect_listener_answers_308(redirect_gateway, upstream):
    response = plain_request(redirect_gateway.redirect_port, "GET", "/path?q=1", host="bank.test")
    assert response.status == 308
    assert response.header("Location") == f"https://bank.test:{redirect_gateway.tls_port}/path?q=1"
    assert_security_headers(response)
    assert upstream.requests() == []


def test_redirect_uses_tls_port_not_the_hosts_port(redirect_gateway, upstream):
    response = plain_request(redirect_gateway.redirect_port, "POST", "/a/b", host="bank.test:8080",
                             body=b"x=1")
    assert response.status == 308
    assert response.header("Location") == f"https://bank.test:{redirect_gateway.tls_port}/a/b"
    assert upstream.requests() == []


def test_redirect_listener_never_proxies(redirect_gateway, upstream):
    for path in ("/", "/echo", "/status/500"):
        response = plain_request(redirect_gateway.redirect_port, "GET", path, host="bank.test")
        assert response.status == 308
    assert upstream.requests() == []
    assert upstream.stats()["connections_accepted"] == 0

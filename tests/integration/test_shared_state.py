"""Shared security state with the memory backend: the admin API (bearer token, strict bodies,
revocations, bans), revocation on the request path for fresh and cached tokens, bans on every
route, and durability: acknowledged revocations and bans survive a graceful restart and a
kill -9 when state.memory.path is set; --check and the start-up log warn when it is not."""

import json
import math
import os
import shutil
import signal
import tempfile
import time

import pytest

from harness import (Gateway, Upstream, assert_gateway_error, assert_security_headers,
                     base_policy, plain_request, request, run_check, to_yaml, wait_until)
from test_jwt import provider, sign, token_hash

ADMIN_TOKEN = "s3cret-admin-token-for-tests"


def state_policy(certs, upstream, jwt_keys, workdir, path="state.db", token=True, **overrides):
    policy = base_policy(certs, upstream, **overrides)
    if token:
        with open(os.path.join(workdir, "admin.token"), "w") as f:
            f.write(ADMIN_TOKEN + "\n")
        policy["server"]["admin"]["token_file"] = "admin.token"
    policy["state"] = {"backend": "memory", "memory": {"path": path}}
    policy["jwt_providers"] = {"corp": provider(jwks_file=jwt_keys.jwks, algorithms=["ES256"])}
    policy["routes"] = [
        {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "core"},
        {"name": "accounts", "match": {"path_prefix": "/api"}, "upstream": "core",
         "auth": {"jwt": "corp"}},
    ]
    return policy


def start(certs, core, jwt_keys, workdir=None, **kwargs):
    workdir = workdir or tempfile.mkdtemp(prefix="portcullis-state-")
    gateway = Gateway(state_policy(certs, core, jwt_keys, workdir, **kwargs), workdir=workdir)
    return gateway, workdir


def admin(gateway, method, path, body=None, token=ADMIN_TOKEN):
    headers = [("Authorization", f"Bearer {token}")] if token else []
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.append(("Content-Type", "application/json"))
    return plain_request(gateway.admin_port, method, path, headers=headers, body=data)


def api(gateway, token, path="/api/accounts"):
    return request(gateway.tls_port, "GET", path, headers=[("Authorization", f"Bearer {token}")])


def token_for(jwt_keys, jti, sub="alice", iat=None):
    claims = {"jti": jti, "sub": sub}
    if iat is not None:
        claims["iat"] = iat
    return sign(jwt_keys.key, kid="es-1", claims=claims, exp_in=600)


@pytest.fixture
def gw(certs, core, jwt_keys):
    gateway, workdir = start(certs, core, jwt_keys)
    yield gateway
    gateway.stop()
    shutil.rmtree(workdir, ignore_errors=True)


# ---- the admin API -------------------------------------------------------------------------------


def test_write_endpoints_are_off_without_a_token_file(certs, core, jwt_keys):
    gateway, workdir = start(certs, core, jwt_keys, token=False)
    try:
        response = admin(gateway, "POST", "/revocations", {"jti": "x", "exp": 4102444800})
        assert response.status == 403, response
        assert response.json()["error"] == "forbidden"
        assert admin(gateway, "GET", "/bans").status == 403
        assert plain_request(gateway.admin_port, "GET", "/healthz").status == 200
    finally:
        gateway.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_wrong_or_missing_token_is_refused_and_logged_without_the_token(gw):
    for token in (None, "wrong", ADMIN_TOKEN + "x", ADMIN_TOKEN[:-1]):
        response = admin(gw, "POST", "/bans", {"ip": "192.0.2.1", "duration": "1m"}, token=token)
        assert response.status == 401, (token, response)
        assert response.header("WWW-Authenticate") == "Bearer"
    assert admin(gw, "GET", "/bans").json() == {"bans": []}  # nothing was written
    wait_until(lambda: sum(e.get("event") == "admin_denied" for e in gw.stderr_events()) >= 3,
               message="refused admin requests reach the security log")
    assert all("wrong" not in line and ADMIN_TOKEN not in line for line in gw.stderr_lines())


@pytest.mark.parametrize("body, message", [
    (b"", "body must be one JSON object"),
    (b"[]", "body must be one JSON object"),
    (b'{"jti":"a"}', "jti and exp are both required"),
    (b'{"jti":"a","exp":4102444800,"sub":"b"}', "either"),
    (b'{"jti":"a","exp":4102444800,"extra":1}', "unknown member"),
    (b'{"jti":"a","jti":"b","exp":4102444800}', "body must be one JSON object"),
])
def test_a_bad_revocation_body_gets_400_with_a_json_error(gw, body, message):
    response = admin(gw, "POST", "/revocations", body)
    assert response.status == 400, response
    answer = response.json()
    assert answer["error"] == "invalid_body"
    assert message in answer["message"]
    assert answer["request_id"]


def test_an_oversized_admin_body_is_refused_before_it_is_read(gw):
    response = admin(gw, "POST", "/revocations", b'{"jti":"' + b"a" * 5000 + b'","exp":1}')
    assert response.status == 413, response


def test_wrong_method_on_an_admin_path_is_405(gw):
    response = admin(gw, "GET", "/revocations")
    assert response.status == 405
    assert response.header("Allow") == "POST"


# ---- revocation on the request path ----------------------------------------------------------------


def test_revoked_jti_is_refused_fresh_and_cached(gw, jwt_keys, core):
    token = token_for(jwt_keys, "jti-revoke-me")
    other = token_for(jwt_keys, "jti-keep-me")
    assert api(gw, token).status == 200  # verified, and now in the verified-token cache
    response = admin(gw, "POST", "/revocations", {"jti": "jti-revoke-me", "exp": int(time.time()) + 600})
    assert response.status == 201, response
    before = len(core.requests())
    refused = api(gw, token)
    assert_gateway_error(refused, 401, "unauthorized")
    assert 'error="invalid_token"' in refused.header("WWW-Authenticate")
    assert_security_headers(refused)
    assert len(core.requests()) == before  # nothing reached the upstream
    assert api(gw, other).status == 200
    # The security log is written asynchronously: wait for the line.
    wait_until(lambda: [e for e in gw.stderr_events() if e.get("event") == "admin_write"],
               message="the admin write reaches the security log")
    events = [e for e in gw.stderr_events() if e.get("event") == "admin_write"]
    assert events[-1]["what"] == "revoke_token" and events[-1]["jti"] == "jti-revoke-me"
    assert events[-1]["by"] == token_hash(ADMIN_TOKEN)  # who, as a hash; never the token


def test_revocation_for_one_issuer_spares_the_same_jti_from_another(gw, jwt_keys):
    token = token_for(jwt_keys, "jti-other-issuer")
    response = admin(gw, "POST", "/revocations",
                     {"jti": "jti-other-issuer", "exp": int(time.time()) + 600,
                      "iss": "https://elsewhere.example"})
    assert response.status == 201
    assert api(gw, token).status == 200


def test_subject_cut_off_refuses_tokens_issued_before_it(gw, jwt_keys):
    now = int(time.time())
    old = token_for(jwt_keys, "jti-old", sub="mallory", iat=now - 60)
    assert api(gw, old).status == 200
    response = admin(gw, "POST", "/revocations", {"sub": "mallory", "issued_before": now - 5})
    assert response.status == 201, response
    assert_gateway_error(api(gw, old), 401)
    assert api(gw, token_for(jwt_keys, "jti-new", sub="mallory", iat=now)).status == 200
    assert api(gw, token_for(jwt_keys, "jti-someone", sub="bob", iat=now - 60)).status == 200


def test_revocations_do_not_touch_routes_without_auth(gw, jwt_keys):
    admin(gw, "POST", "/revocations", {"jti": "jti-public", "exp": int(time.time()) + 600})
    assert request(gw.tls_port, "GET", "/public/x").status == 200


# ---- bans --------------------------------------------------------------------------------------------


def test_a_ban_refuses_the_client_on_every_route_until_lifted(gw, jwt_keys, core):
    token = token_for(jwt_keys, "jti-ban")
    started = time.monotonic()
    response = admin(gw, "POST", "/bans", {"ip": "127.0.0.1", "duration": "10m", "reason": "test"})
    assert response.status == 201, response
    before = len(core.requests())
    for path in ("/public/a", "/api/accounts", "/nowhere"):
        refused = request(gw.tls_port, "GET", path, headers=[("Authorization", f"Bearer {token}")])
        assert_gateway_error(refused, 429, "too_many_requests")
        waited = math.ceil(time.monotonic() - started)  # the ban began within this
        assert 600 - waited - 1 <= int(refused.header("Retry-After")) <= 600
        assert_security_headers(refused)
    assert len(core.requests()) == before
    bans = admin(gw, "GET", "/bans").json()["bans"]
    assert [(b["ip"], b["reason"]) for b in bans] == [("127.0.0.1", "test")]
    assert abs(bans[0]["until"] - (time.time() + 600)) < 5
    assert admin(gw, "DELETE", "/bans/127.0.0.1").status == 200
    assert request(gw.tls_port, "GET", "/public/a").status == 200
    assert admin(gw, "GET", "/bans").json() == {"bans": []}


def test_a_bad_ban_body_or_path_gets_400(gw):
    assert admin(gw, "POST", "/bans", {"ip": "300.1.1.1", "duration": "1m"}).status == 400
    assert admin(gw, "POST", "/bans", {"ip": "192.0.2.1", "duration": "soon"}).status == 400
    assert admin(gw, "DELETE", "/bans/not-an-ip").status == 400


# ---- durability ------------------------------------------------------------------------------------


def test_revocations_and_bans_survive_a_restart_and_a_kill(certs, core, jwt_keys):
    workdir = tempfile.mkdtemp(prefix="portcullis-state-")
    try:
        token = token_for(jwt_keys, "jti-durable")
        gateway, _ = start(certs, core, jwt_keys, workdir=workdir)
        assert api(gateway, token).status == 200
        assert admin(gateway, "POST", "/revocations",
                     {"jti": "jti-durable", "exp": int(time.time()) + 600}).status == 201
        assert admin(gateway, "POST", "/bans", {"ip": "192.0.2.77", "duration": "1h"}).status == 201
        gateway.stop()

        gateway, _ = start(certs, core, jwt_keys, workdir=workdir)  # a graceful restart
        assert_gateway_error(api(gateway, token), 401)
        assert [b["ip"] for b in admin(gateway, "GET", "/bans").json()["bans"]] == ["192.0.2.77"]
        # Acknowledged, then killed at once: no chance to flush anything at exit.
        assert admin(gateway, "POST", "/revocations",
                     {"jti": "jti-killed", "exp": int(time.time()) + 600}).status == 201
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait(timeout=10)
        gateway.stop()

        gateway, _ = start(certs, core, jwt_keys, workdir=workdir)
        try:
            assert_gateway_error(api(gateway, token_for(jwt_keys, "jti-killed")), 401)
            assert_gateway_error(api(gateway, token), 401)
            assert api(gateway, token_for(jwt_keys, "jti-fine")).status == 200
        finally:
            gateway.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_without_a_path_state_is_per_process_and_says_so(certs, core, jwt_keys):
    workdir = tempfile.mkdtemp(prefix="portcullis-state-")
    try:
        policy = state_policy(certs, core, jwt_keys, workdir, path="")
        path = os.path.join(workdir, "policy.yaml")
        with open(path, "w") as f:
            f.write(to_yaml(policy))
        code, output = run_check(path)
        assert code == 0, output
        assert "OK" in output and "state.memory.path is empty" in output
        gateway = Gateway(policy, workdir=workdir)
        try:
            warnings = [e for e in gateway.stderr_events() if e.get("event") == "warning"]
            assert any("state.memory.path is empty" in e["message"] for e in warnings)
            token = token_for(jwt_keys, "jti-volatile")
            assert admin(gateway, "POST", "/revocations",
                         {"jti": "jti-volatile", "exp": int(time.time()) + 600}).status == 201
            assert_gateway_error(api(gateway, token), 401)
        finally:
            gateway.stop()
        gateway = Gateway(policy, workdir=workdir)
        try:
            assert api(gateway, token).status == 200  # this process never heard of it
        finally:
            gateway.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_metrics_count_revocations_bans_and_admin_requests(gw, jwt_keys):
    token = token_for(jwt_keys, "jti-metrics")
    admin(gw, "POST", "/revocations", {"jti": "jti-metrics", "exp": int(time.time()) + 600})
    admin(gw, "POST", "/bans", {"ip": "192.0.2.9", "duration": "1m"})
    api(gw, token)
    text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
    assert 'portcullis_admin_requests_total{endpoint="post_revocations",result="ok"} 1' in text
    assert 'portcullis_bans_issued_total{source="admin"} 1' in text
    assert "portcullis_denylist_hits_total 1" in text
    assert 'portcullis_revocations{kind="token"} 1' in text
    assert "portcullis_bans_active 1" in text
    assert "portcullis_state_backend_up 1" in text

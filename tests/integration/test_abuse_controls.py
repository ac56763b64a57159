"""Abuse controls through the real binary: GCRA rate limits per client IP and per JWT subject
(429 with Retry-After and RateLimit headers, nothing sent upstream), login protection banning an
IP after repeated failures (on every route, surviving a restart), ip_rules refusing connections
before TLS, the client IP taken from X-Forwarded-For only through a trusted proxy, the load-time
refusals, and the metrics."""

import math
import os
import shutil
import socket
import ssl
import tempfile
import time

import pytest

from harness import (Gateway, Upstream, assert_gateway_error, assert_security_headers,
                     base_policy, plain_request, request, run_check, tls_connect, to_yaml,
                     wait_until)
from test_jwt import provider, sign


def upstream_count(core, prefix):
    return sum(1 for r in core.requests() if r.path.startswith(prefix))


def limited_policy(certs, core, jwks, **overrides):
    policy = base_policy(certs, core, **overrides)
    policy["jwt_providers"] = {"corp": provider(jwks_file=jwks, algorithms=["ES256"])}
    policy["rate_limits"] = {
        "per_ip": {"key": "client_ip", "rate": 1, "per": "1m", "burst": 3},
        "per_user": {"key": "jwt.sub", "rate": 1, "per": "1m", "burst": 2},
    }
    policy["routes"] = [
        {"name": "limited", "match": {"path_prefix": "/limited"}, "upstream": "core",
         "rate_limit": ["per_ip"]},
        {"name": "user", "match": {"path_prefix": "/user"}, "upstream": "core",
         "auth": {"jwt": "corp"}, "rate_limit": ["per_user"]},
        {"name": "open", "match": {"path_prefix": "/"}, "upstream": "core"},
    ]
    return policy


# ---- rate limits ----------------------------------------------------------------------------------


def test_per_ip_limit_lets_the_burst_through_then_answers_429(certs, core, jwt_keys):
    with Gateway(limited_policy(certs, core, jwt_keys.jwks)) as gw:
        started = time.monotonic()
        for i in range(3):
            assert request(gw.tls_port, "GET", f"/limited/{i}").status == 200
        before = upstream_count(core, "/limited/")
        refused = request(gw.tls_port, "GET", "/limited/over")
        assert_gateway_error(refused, 429, "too_many_requests")
        assert_security_headers(refused)
        # One request a minute: the wait runs from the first request, less the time gone since.
        waited = math.ceil(time.monotonic() - started)
        assert 60 - waited - 1 <= int(refused.header("Retry-After")) <= 60
        assert refused.header("RateLimit-Limit") == "3"
        assert refused.header("RateLimit-Remaining") == "0"
        assert int(refused.header("RateLimit-Reset")) >= int(refused.header("Retry-After"))
        assert upstream_count(core, "/limited/") == before  # nothing reached the upstream
        # Other routes are not limited, and the limit is per route's list.
        assert request(gw.tls_port, "GET", "/elsewhere").status == 200
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
        assert 'portcullis_rate_limit_decisions_total{limit="per_ip",result="allowed"} 3' in text
        assert 'portcullis_rate_limit_decisions_total{limit="per_ip",result="denied"} 1' in text
        # The access log is written asynchronously: wait for the line.
        wait_until(lambda: [e for e in gw.access_log() if e.get("reason") == "rate_limited"],
                   message="the refusal reaches the access log")
        rejected = [e for e in gw.access_log() if e.get("reason") == "rate_limited"]
        assert rejected[0]["status"] == 429


def test_client_ip_comes_from_x_forwarded_for_only_through_a_trusted_proxy(certs, core, jwt_keys):
    policy = limited_policy(certs, core, jwt_keys.jwks)
    policy["server"]["trusted_proxies"] = ["127.0.0.1/32"]
    with Gateway(policy) as gw:
        # Behind the trusted proxy, each forwarded client has its own budget.
        for client in ("198.51.100.1", "198.51.100.2"):
            for i in range(3):
                response = request(gw.tls_port, "GET", f"/limited/{client}/{i}",
                                   headers=[("X-Forwarded-For", f"203.0.113.9, {client}")])
                assert response.status == 200, response
            over = request(gw.tls_port, "GET", "/limited/over",
                           headers=[("X-Forwarded-For", client)])
            assert over.status == 429
        wait_until(lambda: len([e for e in gw.access_log()
                                if e.get("reason") == "rate_limited"]) >= 2,
                   message="both refusals reach the access log")
        log = [e for e in gw.access_log() if e.get("reason") == "rate_limited"]
        assert {e["client_ip"] for e in log} == {"198.51.100.1", "198.51.100.2"}


def test_per_user_limit_follows_the_subject(certs, core, jwt_keys):
    key, jwks = jwt_keys.key, jwt_keys.jwks
    with Gateway(limited_policy(certs, core, jwks)) as gw:
        alice = sign(key, kid="es-1", claims={"sub": "alice-limits"}, exp_in=600)
        bob = sign(key, kid="es-1", claims={"sub": "bob-limits"}, exp_in=600)
        for _ in range(2):
            assert request(gw.tls_port, "GET", "/user/a",
                           headers=[("Authorization", f"Bearer {alice}")]).status == 200
        # A new token of the same subject shares the budget.
        again = sign(key, kid="es-1", claims={"sub": "alice-limits"}, exp_in=600)
        refused = request(gw.tls_port, "GET", "/user/a",
                          headers=[("Authorization", f"Bearer {again}")])
        assert_gateway_error(refused, 429)
        assert refused.header("RateLimit-Limit") == "2"
        assert request(gw.tls_port, "GET", "/user/b",
                       headers=[("Authorization", f"Bearer {bob}")]).status == 200
        # No token: 401 from the JWT phase, the per-user limit never consulted.
        assert request(gw.tls_port, "GET", "/user/a").status == 401


def test_jwt_sub_limit_on_a_route_without_jwt_is_refused_at_load(certs, core, jwt_keys, tmp_path):
    policy = limited_policy(certs, core, jwt_keys.jwks)
    policy["routes"][0]["rate_limit"] = ["per_user"]
    path = tmp_path / "policy.yaml"
    path.write_text(to_yaml(policy))
    code, output = run_check(str(path))
    assert code == 1, output
    assert "jwt.sub" in output and "policy.yaml:" in output


# ---- login protection -----------------------------------------------------------------------------


def login_policy(certs, core, state_path):
    policy = base_policy(certs, core)
    policy["state"] = {"memory": {"path": state_path}}
    policy["routes"] = [
        # The demo upstream answers /status/<code> with that code.
        {"name": "login", "match": {"path_prefix": "/status"}, "upstream": "core",
         "login_protection": {"failure_status": [401, 403], "max_failures": 3, "window": "1m",
                              "ban": "10m"}},
        {"name": "open", "match": {"path_prefix": "/"}, "upstream": "core"},
    ]
    return policy


def test_repeated_login_failures_ban_the_ip_everywhere_and_across_a_restart(certs, core):
    workdir = tempfile.mkdtemp(prefix="portcullis-login-")
    try:
        policy = login_policy(certs, core, "state.db")
        gw = Gateway(policy, workdir=workdir)
        started = time.monotonic()
        # Successes neither count nor reset.
        assert request(gw.tls_port, "POST", "/status/200", body=b"{}").status == 200
        assert request(gw.tls_port, "POST", "/status/401", body=b"{}").status == 401
        assert request(gw.tls_port, "POST", "/status/200", body=b"{}").status == 200
        assert request(gw.tls_port, "POST", "/status/403", body=b"{}").status == 403
        assert request(gw.tls_port, "POST", "/status/404", body=b"{}").status == 404
        assert request(gw.tls_port, "POST", "/status/401", body=b"{}").status == 401

        def banned():
            response = request(gw.tls_port, "GET", "/anything")
            return response if response.status == 429 else None

        refused = wait_until(banned, timeout=5, message="the third failure bans the IP")
        assert_gateway_error(refused, 429, "too_many_requests")
        waited = math.ceil(time.monotonic() - started)  # the ban began within this
        assert 600 - waited - 1 <= int(refused.header("Retry-After")) <= 600
        before = upstream_count(core, "/status/")
        assert request(gw.tls_port, "POST", "/status/200", body=b"{}").status == 429
        assert upstream_count(core, "/status/") == before
        wait_until(lambda: [e for e in gw.stderr_events() if e.get("event") == "ban"],
                   message="the ban reaches the security log")
        events = [e for e in gw.stderr_events() if e.get("event") == "ban"]
        assert events[0]["client_ip"] == "127.0.0.1" and events[0]["failures"] == 3
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
        assert 'portcullis_bans_issued_total{source="login"} 1' in text
        gw.stop()

        gw = Gateway(policy, workdir=workdir)  # the ban was on disk
        try:
            assert_gateway_error(request(gw.tls_port, "GET", "/anything"), 429)
        finally:
            gw.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ---- ip rules ----------------------------------------------------------------------------------------


def refused_before_tls(port):
    try:
        sock = tls_connect(port)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    sock.close()
    return False


def test_denied_address_is_refused_at_accept_before_tls(certs, core):
    policy = base_policy(certs, core)
    policy["ip_rules"] = {"deny": ["127.0.0.0/8"]}
    with Gateway(policy) as gw:
        assert refused_before_tls(gw.tls_port)
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
        assert 'portcullis_ip_rule_refusals_total{rule="deny"} 1' in text
        assert 'portcullis_tls_handshake_failures_total 0' in text  # no handshake was attempted


def test_allow_list_admits_only_what_it_covers(certs, core):
    policy = base_policy(certs, core)
    policy["ip_rules"] = {"allow": ["10.0.0.0/8", "2001:db8::/32"]}
    with Gateway(policy) as gw:
        assert refused_before_tls(gw.tls_port)
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
        assert 'portcullis_ip_rule_refusals_total{rule="not_allowed"} 1' in text
        policy["ip_rules"] = {"allow": ["127.0.0.1/32"], "deny": ["192.0.2.0/24"]}
        gw.reload(policy)
        wait_until(lambda: any(e.get("event") == "reload" for e in gw.stderr_events()),
                   message="the reload is done")
        assert {e["result"] for e in gw.stderr_events() if e.get("event") == "reload"} == {"ok"}
        assert request(gw.tls_port, "GET", "/ok").status == 200


def test_a_forwarded_client_denied_by_ip_rules_gets_403(certs, core):
    policy = base_policy(certs, core)
    policy["server"]["trusted_proxies"] = ["127.0.0.1/32"]
    policy["ip_rules"] = {"deny": ["203.0.113.0/24"]}
    with Gateway(policy) as gw:
        refused = request(gw.tls_port, "GET", "/x", headers=[("X-Forwarded-For", "203.0.113.5")])
        assert_gateway_error(refused, 403, "forbidden")
        ok = request(gw.tls_port, "GET", "/x", headers=[("X-Forwarded-For", "198.51.100.5")])
        assert ok.status == 200

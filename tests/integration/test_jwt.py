"""JWT on routes: the real gateway through real TLS in front of demo-upstream, with tokens made by
portcullis-jwt (env PORTCULLIS_JWT_BIN).

Covers verification per algorithm (RS256, PS256, ES256, EdDSA from a jwks_file; HS256 from a
secret_file), forward_claims (and client copies of those headers removed on every route), the
401/403 answers with their RFC 6750 challenges, an attack suite (each attack followed by a valid
request that still passes), the cookie token, report-only routes, cached tokens expiring, remote
JWKS over verified https (rotation, bounded unknown-kid refetches, a failing or hanging JWKS
server, periodic refresh, response framings), SIGHUP with a new jwks_file, load-time refusals of
unsafe provider settings, the metrics, and that no log line ever carries a token."""

import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from types import SimpleNamespace

import pytest

from harness import (Gateway, Upstream, assert_gateway_error, assert_security_headers,
                     base_policy, build_request, plain_request, read_response, request, run_check,
                     send, tls_connect, to_yaml, wait_until)

DEFAULT_PORTCULLIS_JWT_BIN = "/work/main/build/portcullis-jwt"

ISSUER = "https://idp.bank.test"
AUDIENCE = "core-banking"
FORWARD = {"sub": "X-Auth-Subject", "scope": "X-Auth-Scope"}

# Every token sent to a gateway: none of them may ever appear in a log line.
SENT_TOKENS = []


def jwt_bin():
    return os.environ.get("PORTCULLIS_JWT_BIN", DEFAULT_PORTCULLIS_JWT_BIN)


# ---- tokens -------------------------------------------------------------------------------------


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tool(*args):
    result = subprocess.run([jwt_bin(), *args], stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"portcullis-jwt {' '.join(args)} failed: {result.stderr.decode()}")
    return result.stdout.decode().strip()


def keygen(alg, kid, key_out, jwks=None):
    args = ["keygen", "--alg", alg, "--kid", kid, "--key-out", key_out]
    if jwks:
        args += ["--jwks", jwks]
    tool(*args)


def default_claims(**claims):
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "scope": "accounts:read",
            "amr": "mfa"}
    base.update(claims)
    return base


def sign(key=None, alg="ES256", kid=None, claims=None, exp_in=None, header=None, secret=None,
         raw=None):
    """A compact JWS from portcullis-jwt. claims are merged over default_claims() (None removes
    one, also the tool's iat/exp/jti); header replaces the whole protected header; raw=(header
    text, payload text) signs those bytes exactly."""
    args = ["sign", "--alg", alg]
    if key:
        args += ["--key", key]
    if secret:
        args += ["--secret-file", secret]
    if raw is not None:
        args += ["--raw", raw[0], raw[1]]
    else:
        args += ["--claims", json.dumps(default_claims(**(claims or {})))]
        if kid is not None:
            args += ["--kid", kid]
        if exp_in is not None:
            args += ["--exp-in", str(exp_in)]
        if header is not None:
            args += ["--header", json.dumps(header)]
    return tool(*args)


def token_hash(token):
    """What the gateway logs instead of a token: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


# ---- key material -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys():
    """Signing keys: one per asymmetric algorithm in jwks.json (kids rs-1, ps-1, es-1, ed-1), an
    HMAC secret, and an attacker's keys that are in no configured set."""
    if not os.path.exists(jwt_bin()):
        pytest.fail(f"portcullis-jwt not found: {jwt_bin()} (set PORTCULLIS_JWT_BIN)")
    directory = tempfile.mkdtemp(prefix="portcullis-jwt-keys-")
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    k = SimpleNamespace(dir=directory, path=p, jwks=p("jwks.json"), key={}, kid={})
    for alg, kid in (("RS256", "rs-1"), ("PS256", "ps-1"), ("ES256", "es-1"), ("EdDSA", "ed-1")):
        k.key[alg], k.kid[alg] = p(f"{kid}.pem"), kid
        keygen(alg, kid, k.key[alg], k.jwks)
    # Only the RSA key, for the RS256-only provider.
    keygen("RS256", "rs-only", p("rs-only.pem"), p("rs-only.json"))
    k.rs_only_key = p("rs-only.pem")
    k.hs_secret = p("hmac.secret")
    with open(k.hs_secret, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    # The attacker: an ES256 key under the victim's kid, and one of its own.
    keygen("ES256", "es-1", p("evil-same-kid.pem"), p("evil-same-kid.json"))
    keygen("ES256", "attacker", p("attacker.pem"), p("attacker.json"))
    k.evil_same_kid = p("evil-same-kid.pem")
    k.attacker = p("attacker.pem")
    with open(p("attacker.json")) as f:
        k.attacker_jwk = json.load(f)["keys"][0]
    yield k
    shutil.rmtree(directory, ignore_errors=True)


def provider(**settings):
    base = {"issuer": ISSUER, "audiences": [AUDIENCE], "clock_skew": "5s",
            "required_claims": ["exp", "jti"], "forward_claims": dict(FORWARD)}
    base.update(settings)
    return base


# ---- the shared gateway -------------------------------------------------------------------------

ROUTES = [
    {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "core", "auth": "none"},
    {"name": "accounts", "match": {"path_prefix": "/api/accounts"}, "upstream": "core",
     "auth": {"jwt": "corp", "scopes": ["accounts:read"], "claims": {"amr": "mfa"}}},
    {"name": "hmac", "match": {"path_prefix": "/api/hmac"}, "upstream": "core",
     "auth": {"jwt": "hmac"}},
    {"name": "rsa", "match": {"path_prefix": "/api/rsa"}, "upstream": "core",
     "auth": {"jwt": "rsa"}},
    {"name": "cookie", "match": {"path_prefix": "/api/cookie"}, "upstream": "core",
     "auth": {"jwt": "cookie"}},
    {"name": "strict", "match": {"path_prefix": "/api/strict"}, "upstream": "core",
     "auth": {"jwt": "strict"}},
    {"name": "report", "match": {"path_prefix": "/api/report"}, "upstream": "core",
     "auth": {"jwt": "corp"}, "enforce": False},
    {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core", "auth": {"jwt": "corp"}},
]


@pytest.fixture(scope="module")
def gw(certs, keys):
    """One gateway for the module: providers corp (RS256 PS256 ES256 EdDSA, jwks_file), hmac
    (HS256, secret_file), rsa (RS256 only), cookie (token in cookie `session`), strict (ES256,
    clock_skew 1s); routes as ROUTES."""
    upstream = Upstream(name="core")
    policy = base_policy(certs, upstream)
    policy["jwt_providers"] = {
        "corp": provider(jwks_file=keys.jwks, algorithms=["RS256", "PS256", "ES256", "EdDSA"]),
        "hmac": provider(secret_file=keys.hs_secret, algorithms=["HS256"]),
        "rsa": provider(jwks_file=keys.path("rs-only.json"), algorithms=["RS256"]),
        "cookie": provider(jwks_file=keys.jwks, algorithms=["ES256"],
                           token={"cookie": "session"}),
        "strict": provider(jwks_file=keys.jwks, algorithms=["ES256"], clock_skew="1s"),
    }
    policy["routes"] = ROUTES
    try:
        gateway = Gateway(policy)
    except BaseException:
        upstream.stop()
        raise
    yield SimpleNamespace(gateway=gateway, upstream=upstream, keys=keys)
    gateway.stop()
    upstream.stop()


def unique(prefix):
    return f"{prefix}/{uuid.uuid4().hex}"


def call(port, path, token=None, headers=None, scheme="Bearer", method="GET"):
    items = list(headers or [])
    if token is not None:
        SENT_TOKENS.append(token)
        items.append(("Authorization", f"{scheme} {token}"))
    return request(port, method, path, headers=items)


def received(upstream, path):
    return [r for r in upstream.requests() if r.path == path]


def valid_token(keys, alg="ES256", **claims):
    if alg == "HS256":
        return sign(secret=keys.hs_secret, alg="HS256", claims=claims)
    return sign(keys.key[alg], alg, keys.kid[alg], claims=claims)


def assert_passes(g, prefix="/api/accounts", token=None, sub="alice", extra_headers=()):
    """A valid request succeeds and reaches the upstream with the subject forwarded."""
    token = token or valid_token(g.keys, sub=sub)
    path = unique(prefix)
    response = call(g.gateway.tls_port, path, token, headers=extra_headers)
    assert response.status == 200, response
    assert_security_headers(response)
    (record,) = received(g.upstream, path)
    assert record.headers_all("X-Auth-Subject") == [sub]
    return record


def assert_refused(g, path_prefix, token=None, status=401, challenge='Bearer error="invalid_token"',
                   headers=None, scheme="Bearer"):
    """The request is refused with status and exactly this WWW-Authenticate, a JSON error body,
    the security headers; nothing reaches the upstream; then a valid request still passes."""
    path = unique(path_prefix)
    response = call(g.gateway.tls_port, path, token, headers=headers, scheme=scheme)
    assert_gateway_error(response, status, "unauthorized" if status == 401 else "forbidden")
    assert response.headers_all("WWW-Authenticate") == [challenge], response
    assert_passes(g)
    assert received(g.upstream, path) == [], "a refused request reached the upstream"
    return response


def rejection_for(gateway, request_id, timeout=5.0):
    return wait_until(lambda: [e for e in gateway.stderr_events()
                               if e.get("event") == "rejected"
                               and e.get("request_id") == request_id],
                      timeout, message=f"security log line for {request_id}")


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric(gateway, name, **labels):
    """The value of one sample of /metrics (0 when absent)."""
    text = plain_request(gateway.admin_port, "GET", "/metrics").text
    for line in text.splitlines():
        match = _METRIC.match(line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def assert_no_token_in_logs(gateway, tokens):
    lines = gateway.stdout_lines() + gateway.stderr_lines()
    text = "\n".join(lines)
    for token in set(tokens):
        assert token not in text, f"a token appears in the logs: {token[:40]}..."
        signature = token.rsplit(".", 1)[-1]
        if len(signature) >= 16:
            assert signature not in text, "a token's signature appears in the logs"


# ---- valid tokens, per algorithm ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA", "HS256"])
def test_valid_token_passes_and_claims_are_forwarded(gw, alg):
    token = valid_token(gw.keys, alg, sub=f"alice-{alg}", scope="accounts:write accounts:read")
    prefix = "/api/hmac" if alg == "HS256" else "/api/accounts"
    path = unique(prefix)
    # Client copies of the claim headers, in any case, must not survive.
    response = call(gw.gateway.tls_port, path, token,
                    headers=[("X-Auth-Subject", "mallory"), ("x-auth-scope", "admin"),
                             ("X-AUTH-SUBJECT", "root")])
    assert response.status == 200, response
    assert_security_headers(response)
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Subject") == [f"alice-{alg}"]
    assert record.headers_all("X-Auth-Scope") == ["accounts:read accounts:write"]


def test_hs256_token_is_refused_on_an_asymmetric_provider_and_vice_versa(gw):
    hs = valid_token(gw.keys, "HS256")
    assert_refused(gw, "/api/accounts", hs)
    es = valid_token(gw.keys, "ES256")
    assert_refused(gw, "/api/hmac", es)


def test_client_claim_headers_removed_on_auth_none_route(gw):
    path = unique("/public")
    response = call(gw.gateway.tls_port, path,
                    headers=[("X-Auth-Subject", "mallory"), ("x-auth-scope", "admin")])
    assert response.status == 200, response
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Subject") == []
    assert record.headers_all("X-Auth-Scope") == []


def test_auth_none_route_ignores_tokens(gw):
    path = unique("/public")
    response = call(gw.gateway.tls_port, path, "not-a-jwt")
    assert response.status == 200, response
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Subject") == []


def test_scope_claim_array_and_scp_are_forwarded_as_one_header(gw):
    token = sign(gw.keys.key["ES256"], "ES256", "es-1",
                 claims={"scope": "accounts:read", "scp": ["payments:write", "accounts:read"]})
    record = assert_passes(gw, token=token)
    assert record.headers_all("X-Auth-Scope") == ["accounts:read payments:write"]


def test_client_claim_header_removed_when_the_token_lacks_that_claim(gw):
    token = valid_token(gw.keys, "ES256", scope=None, sub="no-scope")
    path = unique("/api/other")
    response = call(gw.gateway.tls_port, path, token,
                    headers=[("X-Auth-Scope", "admin"), ("X-Auth-Subject", "mallory")])
    assert response.status == 200, response
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Scope") == []
    assert record.headers_all("X-Auth-Subject") == ["no-scope"]


def test_claim_values_cannot_inject_upstream_headers(gw):
    token = valid_token(gw.keys, "ES256", sub="alice\r\nX-Injected: 1", scope="accounts:read")
    path = unique("/api/other")
    response = call(gw.gateway.tls_port, path, token)
    for record in received(gw.upstream, path):
        assert record.headers_all("X-Injected") == []
        assert all("\r" not in v and "\n" not in v for v in record.headers_all("X-Auth-Subject"))
    assert response.status in (200, 401), response


# ---- 401 and 403 --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/accounts", "/api/hmac", "/api/rsa", "/api/other"])
def test_no_token_is_401_with_bare_bearer_challenge(gw, prefix):
    response = assert_refused(gw, prefix, None, challenge="Bearer",
                              headers=[("X-Auth-Subject", "mallory")])
    assert response.json()["error"] == "unauthorized"


def test_other_scheme_counts_as_no_token(gw):
    assert_refused(gw, "/api/accounts", None, challenge="Bearer",
                   headers=[("Authorization", "Basic YWxpY2U6c2VjcmV0")])


def test_invalid_token_is_401_invalid_token(gw):
    response = assert_refused(gw, "/api/accounts", "abc.def.ghi")
    body = response.json()
    assert body["error"] == "unauthorized" and set(body) == {"error", "request_id"}
    event = rejection_for(gw.gateway, body["request_id"])[0]
    assert event["status"] == 401 and event["reason"] == "jwt_malformed"
    assert event["token_hash"] == token_hash("abc.def.ghi")


def test_missing_scope_is_403_insufficient_scope(gw):
    token = valid_token(gw.keys, scope="payments:write")
    response = assert_refused(gw, "/api/accounts", token, status=403,
                              challenge='Bearer error="insufficient_scope"')
    assert response.json()["error"] == "forbidden"
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_insufficient_scope" and event["subject"] == "alice"


def test_no_scope_at_all_is_403(gw):
    token = valid_token(gw.keys, scope=None)
    assert_refused(gw, "/api/accounts", token, status=403,
                   challenge='Bearer error="insufficient_scope"')


@pytest.mark.parametrize("amr", ["pwd", ["pwd", "otp"], None, 1, "MFA"])
def test_claim_mismatch_is_403_insufficient_scope(gw, amr):
    token = valid_token(gw.keys, amr=amr)
    response = assert_refused(gw, "/api/accounts", token, status=403,
                              challenge='Bearer error="insufficient_scope"')
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_claim_mismatch"


def test_required_claim_value_found_in_an_array(gw):
    assert_passes(gw, token=valid_token(gw.keys, amr=["pwd", "mfa"]))


def test_scope_and_claims_only_apply_to_their_route(gw):
    token = valid_token(gw.keys, scope="payments:write", amr="pwd")
    path = unique("/api/other")
    assert call(gw.gateway.tls_port, path, token).status == 200


def test_bearer_scheme_is_case_insensitive(gw):
    for scheme in ("bearer", "BEARER", "BeArEr"):
        path = unique("/api/accounts")
        response = call(gw.gateway.tls_port, path, valid_token(gw.keys), scheme=scheme)
        assert response.status == 200, (scheme, response)


@pytest.mark.parametrize("value", [
    "Bearer  {t}",        # two spaces
    "Bearer\t{t}",        # tab instead of the space
    "Bearer {t} extra",   # a second part
    "Bearer",             # scheme only
])
def test_malformed_authorization_header_is_401(gw, value):
    token = valid_token(gw.keys)
    SENT_TOKENS.append(token)
    assert_refused(gw, "/api/accounts", None,
                   headers=[("Authorization", value.format(t=token))])


def test_refusal_keeps_the_connection_usable(gw):
    sock = tls_connect(gw.gateway.tls_port)
    try:
        bad_path, good_path = unique("/api/accounts"), unique("/api/accounts")
        send(sock, build_request("GET", bad_path))
        first = read_response(sock)
        assert_gateway_error(first, 401, "unauthorized")
        token = valid_token(gw.keys)
        SENT_TOKENS.append(token)
        send(sock, build_request("GET", good_path, headers=[("Authorization", f"Bearer {token}")]))
        assert read_response(sock).status == 200
        send(sock, build_request("HEAD", bad_path))
        head = read_response(sock, head_request=True)
        assert head.status == 401 and head.headers_all("WWW-Authenticate") == ["Bearer"]
    finally:
        sock.close()
    assert received(gw.upstream, bad_path) == []
    assert len(received(gw.upstream, good_path)) == 1


def test_claims_of_one_request_never_leak_into_the_next_on_the_same_connection(gw):
    token = valid_token(gw.keys, "ES256", sub="first-user")
    SENT_TOKENS.append(token)
    paths = [unique("/api/other"), unique("/public"), unique("/api/report")]
    sock = tls_connect(gw.gateway.tls_port)
    try:
        send(sock, build_request("GET", paths[0], headers=[("Authorization", f"Bearer {token}")]))
        assert read_response(sock).status == 200
        for path in paths[1:]:  # auth: none, then report-only without a token
            send(sock, build_request("GET", path))
            assert read_response(sock).status == 200
    finally:
        sock.close()
    assert received(gw.upstream, paths[0])[0].headers_all("X-Auth-Subject") == ["first-user"]
    for path in paths[1:]:
        (record,) = received(gw.upstream, path)
        assert record.headers_all("X-Auth-Subject") == [], path
        assert record.headers_all("X-Auth-Scope") == [], path


def test_token_in_the_query_string_is_not_a_token(gw):
    token = valid_token(gw.keys, "ES256")
    SENT_TOKENS.append(token)
    path = unique("/api/accounts")
    response = request(gw.gateway.tls_port, "GET", f"{path}?access_token={token}")
    assert_gateway_error(response, 401, "unauthorized")
    assert response.headers_all("WWW-Authenticate") == ["Bearer"]
    assert received(gw.upstream, path) == []


def test_refused_request_body_never_reaches_the_upstream(gw):
    path = unique("/api/accounts")
    response = request(gw.gateway.tls_port, "POST", path, body=b'{"amount": 1000000}',
                       headers=[("Content-Type", "application/json"),
                                ("Authorization", "Bearer abc.def.ghi")])
    assert_gateway_error(response, 401, "unauthorized")
    assert_passes(gw)
    assert received(gw.upstream, path) == []


def test_two_authorization_headers_are_refused(gw):
    token = valid_token(gw.keys)
    SENT_TOKENS.append(token)
    assert_refused(gw, "/api/accounts", None, headers=[("Authorization", f"Bearer {token}"),
                                                       ("Authorization", f"Bearer {token}")])


# ---- claims that make a token invalid -----------------------------------------------------------


@pytest.mark.parametrize("case, claims, exp_in, reason", [
    ("wrong iss", {"iss": "https://evil.test"}, None, "jwt_wrong_issuer"),
    ("iss differs in case", {"iss": ISSUER.upper()}, None, "jwt_wrong_issuer"),
    ("no iss", {"iss": None}, None, "jwt_missing_claim"),
    ("wrong aud", {"aud": "payments"}, None, "jwt_wrong_audience"),
    ("wrong aud list", {"aud": ["payments", "cards"]}, None, "jwt_wrong_audience"),
    ("no aud", {"aud": None}, None, "jwt_missing_claim"),
    ("expired", {}, -3600, "jwt_expired"),
    ("nbf in the future", {"nbf": int(time.time()) + 3600}, None, "jwt_not_yet_valid"),
    ("iat in the future", {"iat": int(time.time()) + 3600}, None, "jwt_issued_in_future"),
    ("no jti", {"jti": None}, None, "jwt_missing_claim"),
    ("no exp", {"exp": None}, None, "jwt_missing_claim"),
    ("exp a string", {"exp": "9999999999"}, None, "jwt_malformed"),
    ("sub a number", {"sub": 42}, None, "jwt_malformed"),
])
def test_invalid_claims_are_401(gw, case, claims, exp_in, reason):
    token = sign(gw.keys.key["ES256"], "ES256", "es-1", claims=claims, exp_in=exp_in)
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == reason, case


def test_cached_token_is_refused_once_it_expires(gw):
    # The strict provider allows 1 s of clock skew: a token valid for 3 more seconds passes (and
    # is cached), and is refused as soon as exp + skew has passed, cache or not.
    token = sign(gw.keys.key["ES256"], "ES256", "es-1", exp_in=3)
    exp = json.loads(b64url_decode(token.split(".")[1]))["exp"]
    assert call(gw.gateway.tls_port, unique("/api/strict"), token).status == 200
    assert call(gw.gateway.tls_port, unique("/api/strict"), token).status == 200
    time.sleep(max(0.0, exp + 1 - time.time()) + 0.05)
    assert_refused(gw, "/api/strict", token)


def test_audience_list_with_one_match_passes(gw):
    assert_passes(gw, token=valid_token(gw.keys, aud=["payments", AUDIENCE]))


def test_expiry_within_clock_skew_passes(gw):
    # clock_skew is 5s: a token that expired 2 s ago is still accepted.
    token = sign(gw.keys.key["ES256"], "ES256", "es-1", exp_in=-2)
    assert_passes(gw, token=token)


# ---- the attack suite ---------------------------------------------------------------------------


def forged_header(alg, **members):
    return {"alg": alg, "typ": "JWT", **members}


@pytest.mark.parametrize("casing", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signed", [False, True])
def test_alg_none_in_every_casing(gw, casing, signed):
    header = forged_header(casing, kid="es-1")
    if signed:
        token = sign(gw.keys.key["ES256"], "ES256", header=header, claims={"sub": "mallory"})
    else:
        token = sign(alg="none", header=header, claims={"sub": "mallory"})
        assert token.endswith(".")
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_alg_not_allowed"
    assert "subject" not in event  # nothing from an unverified token is believed


def test_alg_none_without_kid_and_without_signature(gw):
    token = sign(alg="none", header={"alg": "none"}, claims={"sub": "mallory"})
    assert_refused(gw, "/api/accounts", token)
    assert_refused(gw, "/api/rsa", token)
    assert_refused(gw, "/api/hmac", token)


def _write_secret(path, secret):
    # portcullis-jwt drops one trailing newline from a secret file, as the gateway does.
    with open(path, "wb") as f:
        f.write(secret + b"\n")


def test_hs256_signed_with_the_rsa_public_key_is_refused(gw, tmp_path):
    public_pem = subprocess.run(["openssl", "pkey", "-in", gw.keys.rs_only_key, "-pubout"],
                                capture_output=True, check=True).stdout
    with open(gw.keys.path("rs-only.json")) as f:
        jwk = json.load(f)["keys"][0]
    secrets_to_try = {
        "pem": public_pem,
        "pem without newline": public_pem.rstrip(b"\n"),
        "jwk n bytes": b64url_decode(jwk["n"]),
        "jwk n text": jwk["n"].encode(),
    }
    for name, secret in secrets_to_try.items():
        path = str(tmp_path / f"{name.replace(' ', '-')}.secret")
        _write_secret(path, secret)
        for kid in ("rs-only", None):
            header = forged_header("HS256", **({"kid": kid} if kid else {}))
            token = sign(secret=path, alg="HS256", header=header, claims={"sub": "mallory"})
            response = assert_refused(gw, "/api/rsa", token)
            event = rejection_for(gw.gateway, response.json()["request_id"])[0]
            assert event["reason"] == "jwt_alg_not_allowed", name


def test_stripped_signature_is_refused(gw):
    for alg in ("ES256", "RS256", "EdDSA"):
        token = valid_token(gw.keys, alg, sub="mallory")
        stripped = token.rsplit(".", 1)[0] + "."
        assert_refused(gw, "/api/accounts", stripped)
    hs = valid_token(gw.keys, "HS256", sub="mallory")
    assert_refused(gw, "/api/hmac", hs.rsplit(".", 1)[0] + ".")


def test_es256_signature_of_zeros_is_refused(gw):
    token = valid_token(gw.keys, "ES256", sub="mallory")
    head = token.rsplit(".", 1)[0]
    for signature in (bytes(64), bytes(32) + b"\x01" + bytes(31), b"\x01" + bytes(63)):
        response = assert_refused(gw, "/api/accounts", head + "." + b64url(signature))
        event = rejection_for(gw.gateway, response.json()["request_id"])[0]
        assert event["reason"] == "jwt_bad_signature"


def test_signature_of_the_wrong_length_is_refused(gw):
    token = valid_token(gw.keys, "ES256", sub="mallory")
    head, signature = token.rsplit(".", 1)
    raw = b64url_decode(signature)
    for forged in (raw[:-1], raw + b"\x00", raw * 2):
        assert_refused(gw, "/api/accounts", head + "." + b64url(forged))


def test_embedded_jwk_header_is_ignored(gw):
    jwk = gw.keys.attacker_jwk
    for extra in ({}, {"kid": "es-1"}, {"kid": "attacker"}):
        header = forged_header("ES256", jwk=jwk, **extra)
        token = sign(gw.keys.attacker, "ES256", header=header, claims={"sub": "mallory"})
        assert_refused(gw, "/api/accounts", token)


def test_embedded_x5c_certificate_is_ignored(gw, tmp_path):
    der = subprocess.run(["openssl", "req", "-x509", "-new", "-key", gw.keys.attacker,
                          "-subj", "/CN=idp.bank.test", "-days", "1", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    x5c = [base64.b64encode(der).decode()]
    for extra in ({}, {"kid": "es-1"}):
        header = forged_header("ES256", x5c=x5c, **extra)
        token = sign(gw.keys.attacker, "ES256", header=header, claims={"sub": "mallory"})
        assert_refused(gw, "/api/accounts", token)


class TrapListener:
    """A TCP listener that counts every connection it accepts (there must be none)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def test_jku_and_x5u_are_never_fetched(gw):
    trap = TrapListener()
    try:
        base = f"https://127.0.0.1:{trap.port}"
        headers = [
            forged_header("ES256", kid="attacker", jku=f"{base}/jwks.json"),
            forged_header("ES256", kid="es-1", jku=f"{base}/jwks.json"),
            forged_header("ES256", jku=f"{base}/jwks.json"),
            forged_header("ES256", kid="attacker", x5u=f"{base}/cert.pem"),
            forged_header("ES256", x5u=f"{base}/cert.pem", jku=f"{base}/jwks.json",
                          jwk=gw.keys.attacker_jwk),
        ]
        for header in headers:
            token = sign(gw.keys.attacker, "ES256", header=header, claims={"sub": "mallory"})
            assert_refused(gw, "/api/accounts", token)
        time.sleep(0.5)
        assert trap.accepted == 0, "the gateway connected to a URL named in a token"
    finally:
        trap.close()


def test_unknown_kid_is_refused(gw):
    token = sign(gw.keys.key["ES256"], "ES256", "no-such-kid", claims={"sub": "mallory"})
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_unknown_kid"


def test_other_key_with_the_same_kid_is_refused(gw):
    token = sign(gw.keys.evil_same_kid, "ES256", "es-1", claims={"sub": "mallory"})
    response = assert_refused(gw, "/api/accounts", token)
    request_id = response.json()["request_id"]
    event = rejection_for(gw.gateway, request_id)[0]
    assert event["reason"] == "jwt_bad_signature"
    # The subject of a token whose signature failed is never believed, not even in the logs.
    assert "subject" not in event
    access = wait_until(lambda: [e for e in gw.gateway.access_log()
                                 if e.get("request_id") == request_id], 5)[0]
    assert "subject" not in access and access["token_hash"] == token_hash(token)


@pytest.mark.parametrize("kid", ["../../../../dev/null", "' OR '1'='1", "", "ES-1", "es-1 "])
def test_odd_kids_are_unknown(gw, kid):
    token = sign(gw.keys.key["ES256"], "ES256", kid, claims={"sub": "mallory"})
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_unknown_kid"


def test_algorithm_names_are_case_sensitive(gw):
    for alg in ("es256", "Es256", "ES256 "):
        header = forged_header(alg, kid="es-1")
        token = sign(gw.keys.key["ES256"], "ES256", header=header)
        response = assert_refused(gw, "/api/accounts", token)
        event = rejection_for(gw.gateway, response.json()["request_id"])[0]
        assert event["reason"] == "jwt_alg_not_allowed", alg


def test_token_without_kid_signed_by_another_key_is_refused(gw):
    token = sign(gw.keys.attacker, "ES256", claims={"sub": "mallory"})
    assert_refused(gw, "/api/accounts", token)


def test_key_of_another_algorithm_under_its_kid_is_refused(gw):
    # A real RS256 signature, but the header names the ES256 key's kid; and the reverse.
    token = sign(gw.keys.key["RS256"], "RS256", "es-1", claims={"sub": "mallory"})
    assert_refused(gw, "/api/accounts", token)
    token = sign(gw.keys.key["ES256"], "ES256", "rs-1", claims={"sub": "mallory"})
    assert_refused(gw, "/api/accounts", token)
    # RS256 key used for PS256 (its JWK says alg RS256).
    token = sign(gw.keys.key["RS256"], "PS256", "rs-1", claims={"sub": "mallory"})
    assert_refused(gw, "/api/accounts", token)


def test_algorithm_not_allowed_for_the_provider_is_refused(gw):
    # The rsa provider only allows RS256: a valid PS256 token from a key it does not hold, and
    # a valid ES256 token, both fail.
    assert_refused(gw, "/api/rsa", valid_token(gw.keys, "ES256"))
    assert_refused(gw, "/api/rsa", valid_token(gw.keys, "PS256"))


def test_crit_header_is_refused(gw):
    header = forged_header("ES256", kid="es-1", crit=["exp"])
    token = sign(gw.keys.key["ES256"], "ES256", header=header)
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_crit_unsupported"


def _token_with_dash_or_underscore(gw):
    for _ in range(50):
        token = valid_token(gw.keys, "ES256", sub="mallory")
        if "-" in token or "_" in token:
            return token
    raise AssertionError("no token with '-' or '_' in 50 tries")


@pytest.mark.parametrize("case", [
    "padding on the signature", "padding on the header", "space inside", "tab inside",
    "percent-encoded CR inside", "standard base64 alphabet", "four parts", "two parts",
    "empty header", "bad base64 character",
])
def test_malformed_base64_is_refused(gw, case):
    token = _token_with_dash_or_underscore(gw)
    SENT_TOKENS.append(token)
    h, p, s = token.split(".")
    forged = {
        "padding on the signature": f"{h}.{p}.{s}=",
        "padding on the header": f"{h}=.{p}.{s}",
        "space inside": f"{h}.{p[:10]} {p[10:]}.{s}",
        "tab inside": f"{h}.{p[:10]}\t{p[10:]}.{s}",
        "percent-encoded CR inside": f"{h}.{p[:10]}%0D{p[10:]}.{s}",
        "standard base64 alphabet": token.replace("-", "+").replace("_", "/"),
        "four parts": f"{h}.{p}.{s}.{s}",
        "two parts": f"{h}.{p}",
        "empty header": f".{p}.{s}",
        "bad base64 character": f"{h}.{p}.{s[:-1]}*",
    }[case]
    assert_refused(gw, "/api/accounts", forged)


def test_unpadded_remainder_bits_must_be_zero(gw):
    # A signature whose last base64url character carries non-zero unused bits decodes to the
    # same bytes in lenient decoders: strict base64url refuses it.
    token = valid_token(gw.keys, "ES256", sub="mallory")
    h, p, s = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(s[-1])
    # 64 bytes = 86 characters; the last one carries 2 data bits and 4 unused (zero) bits.
    assert len(s) == 86 and last & 0b1111 == 0
    forged = s[:-1] + alphabet[last | 1]
    assert_refused(gw, "/api/accounts", f"{h}.{p}.{forged}")


def _raw_signed(gw, header_text, payload_text, alg="ES256"):
    return sign(gw.keys.key[alg], alg, raw=(header_text, payload_text))


def _payload(**claims):
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "scope": "accounts:read",
            "amr": "mfa", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    base.update(claims)
    return json.dumps(base)


def test_raw_signed_control_token_passes(gw):
    # The --raw path itself makes acceptable tokens: the cases below differ only as stated.
    token = _raw_signed(gw, '{"alg":"ES256","kid":"es-1"}', _payload())
    assert_passes(gw, token=token)


@pytest.mark.parametrize("case, header, payload", [
    ("header not JSON", '{"alg":"ES256","kid":"es-1"', None),
    ("header an array", '["ES256"]', None),
    ("header with trailing garbage", '{"alg":"ES256","kid":"es-1"}x', None),
    ("duplicate alg in header", '{"alg":"ES256","kid":"es-1","alg":"ES256"}', None),
    ("duplicate kid in header", '{"alg":"ES256","kid":"nope","kid":"es-1"}', None),
    ("no alg", '{"kid":"es-1"}', None),
    ("alg not a string", '{"alg":["ES256"],"kid":"es-1"}', None),
    ("kid not a string", '{"alg":"ES256","kid":1}', None),
    ("payload not JSON", None, '{"sub":"alice",'),
    ("payload a string", None, '"alice"'),
    ("duplicate sub", None, "dup-sub"),
    ("duplicate iss", None, "dup-iss"),
    ("payload with a raw control character", None, "control"),
    ("payload invalid UTF-8", None, "latin1"),
])
def test_malformed_json_and_duplicate_claims_are_refused(gw, case, header, payload):
    header = header or '{"alg":"ES256","kid":"es-1"}'
    valid = _payload()
    payload = {
        None: valid,
        # {..., "sub": "a", ..., "sub": "b"}: which one would a lenient parser keep?
        "dup-sub": valid.replace('"sub": "alice"', '"sub": "a"')[:-1] + ', "sub": "b"}',
        "dup-iss": valid[:-1] + ', "iss": "https://evil.test"}',
        "control": valid[:-1] + ', "x": "a\x01b"}',
        # argv carries the lone surrogate as the single byte 0xE9 (surrogateescape).
        "latin1": valid[:-1] + ', "x": "caf\udce9"}',
    }.get(payload, payload)
    token = _raw_signed(gw, header, payload)
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_malformed", case


def test_oversized_token_is_401_not_431(gw):
    token = sign(gw.keys.key["ES256"], "ES256", "es-1", claims={"pad": "x" * 9000})
    assert 8 * 1024 < len(token) < 14 * 1024
    response = assert_refused(gw, "/api/accounts", token)
    event = rejection_for(gw.gateway, response.json()["request_id"])[0]
    assert event["reason"] == "jwt_too_large"


def test_token_just_under_the_size_limit_passes(gw):
    base = len(valid_token(gw.keys))
    token = sign(gw.keys.key["ES256"], "ES256", "es-1",
                 claims={"pad": "x" * ((8 * 1024 - base - 200) * 3 // 4)})
    assert len(token) <= 8 * 1024
    assert_passes(gw, token=token)


def test_deeply_nested_claims_are_refused(gw):
    deep = "[" * 40 + "]" * 40
    token = _raw_signed(gw, '{"alg":"ES256","kid":"es-1"}', _payload()[:-1] + f', "x": {deep}}}')
    assert_refused(gw, "/api/accounts", token)


# ---- cookie -------------------------------------------------------------------------------------


def test_token_in_cookie(gw):
    token = valid_token(gw.keys, "ES256", sub="cookie-user")
    SENT_TOKENS.append(token)
    path = unique("/api/cookie")
    response = request(gw.gateway.tls_port, "GET", path,
                       headers=[("Cookie", f"theme=dark; session={token}; lang=en"),
                                ("X-Auth-Subject", "mallory")])
    assert response.status == 200, response
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Subject") == ["cookie-user"]


def test_cookie_provider_ignores_the_authorization_header(gw):
    token = valid_token(gw.keys, "ES256")
    assert_refused(gw, "/api/cookie", token, challenge="Bearer")


@pytest.mark.parametrize("cookie, challenge", [
    ("session=abc.def.ghi", 'Bearer error="invalid_token"'),
    ("session=", "Bearer"),
    ("sessionx={t}", "Bearer"),
    ("Session={t}", "Bearer"),
    ("session={t}; session={t}", 'Bearer error="invalid_token"'),
])
def test_bad_cookie_tokens_are_refused(gw, cookie, challenge):
    token = valid_token(gw.keys, "ES256")
    SENT_TOKENS.append(token)
    assert_refused(gw, "/api/cookie", None, challenge=challenge,
                   headers=[("Cookie", cookie.format(t=token))])


def test_expired_token_in_cookie_is_refused(gw):
    token = sign(gw.keys.key["ES256"], "ES256", "es-1", exp_in=-600)
    SENT_TOKENS.append(token)
    assert_refused(gw, "/api/cookie", None, headers=[("Cookie", f"session={token}")])


# ---- report-only --------------------------------------------------------------------------------


def test_report_only_route_forwards_an_invalid_token_and_logs_it(gw):
    before = metric(gw.gateway, "portcullis_jwt_verifications_total", result="jwt_expired")
    token = sign(gw.keys.key["ES256"], "ES256", "es-1", exp_in=-3600, claims={"sub": "late"})
    path = unique("/api/report")
    response = call(gw.gateway.tls_port, path, token, headers=[("X-Auth-Subject", "mallory")])
    assert response.status == 200, response
    assert_security_headers(response)
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Subject") == []  # no claims from a refused token
    event = rejection_for(gw.gateway, response.header("X-Request-Id"))[0]
    assert event["mode"] == "report_only"
    assert event["reason"] == "jwt_expired"
    assert event["token_hash"] == token_hash(token)
    assert metric(gw.gateway, "portcullis_jwt_verifications_total",
                  result="jwt_expired") == before + 1
    assert metric(gw.gateway, "portcullis_rejections_total", reason="jwt_expired") >= 1


def test_report_only_route_without_token_passes(gw):
    path = unique("/api/report")
    response = call(gw.gateway.tls_port, path)
    assert response.status == 200, response
    event = rejection_for(gw.gateway, response.header("X-Request-Id"))[0]
    assert event["mode"] == "report_only" and event["reason"] == "jwt_missing"


def test_report_only_route_with_a_valid_token_forwards_claims(gw):
    token = valid_token(gw.keys, "ES256", sub="on-time")
    path = unique("/api/report")
    response = call(gw.gateway.tls_port, path, token, headers=[("X-Auth-Subject", "mallory")])
    assert response.status == 200, response
    (record,) = received(gw.upstream, path)
    assert record.headers_all("X-Auth-Subject") == ["on-time"]


# ---- metrics and logs ---------------------------------------------------------------------------


def test_metrics_count_results_and_cache_hits(gw):
    g = gw.gateway
    ok = metric(g, "portcullis_jwt_verifications_total", result="ok")
    expired = metric(g, "portcullis_jwt_verifications_total", result="jwt_expired")
    hits = metric(g, "portcullis_jwt_cache_lookups_total", result="hit")
    token = valid_token(gw.keys, "RS256", sub="cached")
    for _ in range(3):
        assert call(g.tls_port, unique("/api/accounts"), token).status == 200
    late = sign(gw.keys.key["ES256"], "ES256", "es-1", exp_in=-100)
    assert call(g.tls_port, unique("/api/accounts"), late).status == 401
    assert metric(g, "portcullis_jwt_verifications_total", result="ok") == ok + 3
    assert metric(g, "portcullis_jwt_verifications_total", result="jwt_expired") == expired + 1
    assert metric(g, "portcullis_jwt_cache_lookups_total", result="hit") >= hits + 2


def test_logs_carry_the_token_hash_and_never_the_token(gw):
    token = valid_token(gw.keys, "ES256", sub="logged")
    response = call(gw.gateway.tls_port, unique("/api/accounts"), token)
    assert response.status == 200
    request_id = response.header("X-Request-Id")
    line = wait_until(lambda: [e for e in gw.gateway.access_log()
                               if e.get("request_id") == request_id], 5)[0]
    assert line["token_hash"] == token_hash(token)
    assert line["subject"] == "logged"
    # Every token this module sent, valid or forged, on every line of stdout and stderr.
    assert_no_token_in_logs(gw.gateway, SENT_TOKENS)


# ---- remote JWKS over https ---------------------------------------------------------------------


class JwksServer:
    """An https server (test CA certificate for localhost) answering GET /jwks.json with the
    current document, or 500 while failing. Counts the fetches."""

    def __init__(self, certs, document, cert=None, key=None):
        self.document = document
        self.failing = False
        self.hang = threading.Event()  # set = answer; clear = hold every request (up to 5 s)
        self.hang.set()
        # length | chunked | close (no length: the body ends with TLS close_notify) | truncated
        # (no length, and the TCP connection just ends: indistinguishable from a cut-off body)
        self.framing = "length"
        self.fetches = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                with outer.lock:
                    outer.fetches += 1
                outer.hang.wait(5)
                with outer.lock:
                    failing, document = outer.failing, outer.document
                if failing:
                    body, status = b'{"error":"down"}', 500
                elif self.path != "/jwks.json":
                    body, status = b"{}", 404
                else:
                    body, status = document.encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if outer.framing == "length":
                    self.send_header("Content-Length", str(len(body)))
                elif outer.framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
                                    for i in range(0, len(body), 100)) + b"0\r\n\r\n"
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True
                if outer.framing == "close":
                    # The body ends at the close: end TLS properly (close_notify), else the
                    # client must treat the end as a truncation.
                    try:
                        self.connection.unwrap()
                    except (OSError, ValueError):
                        pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert or certs.server_cert, key or certs.server_key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.url = f"https://localhost:{self.port}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def set(self, document=None, failing=None):
        with self.lock:
            if document is not None:
                self.document = document
            if failing is not None:
                self.failing = failing

    def count(self):
        with self.lock:
            return self.fetches

    def close(self):
        self.hang.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def remote(certs, tmp_path):
    """Keys A (kid a-1) and B (kid b-1), their JWKS documents, a JwksServer serving A, and an
    upstream. Yields start(**provider settings) -> (gateway, upstream)."""
    a_key, b_key = str(tmp_path / "a.pem"), str(tmp_path / "b.pem")
    keygen("ES256", "a-1", a_key, str(tmp_path / "a.json"))
    keygen("ES256", "b-1", b_key, str(tmp_path / "b.json"))
    docs = {name: (tmp_path / f"{name}.json").read_text() for name in ("a", "b")}
    server = JwksServer(certs, docs["a"])
    upstream = Upstream(name="core")
    started = []

    def start(**settings):
        policy = base_policy(certs, upstream, server={"workers": 2})
        settings = {"jwks_url": server.url, "jwks_ca_file": certs.ca, "jwks_refresh": "1m",
                    "algorithms": ["ES256"], **settings}
        policy["jwt_providers"] = {"idp": provider(**settings)}
        policy["routes"] = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core",
                             "auth": {"jwt": "idp"}}]
        gateway = Gateway(policy)
        started.append(gateway)
        return gateway

    cleanup = []
    yield SimpleNamespace(start=start, server=server, upstream=upstream, docs=docs,
                          a_key=a_key, b_key=b_key, cleanup=cleanup)
    for gateway in started:
        gateway.stop()
    for close in cleanup:
        close()
    upstream.stop()
    server.close()


def test_jwks_url_rotation_is_picked_up_by_an_unknown_kid(remote):
    gateway = remote.start()
    assert remote.server.count() == 1  # fetched once at startup, before ready
    a_token = sign(remote.a_key, "ES256", "a-1", claims={"sub": "a-user"})
    SENT_TOKENS.append(a_token)
    assert call(gateway.tls_port, "/api/a", a_token).status == 200

    # The identity provider rotates: only key B is published now.
    remote.server.set(remote.docs["b"])
    b_token = sign(remote.b_key, "ES256", "b-1", claims={"sub": "b-user"})
    wait_until(lambda: call(gateway.tls_port, "/api/b", b_token).status == 200, timeout=5,
               interval=0.2, message="a token with the new kid accepted")
    fetches = remote.server.count()
    assert fetches == 2, "one unknown-kid refetch"
    # Key A is gone from the set: its token (even though it was cached) is refused now.
    response = call(gateway.tls_port, "/api/a", a_token)
    assert_gateway_error(response, 401, "unauthorized")

    # A flood of made-up kids right after causes no further fetch (one per jwks_refresh).
    for i in range(20):
        bogus = sign(remote.b_key, "ES256", f"bogus-{i}")
        assert call(gateway.tls_port, "/api/x", bogus).status == 401
    time.sleep(1.0)
    assert remote.server.count() == fetches
    assert call(gateway.tls_port, "/api/b", b_token).status == 200
    assert_no_token_in_logs(gateway, SENT_TOKENS)


def test_jwks_url_unknown_kid_flood_is_rate_limited_and_failures_keep_the_keys(remote):
    gateway = remote.start()
    assert remote.server.count() == 1
    a_token = sign(remote.a_key, "ES256", "a-1")
    SENT_TOKENS.append(a_token)
    assert call(gateway.tls_port, "/api/a", a_token).status == 200

    # The JWKS server breaks; 20 tokens with made-up kids arrive quickly.
    remote.server.set(failing=True)
    for i in range(20):
        bogus = sign(remote.a_key, "ES256", f"made-up-{i}")
        response = call(gateway.tls_port, "/api/x", bogus)
        assert_gateway_error(response, 401, "unauthorized")
    wait_until(lambda: remote.server.count() >= 2, timeout=5, message="one refetch")
    time.sleep(1.0)
    assert remote.server.count() <= 2, "unknown kids must not amplify into JWKS fetches"
    wait_until(lambda: [e for e in gateway.stderr_events()
                        if e.get("event") == "jwks_fetch" and e.get("result") == "failed"], 5,
               message="a jwks_fetch failure in the security log")
    # The last good keys stay in use, also across a policy reload.
    for _ in range(3):
        assert call(gateway.tls_port, "/api/a", sign(remote.a_key, "ES256", "a-1")).status == 200
    reloads = metric(gateway, "portcullis_config_reloads_total", result="ok")
    gateway.reload()
    wait_until(lambda: metric(gateway, "portcullis_config_reloads_total", result="ok") > reloads,
               timeout=10, message="the reload done")
    assert call(gateway.tls_port, "/api/a", sign(remote.a_key, "ES256", "a-1")).status == 200


@pytest.mark.parametrize("framing, status", [("chunked", 200), ("close", 200), ("truncated", 401)])
def test_jwks_url_response_framings(remote, framing, status):
    remote.server.framing = framing
    gateway = remote.start()
    token = sign(remote.a_key, "ES256", "a-1")
    SENT_TOKENS.append(token)
    assert call(gateway.tls_port, "/api/a", token).status == status


def test_jwks_url_periodic_refresh_drops_a_withdrawn_key(remote):
    # jwks_refresh 10s (the smallest allowed): no unknown kid is involved, the refresh alone
    # makes a key the identity provider withdrew stop working.
    gateway = remote.start(jwks_refresh="10s")
    a_token = sign(remote.a_key, "ES256", "a-1")
    SENT_TOKENS.append(a_token)
    assert call(gateway.tls_port, "/api/a", a_token).status == 200
    started = time.monotonic()
    remote.server.set(remote.docs["b"])
    wait_until(lambda: call(gateway.tls_port, "/api/a", a_token).status == 401, timeout=15,
               interval=0.5, message="the withdrawn key refused after jwks_refresh")
    assert time.monotonic() - started > 5, "refreshed long before jwks_refresh"
    assert remote.server.count() == 2


@pytest.mark.parametrize("case", ["wrong CA", "wrong name"])
def test_jwks_url_certificate_is_verified(remote, certs, case):
    # An unverified JWKS server is never believed: the first fetch fails, the gateway starts
    # without keys and refuses every token (and does not fall back to anything).
    if case == "wrong CA":
        gateway = remote.start(jwks_ca_file=certs.wrong_ca)
    else:
        other = JwksServer(certs, remote.docs["a"], cert=certs.other_cert, key=certs.other_key)
        remote.cleanup.append(other.close)
        gateway = remote.start(jwks_url=other.url)
    token = sign(remote.a_key, "ES256", "a-1")
    SENT_TOKENS.append(token)
    response = call(gateway.tls_port, "/api/a", token)
    assert_gateway_error(response, 401, "unauthorized")
    assert response.headers_all("WWW-Authenticate") == ['Bearer error="invalid_token"']
    assert remote.upstream.requests() == []


def test_a_hanging_jwks_server_never_blocks_requests(remote):
    gateway = remote.start()
    a_token = sign(remote.a_key, "ES256", "a-1")
    SENT_TOKENS.append(a_token)
    assert call(gateway.tls_port, "/api/a", a_token).status == 200
    remote.server.hang.clear()
    try:
        # An unknown kid starts a refetch that hangs; requests go on being answered meanwhile.
        unknown = sign(remote.a_key, "ES256", "new-kid")
        assert call(gateway.tls_port, "/api/x", unknown).status == 401
        wait_until(lambda: remote.server.count() >= 2, timeout=5, message="the refetch started")
        for _ in range(3):
            started = time.monotonic()
            token = sign(remote.a_key, "ES256", "a-1")
            assert call(gateway.tls_port, "/api/a", token).status == 200
            assert time.monotonic() - started < 1.0
    finally:
        remote.server.hang.set()


# ---- SIGHUP with a new jwks_file ----------------------------------------------------------------


def test_sighup_picks_up_a_changed_jwks_file(certs, upstream, gateway_factory, tmp_path):
    jwks = str(tmp_path / "jwks.json")
    old_key, new_key = str(tmp_path / "old.pem"), str(tmp_path / "new.pem")
    keygen("EdDSA", "old-1", old_key, jwks)
    keygen("EdDSA", "new-1", new_key, str(tmp_path / "unpublished.json"))
    policy = base_policy(certs, upstream)
    policy["jwt_providers"] = {"corp": provider(jwks_file=jwks, algorithms=["EdDSA"])}
    policy["routes"] = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core",
                         "auth": {"jwt": "corp"}}]
    gateway = gateway_factory(policy)
    old_token = sign(old_key, "EdDSA", "old-1")
    new_token = sign(new_key, "EdDSA", "new-1")
    SENT_TOKENS.extend([old_token, new_token])
    assert call(gateway.tls_port, "/api/x", old_token).status == 200
    assert call(gateway.tls_port, "/api/x", new_token).status == 401

    # Rotate the file: the new key only.
    os.replace(str(tmp_path / "unpublished.json"), jwks)
    gateway.reload()
    wait_until(lambda: call(gateway.tls_port, "/api/x", new_token).status == 200, timeout=10,
               interval=0.2, message="the new key accepted after SIGHUP")
    assert call(gateway.tls_port, "/api/x", old_token).status == 401
    assert_no_token_in_logs(gateway, SENT_TOKENS)


def test_sighup_with_a_broken_jwks_file_keeps_the_old_keys(certs, upstream, gateway_factory,
                                                          tmp_path):
    jwks = str(tmp_path / "jwks.json")
    key = str(tmp_path / "k.pem")
    keygen("ES256", "k-1", key, jwks)
    policy = base_policy(certs, upstream)
    policy["jwt_providers"] = {"corp": provider(jwks_file=jwks, algorithms=["ES256"])}
    policy["routes"] = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core",
                         "auth": {"jwt": "corp"}}]
    gateway = gateway_factory(policy)
    token = sign(key, "ES256", "k-1")
    assert call(gateway.tls_port, "/api/x", token).status == 200
    before = metric(gateway, "portcullis_config_reloads_total", result="refused")
    with open(jwks, "w") as f:
        f.write('{"keys": [}')
    gateway.reload()
    wait_until(lambda: metric(gateway, "portcullis_config_reloads_total", result="refused")
               > before, timeout=10, message="the reload refused")
    assert call(gateway.tls_port, "/api/x", sign(key, "ES256", "k-1")).status == 200


# ---- policy checks ------------------------------------------------------------------------------


def check_refuses_provider(certs, upstream, tmp_path, settings):
    """`portcullis --check` on a policy whose one route uses provider `corp` with `settings`:
    asserts it is refused (exit 1) and returns what it printed."""
    policy = base_policy(certs, upstream)
    policy["jwt_providers"] = {"corp": provider(**settings)}
    policy["routes"] = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core",
                         "auth": {"jwt": "corp"}}]
    path = tmp_path / "policy.yaml"
    path.write_text(to_yaml(policy))
    code, output = run_check(str(path))
    assert code == 1, output
    return output


@pytest.mark.parametrize("case, settings, message", [
    ("alg none", {"algorithms": ["ES256", "none"]}, "'none' is never accepted"),
    ("HMAC mixed with RSA", {"algorithms": ["RS256", "HS256"]}, "mixes HMAC"),
    ("plain http JWKS", {"jwks_file": None, "jwks_url": "http://idp.test/jwks.json"},
     "must be an https:// URL"),
    ("two key sources", {"jwks_url": "https://idp.test/jwks.json"}, "exactly one of"),
])
def test_unsafe_provider_settings_are_refused_at_load(certs, upstream, keys, tmp_path, case,
                                                      settings, message):
    settings = {"jwks_file": keys.jwks, "algorithms": ["ES256"], **settings}
    settings = {k: v for k, v in settings.items() if v is not None}
    output = check_refuses_provider(certs, upstream, tmp_path, settings)
    assert message in output, output
    assert re.search(r"policy\.yaml:\d+:\d+: ", output), output


@pytest.mark.parametrize("source, content, message", [
    ("jwks_file", '{"keys": [}', "not valid JSON"),
    ("jwks_file", '{"keys": []}', "no usable key"),
    ("jwks_file", '{"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}',
     "no usable key"),
    ("secret_file", "short\n", "under 32"),
])
def test_check_refuses_unusable_key_files(certs, upstream, tmp_path, source, content, message):
    key_file = tmp_path / "keys.txt"
    key_file.write_text(content)
    settings = {source: str(key_file),
                "algorithms": ["HS256"] if source == "secret_file" else ["ES256"]}
    output = check_refuses_provider(certs, upstream, tmp_path, settings)
    assert message in output and f"jwt_providers.corp.{source}" in output, output

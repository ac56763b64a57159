"""Observability: the access log (one JSON line per request, no secrets), the security log
(one line per refused request), and the admin listener (/healthz, /readyz, /metrics)."""

import datetime
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from harness import (RefusedPort, base_policy, build_request, plain_request, read_response,
                     request, send, tls_connect, wait_until)

QUERY_SECRET = "secret123"
AUTH_SECRET = "s3cr3t-authz-value-7f1c"
COOKIE_SECRET = "c00kie-secret-9a2b"
SECRETS = (QUERY_SECRET, AUTH_SECRET, COOKIE_SECRET)
SECRET_HEADERS = [("Authorization", f"Bearer {AUTH_SECRET}"),
                  ("Cookie", f"session={COOKIE_SECRET}")]

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def down():
    """An upstream address that refuses connections."""
    with RefusedPort() as port:
        yield port


def obs_policy(certs, upstream, down, **overrides):
    """Routes: `api` (/api), `payments` (/payments, POST only), `dead` (/dead, to an upstream that
    refuses connections), `status` (/status/<code> answers that code), `reset` (/reset: the upstream
    resets the connection); anything else is 404."""
    policy = base_policy(certs, upstream, **overrides)
    policy["upstreams"]["down"] = {"endpoints": [down.address], "retries": 0}
    policy["routes"] = [
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core"},
        {"name": "payments", "match": {"path_prefix": "/payments", "methods": ["POST"]},
         "upstream": "core"},
        {"name": "dead", "match": {"path_prefix": "/dead"}, "upstream": "down"},
        {"name": "status", "match": {"path_prefix": "/status"}, "upstream": "core"},
        {"name": "reset", "match": {"path_prefix": "/reset"}, "upstream": "core"},
    ]
    return policy


@pytest.fixture
def obs_gateway(gateway_factory, certs, upstream, down):
    return gateway_factory(obs_policy(certs, upstream, down,
                                      server={"limits": {"header_timeout": "1s"}}))


# ---- helpers ------------------------------------------------------------------------------------


def access_lines(gateway, count, timeout=5.0):
    """Waits until the access log (stdout) holds at least count JSON lines; returns them all."""
    return wait_until(lambda: (lambda lines: lines if len(lines) >= count else None)(
        gateway.access_log()), timeout, message=f"{count} access log line(s)")


def access_for(gateway, request_id, timeout=5.0):
    """The access log lines with this request id (waits for at least one)."""
    return wait_until(
        lambda: [e for e in gateway.access_log() if e.get("request_id") == request_id],
        timeout, message=f"access log line for {request_id}")


def rejections(gateway):
    return [e for e in gateway.stderr_events() if e.get("event") == "rejected"]


def rejection_for(gateway, request_id, timeout=5.0):
    return wait_until(lambda: [e for e in rejections(gateway) if e.get("request_id") == request_id],
                      timeout, message=f"security log line for {request_id}")


def raw_exchange(port, data, timeout=10.0):
    """Sends raw bytes on a new TLS connection and reads one response."""
    sock = tls_connect(port)
    try:
        send(sock, data)
        return read_response(sock, timeout=timeout)
    finally:
        sock.close()


def smuggling_request(path="/api/x"):
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """Prometheus text exposition -> list of (name, {label: value}, float)."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"unparsable exposition line {line!r}"
        name, labels_text, value = match.groups()
        labels = {}
        if labels_text:
            position = 0
            while position < len(labels_text):
                label = _LABEL.match(labels_text, position)
                assert label, f"unparsable labels in {line!r}"
                labels[label.group(1)] = (label.group(2).replace('\\"', '"')
                                          .replace("\\n", "\n").replace("\\\\", "\\"))
                position = label.end()
        samples.append((name, labels, float(value)))
    return samples


def scrape(gateway):
    response = plain_request(gateway.admin_port, "GET", "/metrics")
    assert response.status == 200, response
    return parse_metrics(response.text)


def metric(samples, name, **labels):
    """The value of the one sample with this name and (at least) these labels; 0 when absent."""
    found = [v for n, l, v in samples
             if n == name and all(l.get(k) == v_ for k, v_ in labels.items())]
    assert len(found) <= 1, f"{name}{labels} is ambiguous: {found}"
    return found[0] if found else 0.0


def wait_metric(gateway, name, at_least, **labels):
    return wait_until(lambda: (lambda v: v if v >= at_least else None)(
        metric(scrape(gateway), name, **labels)), 5.0,
        message=f"{name}{labels} >= {at_least}")


def assert_no_secrets(gateway):
    lines = gateway.stdout_lines() + gateway.stderr_lines()
    for secret in SECRETS:
        leaked = [line for line in lines if secret in line]
        assert not leaked, f"{secret!r} logged: {leaked}"


# ---- access log ---------------------------------------------------------------------------------


def test_access_log_line_has_every_field(obs_gateway, upstream):
    data = build_request("GET", f"/api/accounts?account=42&token={QUERY_SECRET}",
                         headers=SECRET_HEADERS + [("X-Forwarded-For", "203.0.113.9")])
    before = datetime.datetime.now(datetime.timezone.utc)
    response = raw_exchange(obs_gateway.tls_port, data)
    assert response.status == 200, response
    request_id = response.header("X-Request-Id")
    [line] = access_for(obs_gateway, request_id)

    assert TIME.match(line["time"]), line
    logged = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    assert before - datetime.timedelta(seconds=2) <= logged <= before + datetime.timedelta(
        seconds=10), (line["time"], before)
    assert line["request_id"] == request_id
    assert line["client_ip"] == "127.0.0.1"  # not the X-Forwarded-For of an untrusted peer
    assert line["method"] == "GET"
    assert line["path"] == "/api/accounts"
    assert line["route"] == "api"
    assert line["status"] == 200
    assert line["bytes_in"] == len(data), line
    assert line["bytes_out"] == len(response.raw_head) + len(response.body), line
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert line["upstream"] == f"127.0.0.1:{upstream.port}"
    assert isinstance(line["upstream_ms"], (int, float))
    assert 0 <= line["upstream_ms"] <= line["duration_ms"], line
    assert line["tls"] == "TLSv1.3"
    assert "reason" not in line, line
    assert_no_secrets(obs_gateway)


def test_exactly_one_line_per_request(obs_gateway):
    ids = []
    sock = tls_connect(obs_gateway.tls_port)
    try:
        for i in range(5):
            send(sock, build_request("GET", f"/api/keep/{i}"))
            response = read_response(sock)
            assert response.status == 200, response
            ids.append(response.header("X-Request-Id"))
    finally:
        sock.close()
    sock = tls_connect(obs_gateway.tls_port)
    try:  # three pipelined in one write
        send(sock, b"".join(build_request("GET", f"/api/pipelined/{i}") for i in range(3)))
        for _ in range(3):
            response = read_response(sock)
            assert response.status == 200, response
            ids.append(response.header("X-Request-Id"))
    finally:
        sock.close()
    # a 404, and a GET retried upstream after a reset that still fails: one line each
    for path, status in (("/nowhere", 404), ("/reset", 502)):
        response = request(obs_gateway.tls_port, "GET", path)
        assert response.status == status, response
        ids.append(response.header("X-Request-Id"))
    access_lines(obs_gateway, len(ids))
    # a second line for a request would show up late: give it a moment
    time.sleep(0.3)
    lines = obs_gateway.access_log()
    assert sorted(e["request_id"] for e in lines) == sorted(ids), lines
    assert len(set(ids)) == len(ids)
    for line in obs_gateway.stdout_lines():
        assert isinstance(json.loads(line), dict), line


def test_logged_path_is_normalised_without_query(obs_gateway):
    response = request(obs_gateway.tls_port, "GET", f"/api/a/./b/../c?token={QUERY_SECRET}&x=1")
    assert response.status == 200, response
    [line] = access_for(obs_gateway, response.header("X-Request-Id"))
    assert line["path"] == "/api/a/c", line
    assert_no_secrets(obs_gateway)


def test_refusals_carry_a_reason(obs_gateway):
    not_found = request(obs_gateway.tls_port, "GET", "/nowhere")
    assert not_found.status == 404
    [line] = access_for(obs_gateway, not_found.header("X-Request-Id"))
    assert line["status"] == 404 and line["reason"] == "no_route", line
    assert line["path"] == "/nowhere" and line["tls"] == "TLSv1.3", line
    assert "upstream" not in line and "upstream_ms" not in line, line

    smuggled = raw_exchange(obs_gateway.tls_port, smuggling_request())
    assert smuggled.status == 400
    [line] = access_for(obs_gateway, smuggled.header("X-Request-Id"))
    assert line["status"] == 400 and line["reason"] == "smuggling_cl_te", line
    assert line["method"] == "POST" and line["client_ip"] == "127.0.0.1", line


def test_secrets_never_logged(obs_gateway):
    """A secret in the query, the Authorization header or a cookie is in no log line, whatever
    happens to the request."""
    query = f"?account=42&token={QUERY_SECRET}"
    exchanges = [
        build_request("GET", "/api/ok" + query, headers=SECRET_HEADERS),
        build_request("GET", "/nowhere" + query, headers=SECRET_HEADERS),
        build_request("GET", "/payments" + query, headers=SECRET_HEADERS),
        build_request("GET", "/api/%2e%2e/%2e%2e/x" + query, headers=SECRET_HEADERS),
        build_request("GET", "/dead" + query, headers=SECRET_HEADERS),
        (f"POST /api/x{query} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {AUTH_SECRET}"
         f"\r\nCookie: session={COOKIE_SECRET}\r\nContent-Length: 5\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode(),
    ]
    ids = []
    for data in exchanges:
        response = raw_exchange(obs_gateway.tls_port, data)
        ids.append(response.header("X-Request-Id"))
    for request_id in ids:
        access_for(obs_gateway, request_id)
    for line in obs_gateway.access_log():
        assert "?" not in line["path"], line
    assert_no_secrets(obs_gateway)


def test_path_parameters_never_logged(obs_gateway):
    """Segment parameters (";jsessionid=...") carry session ids as often as queries do: the
    logs keep the path without them, while the upstream still receives them."""
    response = request(obs_gateway.tls_port, "GET", f"/api/a;jsessionid={QUERY_SECRET}/b")
    assert response.status == 200
    [line] = access_for(obs_gateway, response.header("X-Request-Id"))
    assert line["path"] == "/api/a/b", line
    refused = request(obs_gateway.tls_port, "GET", f"/nowhere;jsessionid={QUERY_SECRET}")
    assert refused.status == 404
    rejection_for(obs_gateway, refused.header("X-Request-Id"))
    assert_no_secrets(obs_gateway)


def test_access_log_off(gateway_factory, certs, upstream, down):
    gateway = gateway_factory(obs_policy(certs, upstream, down, logging={"access_log": "off"}))
    assert request(gateway.tls_port, "GET", "/api/x").status == 200
    refused = request(gateway.tls_port, "GET", "/nowhere")
    assert refused.status == 404
    # the security log still works; by the time its line is out, an access line would be too
    rejection_for(gateway, refused.header("X-Request-Id"))
    time.sleep(0.3)
    assert gateway.stdout_lines() == []
    assert not [e for e in gateway.stderr_events() if "bytes_out" in e]


def test_access_log_to_file(gateway_factory, certs, upstream, down, tmp_path):
    path = str(tmp_path / "access.log")
    gateway = gateway_factory(obs_policy(certs, upstream, down, logging={"access_log": path}))
    ids = [request(gateway.tls_port, "GET", f"/api/file/{i}").header("X-Request-Id")
           for i in range(3)]
    ids.append(request(gateway.tls_port, "GET", "/nowhere").header("X-Request-Id"))

    def logged():
        if not os.path.exists(path):
            return None
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        return lines if len(lines) >= len(ids) else None

    lines = wait_until(logged, 5.0, message="access lines in the file")
    assert [e["request_id"] for e in lines] == ids
    assert [e["status"] for e in lines] == [200, 200, 200, 404]
    assert gateway.stdout_lines() == []


# ---- security log -------------------------------------------------------------------------------


def refused_requests(gateway):
    """(expected status, expected reason, response) for one request of each refused kind."""
    port = gateway.tls_port
    results = [
        (400, "smuggling_cl_te", raw_exchange(port, smuggling_request())),
        (404, "no_route", request(port, "GET", "/nowhere")),
        (405, "method_not_allowed", request(port, "GET", "/payments")),
        (413, "body_too_large", raw_exchange(port, build_request(
            "POST", "/payments", headers=[("Content-Type", "application/octet-stream"),
                                          ("Content-Length", str(1024 * 1024 + 1))]))),
        (414, "uri_too_long", request(port, "GET", "/api/" + "a" * 9000)),
        (431, "header_too_large", request(port, "GET", "/api/x",
                                          headers=[("X-Big", "b" * 17000)])),
    ]
    sock = tls_connect(port)
    try:
        send(sock, b"GET /api/slow HTTP/1.1\r\nHost: local")  # never finished: header_timeout 1s
        results.append((408, "header_timeout", read_response(sock, timeout=5)))
    finally:
        sock.close()
    return results


def test_security_log_line_for_each_refusal(obs_gateway):
    for status, reason, response in refused_requests(obs_gateway):
        assert response.status == status, (reason, response)
        request_id = response.header("X-Request-Id")
        assert request_id, response
        [event] = rejection_for(obs_gateway, request_id)
        assert event["status"] == status, event
        assert event["reason"] == reason, event
        assert event["client_ip"] == "127.0.0.1", event
        assert TIME.match(event["time"]), event
        # the same request in the access log, with the same reason
        [line] = access_for(obs_gateway, request_id)
        assert line["reason"] == event["reason"] and line["status"] == status, line


def test_no_security_line_for_success_or_upstream_failure(obs_gateway, upstream):
    ok = request(obs_gateway.tls_port, "GET", "/api/fine")
    masked = request(obs_gateway.tls_port, "GET", "/status/500")
    refused = request(obs_gateway.tls_port, "GET", "/dead/x")
    reset = request(obs_gateway.tls_port, "GET", "/reset")
    assert ok.status == 200, ok
    assert masked.status == 500, masked
    assert refused.status == 502, refused
    assert reset.status == 502, reset
    marker = request(obs_gateway.tls_port, "GET", "/nowhere")
    rejection_for(obs_gateway, marker.header("X-Request-Id"))
    ids = {r.header("X-Request-Id") for r in (ok, masked, refused, reset)}
    for request_id in ids:
        access_for(obs_gateway, request_id)
    assert [e for e in rejections(obs_gateway) if e.get("request_id") in ids] == []
    assert len(rejections(obs_gateway)) == 1
    # the access log still says what went wrong upstream
    [line] = access_for(obs_gateway, refused.header("X-Request-Id"))
    assert line["status"] == 502 and line["reason"] == "upstream_connect_failed", line


# ---- admin listener -----------------------------------------------------------------------------


def test_healthz_and_readyz(obs_gateway):
    for path in ("/healthz", "/readyz"):
        response = plain_request(obs_gateway.admin_port, "GET", path)
        assert response.status == 200, (path, response)


def test_metrics_pass_promtool(obs_gateway):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    # fill every family first: a request of each kind
    request(obs_gateway.tls_port, "GET", "/api/x")
    request(obs_gateway.tls_port, "GET", "/nowhere")
    request(obs_gateway.tls_port, "GET", "/dead")
    response = plain_request(obs_gateway.admin_port, "GET", "/metrics")
    assert response.status == 200, response
    assert (response.header("Content-Type") or "").startswith("text/plain"), response
    check = subprocess.run([promtool, "check", "metrics"], input=response.body,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_metrics_count_requests_and_failures(obs_gateway):
    before = scrape(obs_gateway)
    for i in range(3):
        assert request(obs_gateway.tls_port, "GET", f"/api/m/{i}").status == 200
    assert raw_exchange(obs_gateway.tls_port, smuggling_request()).status == 400
    assert request(obs_gateway.tls_port, "GET", "/dead").status == 502
    assert request(obs_gateway.tls_port, "GET", "/nowhere").status == 404
    after = scrape(obs_gateway)

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("portcullis_requests_total", route="api", status_class="2xx") == 3
    assert delta("portcullis_requests_total", route="dead", status_class="5xx") == 1
    assert delta("portcullis_request_duration_seconds_count", route="api") == 3
    assert delta("portcullis_request_duration_seconds_bucket", route="api", le="+Inf") == 3
    buckets = [l["le"] for n, l, _ in after
               if n == "portcullis_request_duration_seconds_bucket" and l.get("route") == "api"]
    assert len(buckets) >= 5 and "+Inf" in buckets, buckets
    assert delta("portcullis_upstream_duration_seconds_count", route="api") == 3
    assert delta("portcullis_rejections_total", reason="smuggling_cl_te") == 1
    assert delta("portcullis_rejections_total", reason="no_route") == 1
    assert delta("portcullis_upstream_errors_total", kind="connect_failed") == 1
    assert delta("portcullis_tls_handshakes_total", version="TLSv1.3") >= 6

    names = {n for n, _, _ in after}
    for name in ("portcullis_active_connections", "portcullis_config_reloads_total",
                 "portcullis_build_info"):
        assert name in names, name
    assert metric(after, "portcullis_config_reloads_total", result="ok") == 0
    assert metric(after, "portcullis_config_reloads_total", result="refused") == 0
    [(_, build, value)] = [s for s in after if s[0] == "portcullis_build_info"]
    assert value == 1 and build.get("version"), build


def test_active_connections_gauge(obs_gateway):
    base = metric(scrape(obs_gateway), "portcullis_active_connections")
    held = []
    try:
        for _ in range(3):
            sock = tls_connect(obs_gateway.tls_port)
            send(sock, build_request("GET", "/api/held"))
            assert read_response(sock).status == 200
            held.append(sock)
        assert wait_metric(obs_gateway, "portcullis_active_connections", base + 3) == base + 3
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: metric(scrape(obs_gateway), "portcullis_active_connections") == base,
               5.0, message="gauge back down after closing")


IPV4 = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
IPV6 = re.compile(r"[0-9a-fA-F]{0,4}:[0-9a-fA-F]{0,4}:[0-9a-fA-F:]*")


def test_no_ip_path_or_query_in_label_values(obs_gateway, upstream):
    request(obs_gateway.tls_port, "GET", f"/api/labels/x?token={QUERY_SECRET}")
    request(obs_gateway.tls_port, "GET", f"/unrouted/path?q={QUERY_SECRET}")
    request(obs_gateway.tls_port, "GET", "/dead/y")
    raw_exchange(obs_gateway.tls_port, smuggling_request("/api/smuggle?x=1"))
    samples = scrape(obs_gateway)
    values = {(n, k, v) for n, labels, _ in samples for k, v in labels.items()}
    assert values
    for name, key, value in values:
        where = f"{name}{{{key}={value!r}}}"
        assert not IPV4.search(value), where
        assert not IPV6.search(value), where
        assert not value.startswith("/"), where
        assert "?" not in value and "=" not in value and "&" not in value, where
        for fragment in (QUERY_SECRET, "/api", "/unrouted", "labels", "smuggle", "localhost",
                         str(upstream.port)):
            assert fragment not in value, where

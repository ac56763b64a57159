"""Signals: SIGHUP reloads the policy without dropping a connection (an invalid policy is refused
and the old one keeps serving), SIGUSR1 reopens the log files, SIGTERM drains and exits 0."""

import json
import os
import re
import signal
import socket
import threading
import time

from harness import (SECURITY_HEADERS, base_policy, build_request, is_closed, plain_connect,
                     plain_request, read_response, request, send, tls_connect, to_yaml,
                     wait_until)


def policy(certs, upstream, generation, extra_route=False, **overrides):
    """Routes `api` (/api), `delay` (/delay/<ms> answers after ms) and `extra` (/extra) when
    extra_route; every response carries
    X-Policy-Generation: <generation> besides the usual security headers."""
    p = base_policy(certs, upstream, **overrides)
    p["headers"] = {"response": {"set": {**SECURITY_HEADERS,
                                         "X-Policy-Generation": str(generation)}}}
    p["routes"] = [{"name": "api", "match": {"path_prefix": "/api"}, "upstream": "core"},
                   {"name": "delay", "match": {"path_prefix": "/delay"}, "upstream": "core"}]
    if extra_route:
        p["routes"].append({"name": "extra", "match": {"path_prefix": "/extra"},
                            "upstream": "core"})
    return p


def events(gateway, name, **fields):
    """Operational events on stderr (the ones without a timestamp; the security log repeats
    reloads with one)."""
    return [e for e in gateway.stderr_events()
            if e.get("event") == name and "time" not in e
            and all(e.get(k) == v for k, v in fields.items())]


def reload_and_wait(gateway, new_policy, result="ok", timeout=10.0):
    """Writes the policy, sends SIGHUP, and waits for the reload event; returns it."""
    count = len(events(gateway, "reload"))
    if new_policy is not None:
        gateway.write_policy(new_policy)
    os.kill(gateway.process.pid, signal.SIGHUP)
    found = wait_until(lambda: (lambda e: e if len(e) > count else None)(
        events(gateway, "reload")), timeout, message="reload event")
    event = found[count]
    assert event["result"] == result, event
    return event


def reload_metric(gateway, result):
    text = plain_request(gateway.admin_port, "GET", "/metrics").text
    match = re.search(r'^portcullis_config_reloads_total\{result="%s"\} (\S+)$' % result, text,
                      re.M)
    assert match, f"no portcullis_config_reloads_total{{result={result!r}}} in /metrics"
    return float(match.group(1))


def keep_alive_get(sock, path):
    send(sock, build_request("GET", path))
    return read_response(sock)


def refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


# ---- SIGHUP -------------------------------------------------------------------------------------


def test_valid_reload_takes_effect_and_keeps_connections(gateway_factory, certs, upstream):
    gateway = gateway_factory(policy(certs, upstream, 1))
    before = request(gateway.tls_port, "GET", "/extra/x")
    assert before.status == 404
    assert before.header("X-Policy-Generation") == "1"
    held = tls_connect(gateway.tls_port)
    try:
        assert keep_alive_get(held, "/api/before").status == 200
        ok_before = reload_metric(gateway, "ok")

        reload_and_wait(gateway, policy(certs, upstream, 2, extra_route=True))

        response = request(gateway.tls_port, "GET", "/extra/x")
        assert response.status == 200, response
        assert response.header("X-Policy-Generation") == "2", response
        assert request(gateway.tls_port, "GET", "/api/x").header("X-Policy-Generation") == "2"
        # the connection opened before the reload still serves, under the new policy
        kept = keep_alive_get(held, "/extra/kept")
        assert kept.status == 200, kept
        assert kept.header("X-Policy-Generation") == "2", kept
        assert reload_metric(gateway, "ok") == ok_before + 1
        # the security log records the reload too
        wait_until(lambda: [e for e in gateway.stderr_events() if e.get("event") == "reload"
                            and e.get("result") == "ok" and "time" in e], 5.0,
                   message="reload in the security log")
    finally:
        held.close()


def test_invalid_reload_is_refused_and_old_policy_keeps_serving(gateway_factory, certs,
                                                                upstream):
    good = policy(certs, upstream, 1)
    gateway = gateway_factory(good)
    held = tls_connect(gateway.tls_port)
    try:
        assert keep_alive_get(held, "/api/before").status == 200
        ok_before = reload_metric(gateway, "ok")
        refused_before = reload_metric(gateway, "refused")

        text = to_yaml(policy(certs, upstream, 2, extra_route=True))
        bad_line = len(text.splitlines()) + 1
        event = reload_and_wait(gateway, text + "bogus_key: 1\n", result="refused")

        errors = event.get("errors")
        assert isinstance(errors, list) and errors, event
        for error in errors:
            assert re.match(r"^.+:\d+:\d+: \S", error), error
        assert any(error.startswith(f"{gateway.policy_path}:{bad_line}:1: ")
                   and "bogus_key" in error for error in errors), errors
        assert reload_metric(gateway, "refused") == refused_before + 1
        assert reload_metric(gateway, "ok") == ok_before

        # the old policy keeps serving, on old and new connections
        old = request(gateway.tls_port, "GET", "/api/x")
        assert old.status == 200 and old.header("X-Policy-Generation") == "1", old
        assert request(gateway.tls_port, "GET", "/extra/x").status == 404
        kept = keep_alive_get(held, "/api/after")
        assert kept.status == 200 and kept.header("X-Policy-Generation") == "1", kept

        # and a good policy afterwards is taken
        reload_and_wait(gateway, policy(certs, upstream, 3, extra_route=True))
        assert request(gateway.tls_port, "GET", "/extra/x").header("X-Policy-Generation") == "3"
        assert reload_metric(gateway, "ok") == ok_before + 1
    finally:
        held.close()


def test_reload_under_load_drops_nothing(gateway_factory, certs, upstream):
    gateway = gateway_factory(policy(certs, upstream, 0))
    port = gateway.tls_port
    stop = threading.Event()
    lock = threading.Lock()
    failures = []
    counts = {"keep_alive": 0, "new": 0}
    generations = set()
    ids = []

    def note(kind, response):
        with lock:
            if response.status != 200:
                failures.append((kind, repr(response)))
            counts[kind] += 1
            ids.append(response.header("X-Request-Id"))
            generations.add(response.header("X-Policy-Generation"))

    def keep_alive_client(index):
        try:
            sock = tls_connect(port)
            try:
                n = 0
                while not stop.is_set():
                    note("keep_alive", keep_alive_get(sock, f"/api/ka/{index}/{n}"))
                    n += 1
            finally:
                sock.close()
        except Exception as e:  # reported below
            with lock:
                failures.append(("keep_alive", repr(e)))

    def new_connection_client():
        n = 0
        while not stop.is_set():
            try:
                note("new", request(port, "GET", f"/api/new/{n}"))
            except Exception as e:  # reported below
                with lock:
                    failures.append(("new", repr(e)))
            n += 1

    threads = [threading.Thread(target=keep_alive_client, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=new_connection_client) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        for generation in range(1, 21):
            reload_and_wait(gateway, policy(certs, upstream, generation))
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads)
    assert failures == [], failures[:10]
    assert counts["keep_alive"] >= 20 and counts["new"] >= 20, counts
    assert len(events(gateway, "reload", result="ok")) == 20
    assert not events(gateway, "reload", result="refused")
    assert "20" in generations and generations <= {str(g) for g in range(21)}, generations
    assert request(port, "GET", "/api/after").header("X-Policy-Generation") == "20"
    # and the access log, handed from one policy's logger to the next, lost no line
    wait_until(lambda: len(gateway.access_log()) >= len(ids) + 1, 5.0,
               message=f"{len(ids) + 1} access log lines")
    logged = [e["request_id"] for e in gateway.access_log()]
    assert len(logged) == len(set(logged)) == len(ids) + 1
    assert set(ids) <= set(logged)


# ---- SIGUSR1 ------------------------------------------------------------------------------------


def read_json_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_signals_at_any_moment_never_kill_the_gateway(gateway_factory, certs, upstream):
    """A SIGHUP the moment the gateway is ready, and a burst of them while reloads are running,
    are all taken as reloads: no thread of the process may take one with its default action
    (process termination)."""
    for attempt in range(5):
        gw = gateway_factory(policy(certs, upstream, 1))
        gw.write_policy(policy(certs, upstream, 2))
        os.kill(gw.process.pid, signal.SIGHUP)  # right after the ready event
        wait_until(lambda: events(gw, "reload", result="ok"), 10, message="first reload")
        for generation in range(3, 8):
            gw.write_policy(policy(certs, upstream, generation))
            os.kill(gw.process.pid, signal.SIGHUP)
        wait_until(lambda: request(gw.tls_port, "GET", "/api/x").header(
            "X-Policy-Generation") == "7", 10, message="the last reload")
        assert gw.process.poll() is None, f"attempt {attempt}: the gateway died"
        gw.stop()


def test_sigusr1_reopens_access_log(gateway_factory, certs, upstream, tmp_path):
    path = str(tmp_path / "access.log")
    rotated = path + ".1"
    gateway = gateway_factory(policy(certs, upstream, 1, logging={"access_log": path}))

    first = request(gateway.tls_port, "GET", "/api/first").header("X-Request-Id")
    wait_until(lambda: [e for e in read_json_lines(path) if e["request_id"] == first], 5.0,
               message="first line in the log file")
    os.rename(path, rotated)
    before_signal = request(gateway.tls_port, "GET", "/api/renamed").header("X-Request-Id")
    wait_until(lambda: [e for e in read_json_lines(rotated) if e["request_id"] == before_signal],
               5.0, message="line written to the renamed file until SIGUSR1")

    os.kill(gateway.process.pid, signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), 5.0, message="log file recreated after SIGUSR1")
    after = [request(gateway.tls_port, "GET", f"/api/after/{i}").header("X-Request-Id")
             for i in range(3)]
    wait_until(lambda: len(read_json_lines(path)) >= 3, 5.0, message="new lines in the new file")
    time.sleep(0.2)

    new_ids = [e["request_id"] for e in read_json_lines(path)]
    old_ids = [e["request_id"] for e in read_json_lines(rotated)]
    assert new_ids == after, (new_ids, after)
    assert old_ids == [first, before_signal], old_ids
    assert gateway.running()


# ---- SIGTERM ------------------------------------------------------------------------------------


def test_drain_finishes_in_flight_request_and_exits_zero(gateway_factory, certs, upstream):
    gateway = gateway_factory(policy(certs, upstream, 1))
    result = {}

    def slow_request():
        try:
            result["response"] = request(gateway.tls_port, "GET", "/delay/1500")
        except Exception as e:  # reported below
            result["error"] = e

    admin = plain_connect(gateway.admin_port)  # opened before the drain, asked during it
    idle = tls_connect(gateway.tls_port)
    try:
        assert keep_alive_get(idle, "/api/idle").status == 200
        client = threading.Thread(target=slow_request)
        client.start()
        upstream.wait_for_requests(1, predicate=lambda r: r.path == "/delay/1500")
        started = time.monotonic()
        os.kill(gateway.process.pid, signal.SIGTERM)

        wait_until(lambda: events(gateway, "drain"), 2.0, message="drain event")
        wait_until(lambda: refuses_connections(gateway.tls_port), 1.0,
                   message="TLS listener refuses new connections during the drain")
        assert gateway.running(), "exited before the in-flight request finished"

        # /readyz, where it can still be reached, says 503
        try:
            send(admin, build_request("GET", "/readyz"))
            ready = read_response(admin, timeout=3)
        except (ConnectionError, OSError):
            ready = None
        if ready is not None:
            assert ready.status == 503, ready
        if not refuses_connections(gateway.admin_port):
            assert plain_request(gateway.admin_port, "GET", "/readyz").status == 503

        # an idle keep-alive connection is closed rather than kept for the drain
        assert is_closed(idle, timeout=1.0)

        client.join(10)
        assert "error" not in result, result.get("error")
        assert result["response"].status == 200, result["response"]
        assert gateway.process.wait(timeout=10) == 0
        assert time.monotonic() - started >= 1.0
        slow_id = result["response"].header("X-Request-Id")
    finally:
        admin.close()
        idle.close()
    gateway.stop()  # collects the remaining output
    names = [e["event"] for e in gateway.stderr_events() if "time" not in e and "event" in e]
    assert "drain" in names and names[-1] == "stopped", names
    # the request finished during the drain is in the access log, written before the exit
    assert [e["status"] for e in gateway.access_log() if e["request_id"] == slow_id] == [200]


def test_drain_timeout_bounds_the_wait(gateway_factory, certs, upstream):
    gateway = gateway_factory(policy(certs, upstream, 1,
                                     server={"limits": {"drain_timeout": "1s"}}))
    result = {}

    def slow_request():
        try:
            result["response"] = request(gateway.tls_port, "GET", "/delay/5000")
        except Exception as e:  # the gateway gives up on it: any error is fine
            result["error"] = e

    client = threading.Thread(target=slow_request)
    client.start()
    try:
        upstream.wait_for_requests(1, predicate=lambda r: r.path == "/delay/5000")
        started = time.monotonic()
        os.kill(gateway.process.pid, signal.SIGTERM)
        code = gateway.process.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        client.join(10)
    assert code == 0
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert "response" not in result or result["response"].status != 200, result
    gateway.stop()
    names = [e["event"] for e in gateway.stderr_events() if "time" not in e and "event" in e]
    assert names[-2:] == ["drain", "stopped"], names

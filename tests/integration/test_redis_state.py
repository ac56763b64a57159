"""The `redis` state backend through the real binary and a real redis-server on a loopback port:
a revocation or ban made through one gateway is enforced by another sharing the Redis (with the
delay measured), Redis killed under traffic (fail_closed answers 503 on JWT routes only, /readyz
says so, and service comes back when Redis does, with no gateway restart), fail_open, AUTH with
an ACL user and a password file, rediss:// with the server's certificate verified, keys with
TTLs, revocations that outlive a gateway restart, and the warning about appendonly no."""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

import pytest

from harness import (Gateway, Upstream, assert_gateway_error, base_policy, plain_request,
                     request, wait_until)
from test_jwt import provider, sign

ADMIN_TOKEN = "redis-state-admin-token"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own on a free loopback port, in its own folder (so AOF and
    restarts keep their data there)."""

    def __init__(self, *extra, port=None, tls=None, appendonly=True):
        self.dir = tempfile.mkdtemp(prefix="portcullis-redis-")
        self.port = port or free_port()
        self.tls = tls
        self.extra = list(extra)
        self.appendonly = appendonly
        self.process = None
        self.start()

    def args(self):
        args = [REDIS, "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.tls[0],
                     "--tls-key-file", self.tls[1], "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        return args + self.extra

    def start(self):
        self.process = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, timeout=10, message="redis-server listens")

    def kill(self):
        self.process.kill()
        self.process.wait(timeout=10)

    def cli(self, *args):
        if self.tls:
            raise RuntimeError("cli() is for the plain server")
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip()

    def stat(self, name, *client_args):
        """A counter of INFO stats (0 when unreadable); `client_args` authenticate redis-cli or
        give it the TLS CA."""
        tls = ["--tls"] if self.tls else []
        out = subprocess.run(["redis-cli", "-h", "localhost", "-p", str(self.port), *tls,
                              *client_args, "INFO", "stats"], capture_output=True, text=True,
                             timeout=10).stdout
        for line in out.splitlines():
            if line.startswith(name + ":"):
                return int(line.split(":", 1)[1])
        return 0

    def refused_logins(self, *login):
        """Failed AUTH attempts the server logged (ACL LOG: entries of reason auth, each with the
        count of attempts it stands for); `login` authenticates redis-cli itself."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), *login, "--raw", "ACL", "LOG"],
                             capture_output=True, text=True, timeout=10).stdout.splitlines()
        total = 0
        for i in range(0, len(out) - 3):
            if out[i] == "count" and out[i + 2] == "reason" and out[i + 3] == "auth":
                total += int(out[i + 1])
        return total

    def stop(self):
        if self.process and self.process.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis():
    server = RedisServer()
    yield server
    server.stop()


def fleet_policy(certs, core, jwt_keys, workdir, url, **state):
    policy = base_policy(certs, core)
    with open(os.path.join(workdir, "admin.token"), "w") as f:
        f.write(ADMIN_TOKEN + "\n")
    policy["server"]["admin"]["token_file"] = "admin.token"
    policy["state"] = {"backend": "redis",
                       "redis": {"url": url, "key_prefix": "itest:", "command_timeout": "100ms",
                                 **state.pop("redis", {})},
                       **state}
    policy["jwt_providers"] = {"corp": provider(jwks_file=jwt_keys.jwks, algorithms=["ES256"])}
    policy["routes"] = [
        {"name": "public", "match": {"path_prefix": "/public"}, "upstream": "core"},
        {"name": "accounts", "match": {"path_prefix": "/api"}, "upstream": "core",
         "auth": {"jwt": "corp"}},
    ]
    return policy


def start_gateway(certs, core, jwt_keys, url, configure=None, **state):
    """A gateway of the fleet; `configure(policy)` may change its policy first."""
    workdir = tempfile.mkdtemp(prefix="portcullis-fleet-")
    policy = fleet_policy(certs, core, jwt_keys, workdir, url, **state)
    if configure:
        configure(policy)
    return Gateway(policy, workdir=workdir)


def evalsha_calls(redis):
    stats = redis.cli("INFO", "commandstats")
    if "cmdstat_evalsha" not in stats:
        return 0
    return int(stats.split("cmdstat_evalsha:calls=")[1].split(",")[0])


def admin(gateway, method, path, body=None):
    return plain_request(gateway.admin_port, method, path,
                         headers=[("Authorization", f"Bearer {ADMIN_TOKEN}")],
                         body=body.encode() if body else None)


def api(gateway, token, path="/api/x"):
    return request(gateway.tls_port, "GET", path, headers=[("Authorization", f"Bearer {token}")])


def token_for(jwt_keys, jti, sub="alice"):
    return sign(jwt_keys.key, kid="es-1", claims={"jti": jti, "sub": sub}, exp_in=600)


def ready(gateway):
    return plain_request(gateway.admin_port, "GET", "/readyz").status == 200


def test_a_revocation_through_one_gateway_is_enforced_by_the_other(certs, core, jwt_keys, redis):
    url = f"redis://127.0.0.1:{redis.port}/0"
    a = start_gateway(certs, core, jwt_keys, url)
    b = start_gateway(certs, core, jwt_keys, url)
    try:
        wait_until(lambda: ready(a) and ready(b), message="both gateways follow the Redis")
        delays = []
        exp = int(time.time()) + 600
        for i in range(20):
            token = token_for(jwt_keys, f"fleet-{i}")
            assert api(b, token).status == 200  # verified and cached on B
            start = time.monotonic()
            assert admin(a, "POST", "/revocations", f'{{"jti":"fleet-{i}","exp":{exp}}}').status == 201
            wait_until(lambda: api(b, token).status == 401, timeout=5, interval=0.002,
                       message="B refuses the token revoked through A")
            delays.append((time.monotonic() - start) * 1000)
        print(f"propagation A -> B over 20 revocations (admin write, then B's 401 seen, with a "
              f"TLS request per poll): p50 {statistics.median(delays):.1f} ms, "
              f"max {max(delays):.1f} ms")
        assert statistics.median(delays) < 100
        # A ban through B holds on A, and lifting it through A frees the client on B too.
        assert admin(b, "POST", "/bans", '{"ip":"127.0.0.1","duration":"5m"}').status == 201
        wait_until(lambda: request(a.tls_port, "GET", "/public/x").status == 429, timeout=5,
                   message="A enforces B's ban")
        assert admin(a, "DELETE", "/bans/127.0.0.1").status == 200
        wait_until(lambda: request(b.tls_port, "GET", "/public/x").status == 200, timeout=5,
                   message="B lifts the ban lifted through A")
        # Every key carries a TTL.
        keys = redis.cli("--scan", "--pattern", "itest:*").split()
        assert any(k.startswith("itest:rev:") for k in keys), keys
        for key in keys:
            if key.startswith("itest:rev:"):
                ttl = int(redis.cli("PTTL", key))
                assert 0 < ttl <= (600 + 300 + 5) * 1000, (key, ttl)
    finally:
        a.stop()
        b.stop()


def test_redis_down_fail_closed_then_recovers_without_a_restart(certs, core, jwt_keys, redis):
    gw = start_gateway(certs, core, jwt_keys, f"redis://127.0.0.1:{redis.port}/0")
    try:
        wait_until(lambda: ready(gw), message="the gateway follows the Redis")
        token = token_for(jwt_keys, "while-down")
        assert api(gw, token).status == 200
        redis.kill()
        started = time.monotonic()

        def refused():
            response = api(gw, token)
            return response if response.status == 503 else None

        response = wait_until(refused, timeout=5, interval=0.01,
                              message="JWT routes answer 503 while Redis is down")
        print(f"503 on the JWT route {1000 * (time.monotonic() - started):.0f} ms after the kill")
        assert_gateway_error(response, 503, "service_unavailable")
        assert request(gw.tls_port, "GET", "/public/x").status == 200  # other routes serve
        readyz = plain_request(gw.admin_port, "GET", "/readyz")
        assert readyz.status == 503 and b"state_unavailable" in readyz.body
        assert plain_request(gw.admin_port, "GET", "/healthz").status == 200
        write = admin(gw, "POST", "/revocations", f'{{"jti":"x","exp":{int(time.time()) + 60}}}')
        assert write.status == 503  # not acknowledged
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
        assert "portcullis_state_backend_up 0" in text

        redis.start()  # same port, same folder: the AOF brings the data back
        wait_until(lambda: api(gw, token).status == 200, timeout=15, interval=0.05,
                   message="service resumes once Redis is back")
        assert ready(gw)
    finally:
        gw.stop()


def test_fail_open_decides_on_what_the_instance_knows(certs, core, jwt_keys, redis):
    gw = start_gateway(certs, core, jwt_keys, f"redis://127.0.0.1:{redis.port}/0",
                       on_unavailable="fail_open")
    try:
        wait_until(lambda: ready(gw), message="the gateway follows the Redis")
        revoked = token_for(jwt_keys, "known-revoked")
        exp = int(time.time()) + 600
        assert admin(gw, "POST", "/revocations", f'{{"jti":"known-revoked","exp":{exp}}}').status == 201
        redis.kill()
        fine = token_for(jwt_keys, "fine")
        wait_until(lambda: "portcullis_state_backend_up 0" in
                   plain_request(gw.admin_port, "GET", "/metrics").body.decode(), timeout=5,
                   message="the backend is seen down")
        assert api(gw, fine).status == 200
        assert api(gw, revoked).status == 401  # still refused from the local mirror
        assert ready(gw)  # fail_open: ready
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
        fail_open = [l for l in text.splitlines() if l.startswith("portcullis_state_fail_open_total")]
        assert fail_open and float(fail_open[0].split()[-1]) >= 2
    finally:
        gw.stop()


def test_revocations_outlive_a_gateway_restart(certs, core, jwt_keys, redis):
    url = f"redis://127.0.0.1:{redis.port}/0"
    token = token_for(jwt_keys, "outlives")
    gw = start_gateway(certs, core, jwt_keys, url)
    try:
        wait_until(lambda: ready(gw), message="ready")
        exp = int(time.time()) + 600
        assert admin(gw, "POST", "/revocations", f'{{"jti":"outlives","exp":{exp}}}').status == 201
    finally:
        gw.stop()
    gw = start_gateway(certs, core, jwt_keys, url)
    try:
        wait_until(lambda: ready(gw), message="ready again")
        assert_gateway_error(api(gw, token), 401)
    finally:
        gw.stop()


def test_acl_user_with_a_password_file(certs, core, jwt_keys):
    server = RedisServer("--user", "default", "off",
                         "--user", "gateway", "on", ">s3cret-pass", "~*", "&*", "+@all")
    try:
        workdir = tempfile.mkdtemp(prefix="portcullis-fleet-")
        with open(os.path.join(workdir, "redis.password"), "w") as f:
            f.write("s3cret-pass\n")
        policy = fleet_policy(certs, core, jwt_keys, workdir,
                              f"redis://gateway@127.0.0.1:{server.port}/0",
                              redis={"password_file": "redis.password"})
        with Gateway(policy, workdir=workdir) as gw:
            wait_until(lambda: ready(gw), message="authenticated as the ACL user")
            exp = int(time.time()) + 600
            assert admin(gw, "POST", "/revocations", f'{{"jti":"acl","exp":{exp}}}').status == 201
            assert_gateway_error(api(gw, token_for(jwt_keys, "acl")), 401)
            assert all(
                "s3cret-pass" not in line for line in gw.stderr_lines() + gw.stdout_lines())
        with open(os.path.join(workdir, "redis.password"), "w") as f:
            f.write("wrong-pass\n")
        login = ("--user", "gateway", "--pass", "s3cret-pass", "--no-auth-warning")
        refused_before = server.refused_logins(*login)
        with Gateway(policy, workdir=workdir) as gw:
            # A wrong password: refused by the server (twice: it tried again), never ready.
            wait_until(lambda: server.refused_logins(*login) >= refused_before + 2,
                       message="the server refused the gateway's password, twice")
            assert not ready(gw)
            assert api(gw, token_for(jwt_keys, "other")).status == 503
    finally:
        server.stop()


def test_rediss_verifies_the_server_certificate(certs, core, jwt_keys):
    server = RedisServer(tls=(certs.server_cert, certs.server_key))
    try:
        url = f"rediss://localhost:{server.port}/0"
        gw = start_gateway(certs, core, jwt_keys, url, redis={"ca_file": certs.ca})
        try:
            wait_until(lambda: ready(gw), message="connected over TLS")
            exp = int(time.time()) + 600
            assert admin(gw, "POST", "/revocations", f'{{"jti":"tls","exp":{exp}}}').status == 201
            assert_gateway_error(api(gw, token_for(jwt_keys, "tls")), 401)
        finally:
            gw.stop()
        # A CA that did not sign the server's certificate: never ready, JWT routes refused.
        trusted = ("--cacert", certs.ca)
        attempts_before = server.stat("total_connections_received", *trusted)
        gw = start_gateway(certs, core, jwt_keys, url, redis={"ca_file": certs.wrong_ca})
        try:
            # It connects (the server counts each attempt), refuses the certificate, tries again.
            wait_until(lambda: server.stat("total_connections_received", *trusted)
                       >= attempts_before + 3,  # two attempts, and this query's own
                       message="the gateway tried the server twice")
            assert not ready(gw)
            assert api(gw, token_for(jwt_keys, "other")).status == 503
        finally:
            gw.stop()
    finally:
        server.stop()


def test_start_warns_when_redis_keeps_no_aof(certs, core, jwt_keys):
    server = RedisServer(appendonly=False)
    try:
        gw = start_gateway(certs, core, jwt_keys, f"redis://127.0.0.1:{server.port}/0")
        try:
            wait_until(lambda: any("appendonly no" in e.get("message", "")
                                   for e in gw.stderr_events()),
                       message="a warning that the server keeps no AOF")
        finally:
            gw.stop()
    finally:
        server.stop()


def test_two_gateways_share_one_rate_limit(certs, core, jwt_keys, redis):
    url = f"redis://127.0.0.1:{redis.port}/0"

    def shared_limit(policy):
        policy["rate_limits"] = {"shared_ip": {"key": "client_ip", "rate": 1, "per": "1m",
                                               "burst": 4}}
        policy["routes"][0]["rate_limit"] = ["shared_ip"]

    gateways = []
    try:
        for _ in range(2):
            gateways.append(start_gateway(certs, core, jwt_keys, url, configure=shared_limit))
        a, b = gateways
        wait_until(lambda: ready(a) and ready(b), message="both gateways follow the Redis")
        before = evalsha_calls(redis)
        statuses = [request(gw.tls_port, "GET", "/public/shared").status
                    for gw in (a, b, a, b, a, b)]
        # One budget of 4 for the fleet, not 4 per gateway.
        assert statuses == [200, 200, 200, 200, 429, 429], statuses
        refused = request(b.tls_port, "GET", "/public/shared")
        assert_gateway_error(refused, 429, "too_many_requests")
        assert refused.header("RateLimit-Limit") == "4"
        assert 1 <= int(refused.header("Retry-After")) <= 60
        after = evalsha_calls(redis)
        # Six decisions, plus the first EVALSHA that found no script loaded (NOSCRIPT); the
        # seventh request, from a client B already saw refused, cost no Redis call.
        assert after - before <= 7, (before, after)
        # With Redis gone, each gateway decides on what it knows: a fresh local budget.
        redis.kill()
        wait_until(lambda: not ready(a), timeout=5, message="A sees Redis gone")
        assert request(a.tls_port, "GET", "/public/other").status == 200
    finally:
        for gw in gateways:
            gw.stop()


def metric_value(gateway, name):
    text = plain_request(gateway.admin_port, "GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_leases_live_instances_and_fail_open_at_the_fleets_share(certs, core, jwt_keys, redis):
    url = f"redis://127.0.0.1:{redis.port}/0"

    def hot_and_slow_limits(policy):
        policy["rate_limits"] = {
            # 1000/s, burst 400: leased in slices of up to 50.
            "hot_ip": {"key": "client_ip", "rate": 1000, "per": "1s", "burst": 400},
            # 10 per minute, burst 8: never leased; halved while Redis is down.
            "slow_ip": {"key": "client_ip", "rate": 10, "per": "1m", "burst": 8},
        }
        policy["routes"] = [
            {"name": "hot", "match": {"path_prefix": "/hot"}, "upstream": "core",
             "rate_limit": ["hot_ip"]},
            {"name": "slow", "match": {"path_prefix": "/slow"}, "upstream": "core",
             "rate_limit": ["slow_ip"]},
        ]

    gateways = []
    try:
        for _ in range(2):
            gateways.append(start_gateway(certs, core, jwt_keys, url, configure=hot_and_slow_limits,
                                          on_unavailable="fail_open"))
        a, b = gateways
        wait_until(lambda: ready(a) and ready(b), message="both gateways follow the Redis")
        # Each instance announces itself every 2 s: both count two.
        wait_until(lambda: metric_value(a, "portcullis_state_live_instances") == 2 and
                   metric_value(b, "portcullis_state_live_instances") == 2, timeout=10,
                   interval=0.1, message="both gateways count two live instances")

        # A leased limit: far fewer scripts than requests.
        before = evalsha_calls(redis)
        statuses = [request(a.tls_port, "GET", "/hot/x").status for _ in range(60)]
        assert statuses == [200] * 60, statuses
        scripts = evalsha_calls(redis) - before
        assert scripts <= 30, scripts

        # Redis gone with fail_open: each of the two decides alone at half the limit (burst 4).
        redis.kill()
        wait_until(lambda: metric_value(a, "portcullis_state_backend_up") == 0, timeout=5,
                   message="A sees Redis gone")
        assert metric_value(a, "portcullis_state_live_instances") == 2  # the last count heard
        statuses = [request(a.tls_port, "GET", "/slow/x").status for _ in range(6)]
        assert statuses == [200] * 4 + [429] * 2, statuses
    finally:
        for gw in gateways:
            gw.stop()

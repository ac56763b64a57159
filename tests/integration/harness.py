"""Integration-test harness: test certificates, the demo upstream, the gateway process and a small
HTTP/1.1-over-TLS client that shows exactly what arrives on the wire.

Standard library only. Binaries come from the environment:
  PORTCULLIS_BIN     (default /work/main/build/portcullis)
  DEMO_UPSTREAM_BIN  (default /work/main/build/demo-upstream)
"""

import copy
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import warnings
import weakref

DEFAULT_PORTCULLIS_BIN = "/work/main/build/portcullis"
DEFAULT_DEMO_UPSTREAM_BIN = "/work/main/build/demo-upstream"

# The CA that tls_connect() trusts when no cafile is given; the `certs` fixture sets it.
DEFAULT_CA = None

READY_TIMEOUT = 15.0
IO_TIMEOUT = 10.0

REQUEST_ID = re.compile(r"^[0-9a-fA-F]{32}$")

# The response headers the policy sets by default (spec: headers.response.set).
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

# Things a gateway error body must never carry: stack traces, file paths, upstream addresses,
# library messages.
LEAK_MARKERS = (b"NullPointerException", b"Core.java", b"<h1>", b"127.0.0.1", b"/work/", b"asio",
                b"boost", b"OpenSSL", b"SSL routines", b"Traceback", b"errno", b"system:")


def portcullis_bin():
    return os.environ.get("PORTCULLIS_BIN", DEFAULT_PORTCULLIS_BIN)


def demo_upstream_bin():
    return os.environ.get("DEMO_UPSTREAM_BIN", DEFAULT_DEMO_UPSTREAM_BIN)


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition not met"):
    """Polls predicate() until it returns something truthy, and returns that; raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s: {message}")
        time.sleep(interval)


def pattern_body(n):
    """The body demo-upstream generates for /size/<n> and /chunked/<n>: 'abc...z' repeated."""
    block = bytes(range(ord("a"), ord("z") + 1))
    return (block * (n // 26 + 1))[:n]


# ---- certificates ------------------------------------------------------------------------------


class Certs:
    """Paths of the test PKI (all PEM, ECDSA P-256)."""

    def __init__(self, directory):
        self.dir = directory

    def path(self, name):
        return os.path.join(self.dir, name)


_OPENSSL_MIN_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _openssl(*args, cwd):
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _make_key(directory, name):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", name, cwd=directory)
    os.chmod(os.path.join(directory, name), 0o600)


def _make_ca(directory, name, common_name):
    _make_key(directory, f"{name}.key")
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={common_name}",
             "-days", "3650", "-sha256", "-config", "openssl-min.cnf", "-extensions", "v3_ca",
             "-out", f"{name}.crt", cwd=directory)


def _make_leaf(directory, name, ca, common_name, san=None, usage="serverAuth"):
    _make_key(directory, f"{name}.key")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={common_name}",
             "-config", "openssl-min.cnf", "-out", f"{name}.csr", cwd=directory)
    ext = [
        "[v3]",
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature",
        f"extendedKeyUsage = {usage}",
        "subjectKeyIdentifier = hash",
        "authorityKeyIdentifier = keyid",
    ]
    if san:
        ext.append(f"subjectAltName = {san}")
    with open(os.path.join(directory, f"{name}.ext"), "w") as f:
        f.write("\n".join(ext) + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-set_serial", "0x" + secrets.token_hex(12), "-days", "825", "-sha256",
             "-extfile", f"{name}.ext", "-extensions", "v3", "-out", f"{name}.crt", cwd=directory)


def make_certs(directory):
    """Creates the test PKI in directory and returns a Certs with these attributes:

    ca, ca_key                      test CA every server certificate chains to
    server_cert, server_key         CN=localhost, SAN DNS:localhost, IP:127.0.0.1
    other_cert, other_key           SAN DNS:other.test (second certificate, for SNI)
    upstream_cert, upstream_key     SAN DNS:upstream.test, IP:127.0.0.1 (for upstream TLS)
    wrong_ca, wrong_ca_key          an unrelated CA
    wrong_server_cert/_key          localhost + upstream.test, signed by the wrong CA
    client_ca, client_ca_key        CA for client certificates (mTLS)
    client_cert, client_key         CN=teller-01, signed by the client CA
    """
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "openssl-min.cnf"), "w") as f:
        f.write(_OPENSSL_MIN_CONFIG)
    _make_ca(directory, "ca", "Portcullis Test CA")
    _make_leaf(directory, "server", "ca", "localhost", "DNS:localhost, IP:127.0.0.1")
    _make_leaf(directory, "other", "ca", "other.test", "DNS:other.test")
    _make_leaf(directory, "upstream", "ca", "upstream.test", "DNS:upstream.test, IP:127.0.0.1")
    _make_ca(directory, "wrong-ca", "Wrong Test CA")
    _make_leaf(directory, "wrong-server", "wrong-ca", "localhost",
               "DNS:localhost, DNS:upstream.test, IP:127.0.0.1")
    _make_ca(directory, "client-ca", "Portcullis Test Client CA")
    _make_leaf(directory, "client", "client-ca", "teller-01", usage="clientAuth")

    certs = Certs(directory)
    p = certs.path
    certs.ca, certs.ca_key = p("ca.crt"), p("ca.key")
    certs.server_cert, certs.server_key = p("server.crt"), p("server.key")
    certs.other_cert, certs.other_key = p("other.crt"), p("other.key")
    certs.upstream_cert, certs.upstream_key = p("upstream.crt"), p("upstream.key")
    certs.wrong_ca, certs.wrong_ca_key = p("wrong-ca.crt"), p("wrong-ca.key")
    certs.wrong_server_cert, certs.wrong_server_key = p("wrong-server.crt"), p("wrong-server.key")
    certs.client_ca, certs.client_ca_key = p("client-ca.crt"), p("client-ca.key")
    certs.client_cert, certs.client_key = p("client.crt"), p("client.key")
    return certs


# ---- YAML ---------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _yaml_scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid YAML double-quoted scalar.
        return json.dumps(value)
    raise TypeError(f"cannot render {type(value).__name__} as YAML")


def _yaml_key(key):
    key = str(key)
    return key if _PLAIN_KEY.match(key) and key not in ("true", "false", "null", "yes", "no",
                                                         "on", "off", "y", "n") else json.dumps(key)


def _yaml_lines(value, indent):
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{_yaml_key(key)}:")
                lines.extend(_yaml_lines(item, indent + 2))
            else:
                lines.append(f"{pad}{_yaml_key(key)}: {_yaml_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_yaml_inline(item)}")
    else:
        lines.append(pad + _yaml_scalar(value))
    return lines


def _yaml_inline(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _yaml_scalar(value)


def to_yaml(value):
    """Renders dicts, lists, strings, numbers, booleans and None as block YAML."""
    return "\n".join(_yaml_lines(value, 0)) + "\n"


def deep_merge(base, overrides):
    """A copy of base with overrides merged in: dicts merge recursively, anything else replaces."""
    result = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# ---- policies -----------------------------------------------------------------------------------


def endpoints(upstreams):
    """Endpoint addresses of an Upstream, an address, or a list of them."""
    if isinstance(upstreams, (list, tuple)):
        return [u if isinstance(u, str) else u.address for u in upstreams]
    return [upstreams if isinstance(upstreams, str) else upstreams.address]


def base_policy(certs, upstream, **overrides):
    """A minimal valid policy: one TLS listener with the localhost certificate, an admin listener,
    short timeouts, JSON logs, upstream `core` (an Upstream, an address, or a list of them) and one
    catch-all route `api`. Keyword arguments are deep-merged over the top-level sections."""
    policy = {
        "version": 1,
        "server": {
            "workers": 1,
            "listen": [
                {
                    "address": "127.0.0.1:0",
                    "tls": {"certificates": [{"cert": certs.server_cert,
                                              "key": certs.server_key}]},
                }
            ],
            "admin": {"address": "127.0.0.1:0"},
            "limits": {
                # Far more than any test holds, and within any machine's descriptor limit (10000
                # may need 20,078 descriptors: more than some hard limits, which warns).
                "max_connections": 2000,
                "max_connections_per_ip": 256,
                "max_uri_bytes": "8KiB",
                "max_header_bytes": "16KiB",
                "max_header_count": 100,
                "max_body_bytes": "1MiB",
                "header_timeout": "2s",
                "body_timeout": "2s",
                "idle_timeout": "2s",
                "drain_timeout": "5s",
            },
        },
        "logging": {"access_log": "stdout", "security_log": "stderr"},
        "upstreams": {"core": {"endpoints": endpoints(upstream)}},
        "routes": [{"name": "api", "match": {"path_prefix": "/"}, "upstream": "core"}],
    }
    return deep_merge(policy, overrides) if overrides else policy


# ---- processes ----------------------------------------------------------------------------------


class ProcessError(RuntimeError):
    pass


class Upstream:
    """A running demo-upstream. Use as a context manager, or call stop()."""

    def __init__(self, name="upstream", threads=1, tls_cert=None, tls_key=None, binary=None,
                 extra_args=(), timeout=READY_TIMEOUT, port=0):
        self.name = name
        self.tls = tls_cert is not None
        self.binary = binary or demo_upstream_bin()
        if not os.path.exists(self.binary):
            raise ProcessError(f"demo-upstream binary not found: {self.binary} "
                               "(set DEMO_UPSTREAM_BIN)")
        args = [self.binary, "--listen", f"127.0.0.1:{port}", "--threads", str(threads),
                "--name", name]
        if self.tls:
            args += ["--tls-cert", tls_cert, "--tls-key", tls_key]
        args += list(extra_args)
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=self._stderr)
        try:
            self.port = self._read_port(timeout)
        except BaseException:
            self.stop()
            raise
        self.host = "127.0.0.1"
        self.address = f"127.0.0.1:{self.port}"

    def _read_port(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProcessError(f"demo-upstream did not report its port:\n{self._errors()}")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.process.stdout.fileno(), 256)
            if not chunk:
                self.process.wait(timeout=5)
                raise ProcessError(f"demo-upstream exited with {self.process.returncode}:\n"
                                   f"{self._errors()}")
            line += chunk
        match = re.match(rb"^listening (\S+):(\d+)\n$", line)
        if not match:
            raise ProcessError(f"unexpected first line from demo-upstream: {line!r}")
        return int(match.group(2))

    def _errors(self):
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    # -- control routes, straight to the upstream (not through the gateway)

    def _control(self, method, path):
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(socket.create_connection((self.host, self.port), IO_TIMEOUT))
        else:
            sock = socket.create_connection((self.host, self.port), IO_TIMEOUT)
        try:
            sock.settimeout(IO_TIMEOUT)
            send(sock, build_request(method, path, headers=[("Connection", "close")],
                                     host=self.address))
            response = read_response(sock)
        finally:
            sock.close()
        if response.status != 200:
            raise ProcessError(f"{method} {path} on demo-upstream: {response.status}")
        return response.json()

    def requests(self):
        """Every request received since the last reset (control routes excluded), oldest first."""
        return [Recorded(r) for r in self._control("GET", "/__requests")]

    def reset(self):
        self._control("POST", "/__reset")

    def stats(self):
        return self._control("GET", "/__stats")

    def set_healthy(self, healthy):
        """What GET /health answers from now on: 200 "ok" or 503."""
        self._control("POST", "/__health/ok" if healthy else "/__health/fail")

    def wait_for_requests(self, count, timeout=5.0, predicate=None):
        """Polls until at least `count` recorded requests (matching predicate) exist; returns them."""
        def enough():
            found = [r for r in self.requests() if predicate is None or predicate(r)]
            return found if len(found) >= count else None
        return wait_until(enough, timeout, message=f"{count} request(s) at upstream {self.name}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Recorded(dict):
    """One request as demo-upstream recorded it (method, target, version, headers, body_length,
    body, chunked, connection_id, raw_head), with header helpers."""

    def header(self, name, default=None):
        for key, value in self["headers"]:
            if key.lower() == name.lower():
                return value
        return default

    def headers_all(self, name):
        return [value for key, value in self["headers"] if key.lower() == name.lower()]

    def header_names(self):
        return [key.lower() for key, _ in self["headers"]]

    @property
    def path(self):
        return self["target"].split("?", 1)[0]

    @property
    def body_bytes(self):
        return self["body"].encode("latin-1")


class Gateway:
    """A running portcullis with a policy (a dict rendered to YAML, or YAML text) in a temp dir.

    Waits for the {"event":"ready"} line on stderr. Listener ports are read from the
    {"event":"listening",...} lines: .tls_ports (in order), .tls_port (first), .redirect_port,
    .admin_port. stdout (access log) and stderr are drained in threads; see stdout_lines(),
    stderr_lines(), access_log(), stderr_events().
    """

    def __init__(self, policy, binary=None, extra_args=(), ready_timeout=READY_TIMEOUT,
                 workdir=None, files=None):
        self.binary = binary or portcullis_bin()
        if not os.path.exists(self.binary):
            raise ProcessError(f"portcullis binary not found: {self.binary} (set PORTCULLIS_BIN)")
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="portcullis-test-")
        for name, text in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.policy_path = os.path.join(self.dir, "policy.yaml")
        self.write_policy(policy)
        self._lock = threading.Condition()
        self._stdout = []
        self._stderr = []
        self._closed_streams = 0
        self.listeners = []
        self.ready = False
        self.process = subprocess.Popen([self.binary, "-c", self.policy_path, *extra_args],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, cwd=self.dir)
        self._threads = [
            threading.Thread(target=self._drain, args=(self.process.stdout, self._stdout),
                             daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr, self._stderr),
                             daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def write_policy(self, policy):
        text = policy if isinstance(policy, str) else to_yaml(policy)
        with open(self.policy_path, "w") as f:
            f.write(text)

    def _drain(self, stream, sink):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                sink.append(line)
                if sink is self._stderr:
                    self._note_event(line)
                self._lock.notify_all()
        with self._lock:
            self._closed_streams += 1
            self._lock.notify_all()

    def _note_event(self, line):
        event = _json_or_none(line)
        if not isinstance(event, dict):
            return
        if event.get("event") == "listening":
            self.listeners.append(event)
        elif event.get("event") == "ready":
            self.ready = True

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self.ready:
                if self.process.poll() is not None and self._closed_streams == 2:
                    raise ProcessError(
                        f"portcullis exited with {self.process.returncode} before ready; "
                        f"stderr:\n" + "\n".join(self._stderr))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ProcessError(f"portcullis not ready within {timeout}s; stderr:\n"
                                       + "\n".join(self._stderr))
                self._lock.wait(min(remaining, 0.1))

    def _ports(self, kind):
        return [int(l["bound"].rsplit(":", 1)[1]) for l in self.listeners if l.get("kind") == kind]

    @property
    def tls_ports(self):
        return self._ports("tls")

    @property
    def tls_port(self):
        return self.tls_ports[0]

    @property
    def redirect_port(self):
        return self._ports("redirect")[0]

    @property
    def admin_port(self):
        return self._ports("admin")[0]

    def stdout_lines(self):
        with self._lock:
            return list(self._stdout)

    def stderr_lines(self):
        with self._lock:
            return list(self._stderr)

    def access_log(self):
        """The access log (stdout), parsed JSON lines."""
        return [e for e in map(_json_or_none, self.stdout_lines()) if isinstance(e, dict)]

    def stderr_events(self):
        """stderr JSON lines (startup events and the security log)."""
        return [e for e in map(_json_or_none, self.stderr_lines()) if isinstance(e, dict)]

    def reload(self, policy=None):
        if policy is not None:
            self.write_policy(policy)
        self.process.send_signal(signal.SIGHUP)

    def running(self):
        return self.process.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for t in self._threads:
            t.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._own_dir = False
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_check(policy_path, binary=None, timeout=30):
    """`portcullis --check -c FILE`: returns (exit code, stdout + stderr)."""
    result = subprocess.run([binary or portcullis_bin(), "--check", "-c", policy_path],
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    return result.returncode, output


def run_binary(*args, binary=None, timeout=30):
    """Runs portcullis with args: returns (exit code, stdout + stderr)."""
    result = subprocess.run([binary or portcullis_bin(), *args], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=timeout)
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    return result.returncode, output


def _json_or_none(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


class RefusedPort:
    """A loopback port that refuses connections: bound but not listening, held until close()."""

    def __init__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- client -------------------------------------------------------------------------------------

_VERSIONS = {
    "TLS1": ssl.TLSVersion.TLSv1, "TLS1.0": ssl.TLSVersion.TLSv1,
    "TLS1.1": ssl.TLSVersion.TLSv1_1, "TLS1.2": ssl.TLSVersion.TLSv1_2,
    "TLS1.3": ssl.TLSVersion.TLSv1_3,
}
_contexts = {}
_contexts_lock = threading.Lock()


def _tls_version(v):
    if v is None or isinstance(v, ssl.TLSVersion):
        return v
    return _VERSIONS[str(v).replace("v", "").replace("TLS1_", "TLS1.")]


def client_context(cafile=None, alpn=("http/1.1",), min_version=None, max_version=None,
                   ciphers=None, cert=None, key=None, verify=True, check_hostname=True):
    """An SSLContext for the given parameters. The same parameters give the same context object,
    so a session from one connection can be offered on the next (Python requires that)."""
    cafile = cafile or DEFAULT_CA
    min_version, max_version = _tls_version(min_version), _tls_version(max_version)
    key_ = (cafile, tuple(alpn or ()), min_version, max_version, ciphers, cert, key, verify,
            check_hostname)
    with _contexts_lock:
        ctx = _contexts.get(key_)
        if ctx is not None:
            return ctx
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            legacy = any(v is not None and v < ssl.TLSVersion.TLSv1_2
                         for v in (min_version, max_version))
            if min_version is not None:
                ctx.minimum_version = min_version
            if max_version is not None:
                ctx.maximum_version = max_version
            if ciphers:
                ctx.set_ciphers(ciphers + (":@SECLEVEL=0" if legacy else ""))
            elif legacy:
                # OpenSSL 3 only offers TLS 1.0/1.1 at security level 0.
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if verify:
            if cafile is None:
                raise ValueError("no CA: pass cafile or set harness.DEFAULT_CA")
            ctx.load_verify_locations(cafile)
            ctx.check_hostname = check_hostname
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        if cert:
            ctx.load_cert_chain(cert, key)
        _contexts[key_] = ctx
        return ctx


def tls_connect(port, server_name="localhost", cafile=None, alpn=("http/1.1",), min_version=None,
                max_version=None, ciphers=None, cert=None, key=None, session=None,
                host="127.0.0.1", verify=True, check_hostname=None, timeout=IO_TIMEOUT):
    """Connects to host:port and completes a TLS handshake, verifying the server against the test
    CA (and its name against server_name unless check_hostname=False). server_name=None sends no
    SNI. Raises ssl.SSLError / OSError when the handshake fails."""
    if check_hostname is None:
        check_hostname = server_name is not None
    ctx = client_context(cafile, alpn, min_version, max_version, ciphers, cert, key, verify,
                         check_hostname)
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        raw.settimeout(timeout)
        return ctx.wrap_socket(raw, server_hostname=server_name, session=session)
    except BaseException:
        raw.close()
        raise


def plain_connect(port, host="127.0.0.1", timeout=IO_TIMEOUT):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def peer_san(sock):
    """The peer certificate's subjectAltName as a list of (type, value), e.g. ('DNS','localhost').
    Works without verification too (parses the DER with openssl)."""
    cert = sock.getpeercert()
    if cert:
        return list(cert.get("subjectAltName", ()))
    der = sock.getpeercert(binary_form=True)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-ext",
                           "subjectAltName"], input=der, capture_output=True).stdout.decode()
    found = []
    for kind, value in re.findall(r"(DNS|IP Address):([^,\s]+)", text):
        found.append(("DNS" if kind == "DNS" else "IP Address", value))
    return found


def build_request(method, path, headers=None, body=None, host="localhost", version="HTTP/1.1"):
    """Request bytes. headers: dict or list of (name, value); Host is added unless given (pass
    host=None to send none); Content-Length is added for a body unless Content-Length or
    Transfer-Encoding is given."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {name.lower() for name, _ in items}
    if host is not None and "host" not in names:
        items.insert(0, ("Host", host))
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        if "content-length" not in names and "transfer-encoding" not in names:
            items.append(("Content-Length", str(len(body))))
    head = f"{method} {path} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in items) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def chunked(body, size=1000):
    """body encoded as chunks of at most `size` bytes, with the last chunk."""
    if isinstance(body, str):
        body = body.encode()
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size])
                   for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def send(sock, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    sock.sendall(data)


class Response:
    def __init__(self, version, status, reason, headers, body, raw_head, trailers=()):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head
        self.trailers = list(trailers)

    def header(self, name, default=None):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return default

    def headers_all(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def has_header(self, name):
        return any(key.lower() == name.lower() for key, _ in self.headers)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.reason} headers={self.headers} body={self.body[:200]!r}>"


# Bytes read past the end of one response wait here for the next read on the same socket.
_pending = weakref.WeakKeyDictionary()


def _buffer(sock):
    buf = _pending.get(sock)
    if buf is None:
        buf = bytearray()
        _pending[sock] = buf
    return buf


def _recv_more(sock, buf, deadline):
    """Reads into buf; False on a clean or abrupt close by the peer."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out reading the response")
    sock.settimeout(remaining)
    try:
        data = sock.recv(65536)
    except (socket.timeout, TimeoutError):
        raise TimeoutError("timed out reading the response")
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
        return False
    if not data:
        return False
    buf += data
    return True


def _read_line(sock, buf, deadline):
    while True:
        nl = buf.find(b"\r\n")
        if nl >= 0:
            line = bytes(buf[:nl])
            del buf[:nl + 2]
            return line
        if not _recv_more(sock, buf, deadline):
            raise ConnectionError("connection closed mid-line")


def _read_exact(sock, buf, n, deadline):
    while len(buf) < n:
        if not _recv_more(sock, buf, deadline):
            raise ConnectionError(f"connection closed after {len(buf)} of {n} body bytes")
    data = bytes(buf[:n])
    del buf[:n]
    return data


def read_response(sock, head_request=False, timeout=IO_TIMEOUT):
    """Reads the next response (an interim 1xx too) from sock. The body is framed by
    Content-Length, chunked encoding, or the connection closing."""
    deadline = time.monotonic() + timeout
    buf = _buffer(sock)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if not _recv_more(sock, buf, deadline):
            raise ConnectionError(f"connection closed before a complete response head "
                                  f"(got {bytes(buf)!r})")
    raw_head = bytes(buf[:end + 4])
    del buf[:end + 4]
    lines = raw_head[:-4].decode("latin-1").split("\r\n")
    match = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not match:
        raise ValueError(f"bad status line {lines[0]!r}")
    version, status, reason = match.group(1), int(match.group(2)), match.group(3) or ""
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers.append((name, value.strip(" \t")))
    response = Response(version, status, reason, headers, b"", raw_head)

    if head_request or status < 200 or status in (204, 304):
        return response
    te = response.header("Transfer-Encoding")
    cl = response.header("Content-Length")
    if te is not None and "chunked" in te.lower():
        body = bytearray()
        while True:
            size_line = _read_line(sock, buf, deadline)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:
                    trailer = _read_line(sock, buf, deadline)
                    if not trailer:
                        break
                    name, _, value = trailer.decode("latin-1").partition(":")
                    response.trailers.append((name, value.strip()))
                break
            body += _read_exact(sock, buf, size, deadline)
            if _read_line(sock, buf, deadline) != b"":
                raise ValueError("chunk data not followed by CRLF")
        response.body = bytes(body)
    elif cl is not None:
        response.body = _read_exact(sock, buf, int(cl), deadline)
    else:
        while _recv_more(sock, buf, deadline):
            pass
        response.body = bytes(buf)
        buf.clear()
    return response


def is_closed(sock, timeout=3.0):
    """True when the peer closes the connection (EOF or reset) within timeout. Data that arrives
    meanwhile is kept for read_response()."""
    deadline = time.monotonic() + timeout
    buf = _buffer(sock)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ssl.SSLError, ConnectionError, OSError):
            return True
        if not data:
            return True
        buf += data


def request(port, method, path, headers=None, body=None, host="localhost", read_timeout=IO_TIMEOUT,
            **tls):
    """Opens one TLS connection, sends one request, returns the final Response (1xx skipped).
    Extra keyword arguments go to tls_connect()."""
    sock = tls_connect(port, **tls)
    try:
        send(sock, build_request(method, path, headers, body, host=host))
        while True:
            response = read_response(sock, head_request=(method == "HEAD"), timeout=read_timeout)
            if response.status >= 200:
                return response
    finally:
        sock.close()


def plain_request(port, method, path, headers=None, body=None, host="localhost",
                  read_timeout=IO_TIMEOUT):
    """Like request() over plain TCP (redirect and admin listeners)."""
    sock = plain_connect(port)
    try:
        send(sock, build_request(method, path, headers, body, host=host))
        while True:
            response = read_response(sock, head_request=(method == "HEAD"), timeout=read_timeout)
            if response.status >= 200:
                return response
    finally:
        sock.close()


def assert_security_headers(response):
    """The configured response headers, the request id, and none of the removed headers."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers_all(name) == [value], f"{name} in {response!r}"
    request_id = response.header("X-Request-Id")
    assert request_id is not None and REQUEST_ID.match(request_id), response
    assert len(response.headers_all("X-Request-Id")) == 1, response
    for name in ("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version"):
        assert not response.has_header(name), f"{name} in {response!r}"


def assert_gateway_error(response, status, error=None):
    """A gateway error: the status, a small JSON body {"error":..., "request_id":...} whose
    request_id is the X-Request-Id header, the security headers, and nothing leaked.
    Returns the parsed body."""
    assert response.status == status, response
    assert (response.header("Content-Type") or "").lower().startswith("application/json"), response
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "request_id"}, body
    assert isinstance(body["error"], str) and body["error"], body
    if error is not None:
        assert body["error"] == error, body
    assert REQUEST_ID.match(body["request_id"]), body
    assert response.header("X-Request-Id") == body["request_id"], response
    assert_security_headers(response)
    for marker in LEAK_MARKERS:
        assert marker.lower() not in response.body.lower(), f"{marker!r} leaked: {response!r}"
    return body


def handshake_fails(port, **kwargs):
    """True when the TLS handshake (or the first exchange, where TLS 1.3 reports a refused client
    certificate) is refused by the server."""
    try:
        sock = tls_connect(port, **kwargs)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        send(sock, build_request("GET", "/", headers=[("Connection", "close")]))
        read_response(sock, timeout=5)
        return False
    except (ssl.SSLError, ConnectionError, OSError, ValueError):
        return True
    finally:
        sock.close()

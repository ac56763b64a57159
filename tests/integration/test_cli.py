"""The command line: --check, --version, and stopping with SIGTERM."""

import os
import re
import shutil
import signal
import socket
import threading

from harness import base_policy, request, run_binary, run_check, to_yaml, wait_until

ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def write(directory, name, text):
    path = directory / name
    path.write_text(text)
    return str(path)


def error_lines(output):
    return [m for m in (ERROR_LINE.match(line.strip()) for line in output.splitlines()) if m]


def output_lines(output):
    return [line.strip() for line in output.splitlines() if line.strip()]


def test_check_good_policy(certs, tmp_path):
    path = write(tmp_path, "good.yaml", to_yaml(base_policy(certs, "127.0.0.1:9")))
    code, output = run_check(path)
    assert code == 0, output
    assert "OK" in output_lines(output), output
    assert error_lines(output) == []


def test_check_warns_when_state_lives_in_this_process_only(certs, tmp_path):
    """An empty state.memory.path is a warning on stderr: the policy is still OK."""
    import subprocess

    from harness import portcullis_bin

    def check(policy, name):
        path = write(tmp_path, name, to_yaml(policy))
        return subprocess.run([portcullis_bin(), "--check", "-c", path], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=30, text=True)

    result = check(base_policy(certs, "127.0.0.1:9"), "in_process.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in output_lines(result.stdout), result.stdout
    warnings = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert warnings == [str(tmp_path / "in_process.yaml") + ": warning: state.memory.path is "
                        "empty: revocations and bans live in this process only"], result.stderr

    (tmp_path / "state").mkdir()
    result = check(base_policy(certs, "127.0.0.1:9", state={"memory": {"path": "state/gw.db"}}),
                   "durable.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in output_lines(result.stdout), result.stdout
    assert "warning:" not in result.stderr, result.stderr


BAD_POLICY = """\
version: 1
server:
  workers: 1
  listen:
    - address: "127.0.0.1:0"
      tls:
        certificates:
          - {{ cert: "{cert}", key: "{key}" }}
  admin:
    address: "127.0.0.1:0"
  limits:
    header_timeot: 2s
    idle_timeout: 2 parsecs
upstreams:
  core:
    endpoints: ["127.0.0.1:9"]
routes:
  - name: api
    match: {{ path_prefix: / }}
    upstream: core
"""


def test_check_reports_every_error_with_position(certs, tmp_path):
    path = write(tmp_path, "bad.yaml",
                 BAD_POLICY.format(cert=certs.server_cert, key=certs.server_key))
    code, output = run_check(path)
    assert code == 1, output
    errors = error_lines(output)
    assert len(errors) == 2, output
    assert "OK" not in output_lines(output)
    for e in errors:
        assert e["file"] == path or e["file"].endswith("bad.yaml"), output
    by_line = {int(e["line"]): e for e in errors}
    assert set(by_line) == {12, 13}, output
    assert int(by_line[12]["col"]) == 5 and "header_timeot" in by_line[12]["message"], output
    assert int(by_line[13]["col"]) in (5, 19), output


def test_check_reports_yaml_syntax_error(tmp_path):
    path = write(tmp_path, "broken.yaml", "version: 1\nserver:\n  workers: [1,\n")
    code, output = run_check(path)
    assert code == 1, output
    assert error_lines(output), output


def test_check_loads_the_files_it_names(certs, tmp_path):
    policy = base_policy(certs, "127.0.0.1:9")
    policy["server"]["listen"][0]["tls"]["certificates"][0]["cert"] = str(tmp_path / "missing.crt")
    text = to_yaml(policy)
    path = write(tmp_path, "missing.yaml", text)
    code, output = run_check(path)
    assert code == 1, output
    # reported where the policy names the file
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "missing.crt" in l)
    errors = error_lines(output)
    assert errors and all(int(e["line"]) == line for e in errors), output
    assert all(e["file"] == path for e in errors), output


def test_relative_paths_resolve_against_the_policy_folder(certs, tmp_path):
    (tmp_path / "tls").mkdir()
    shutil.copy(certs.server_cert, tmp_path / "tls" / "server.crt")
    shutil.copy(certs.server_key, tmp_path / "tls" / "server.key")
    policy = base_policy(certs, "127.0.0.1:9")
    policy["server"]["listen"][0]["tls"]["certificates"] = [
        {"cert": "tls/server.crt", "key": "tls/server.key"}]
    path = write(tmp_path, "relative.yaml", to_yaml(policy))
    assert os.getcwd() != str(tmp_path)
    code, output = run_check(path)
    assert code == 0, output


def test_version_names_openssl_and_boost():
    code, output = run_binary("--version")
    assert code == 0, output
    assert "OpenSSL" in output and "Boost" in output, output
    assert re.search(r"\d+\.\d+\.\d+", output), output


# ---- SIGTERM ------------------------------------------------------------------------------------


def test_sigterm_exits_zero(gateway):
    assert request(gateway.tls_port, "GET", "/").status == 200
    assert gateway.stop() == 0


def test_sigterm_finishes_in_flight_request_and_stops_accepting(gateway, upstream):
    result = {}

    def slow_request():
        try:
            result["response"] = request(gateway.tls_port, "GET", "/delay/3000")
        except Exception as e:  # reported below
            result["error"] = e

    client = threading.Thread(target=slow_request)
    client.start()
    upstream.wait_for_requests(1, predicate=lambda r: r.path == "/delay/3000")
    gateway.process.send_signal(signal.SIGTERM)

    def refuses_new_connections():
        try:
            socket.create_connection(("127.0.0.1", gateway.tls_port), timeout=1).close()
            return False
        except OSError:
            return True

    wait_until(refuses_new_connections, timeout=2.5, message="listener closed after SIGTERM")
    client.join(15)
    assert "error" not in result, result.get("error")
    assert result["response"].status == 200
    assert gateway.process.wait(timeout=10) == 0


def test_logging_level_filters_operational_events(certs, upstream, tmp_path):
    """logging.level: error keeps info events (listening, ready) off stderr, and the gateway
    still serves."""
    import subprocess
    import time

    from harness import portcullis_bin

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = base_policy(certs, upstream, logging={"level": "error"})
    policy["server"]["listen"][0]["address"] = f"127.0.0.1:{port}"
    path = write(tmp_path, "quiet.yaml", to_yaml(policy))
    process = subprocess.Popen([portcullis_bin(), "-c", path], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        response = None
        while time.monotonic() < deadline and response is None:
            try:
                response = request(port, "GET", "/")
            except OSError:
                time.sleep(0.05)
        assert response is not None and response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    events = [line for line in stderr.decode().splitlines() if '"event"' in line]
    assert not any('"listening"' in line or '"ready"' in line for line in events), events

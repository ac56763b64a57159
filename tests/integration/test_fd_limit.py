"""The file descriptor limit: at start the gateway raises its soft RLIMIT_NOFILE to the hard
limit, and warns (at start and in --check) when even that is below what
server.limits.max_connections may need: about two descriptors per connection plus a margin."""

import os
import re
import stat

import pytest

import harness
from harness import base_policy, request, to_yaml

PRLIMIT = "/usr/bin/prlimit"
SETPRIV = "/usr/bin/setpriv"
pytestmark = pytest.mark.skipif(not (os.path.exists(PRLIMIT) and os.path.exists(SETPRIV)),
                                reason="prlimit and setpriv (util-linux) missing")


def limited_binary(tmp_path, soft, hard, privileged=False):
    """A wrapper that starts portcullis under RLIMIT_NOFILE soft:hard, without the privilege to
    raise its hard limit (CAP_SYS_RESOURCE dropped, as for an unprivileged user) unless
    `privileged`."""
    wrapper = tmp_path / "portcullis-limited"
    drop = "" if privileged else f"{SETPRIV} --bounding-set -sys_resource --inh-caps -sys_resource "
    wrapper.write_text(f'#!/bin/sh\nexec {drop}{PRLIMIT} --nofile={soft}:{hard} '
                       f'"{harness.portcullis_bin()}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def open_files_limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line")


def fd_warnings(gw):
    """The gateway's warnings about its file descriptor limit."""
    return [e["message"] for e in gw.stderr_events()
            if e.get("event") == "warning" and "RLIMIT_NOFILE" in e["message"]]


def policy(certs, upstream, max_connections):
    return base_policy(certs, upstream, server={
        "workers": 1, "limits": {"max_connections": max_connections,
                                 "max_connections_per_ip": min(256, max_connections)}})


def test_too_low_a_limit_is_named_with_what_is_needed(tmp_path, certs, upstream):
    gw = harness.Gateway(policy(certs, upstream, 10000), binary=limited_binary(tmp_path, 256, 256))
    try:
        assert open_files_limits(gw.process.pid) == (256, 256)
        [warning] = fd_warnings(gw)
        # 2 x 10000 + 1 worker x (1 listener + admin + 4) + 64
        assert "is 256," in warning and "20070" in warning, warning
        assert "max_connections 10000" in warning
        assert request(gw.tls_port, "GET", "/x").status == 200  # and it serves all the same
    finally:
        gw.stop()


def test_soft_limit_is_raised_to_the_hard_limit(tmp_path, certs, upstream):
    gw = harness.Gateway(policy(certs, upstream, 1000), binary=limited_binary(tmp_path, 256, 4096))
    try:
        assert open_files_limits(gw.process.pid) == (4096, 4096)
        assert not fd_warnings(gw)
    finally:
        gw.stop()


def may_raise_hard_limits():
    """CAP_SYS_RESOURCE (bit 24) in this process's effective set: what the gateway needs to raise
    its hard limit (root in a container may lack it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


@pytest.mark.skipif(not may_raise_hard_limits(), reason="raising a hard limit needs CAP_SYS_RESOURCE")
def test_a_privileged_gateway_raises_its_hard_limit_to_what_it_needs(tmp_path, certs, upstream):
    gw = harness.Gateway(policy(certs, upstream, 10000),
                         binary=limited_binary(tmp_path, 256, 256, privileged=True))
    try:
        # 2 x 10000 + 1 worker x (1 listener + admin + 4) + 64
        assert open_files_limits(gw.process.pid) == (20070, 20070)
        assert not fd_warnings(gw)
    finally:
        gw.stop()


def test_raised_soft_limit_still_short_names_the_hard_limit(tmp_path, certs, upstream):
    gw = harness.Gateway(policy(certs, upstream, 10000), binary=limited_binary(tmp_path, 256, 1024))
    try:
        assert open_files_limits(gw.process.pid) == (1024, 1024)
        [warning] = fd_warnings(gw)
        assert "is 1024," in warning and "20070" in warning, warning
    finally:
        gw.stop()


def test_a_reload_that_raises_max_connections_past_the_limit_warns(tmp_path, certs, upstream):
    gw = harness.Gateway(policy(certs, upstream, 1000), binary=limited_binary(tmp_path, 4096, 4096))
    try:
        assert not fd_warnings(gw)
        gw.reload(policy(certs, upstream, 10000))
        harness.wait_until(lambda: fd_warnings(gw),
                           message="no descriptor warning after the reload")
        [warning] = fd_warnings(gw)
        assert "is 4096," in warning and "20070" in warning, warning
        assert gw.process.poll() is None
    finally:
        gw.stop()


def test_check_prints_the_warning_and_still_passes(tmp_path, certs, upstream):
    path = tmp_path / "policy.yaml"
    path.write_text(to_yaml(policy(certs, upstream, 10000)))
    code, output = harness.run_check(str(path), binary=limited_binary(tmp_path, 256, 256))
    assert code == 0, output
    assert "OK" in output.splitlines(), output
    assert re.search(r"warning: the file descriptor limit \(RLIMIT_NOFILE\) is 256, below the "
                     r"20070 that server\.limits\.max_connections 10000 may need", output), output


def test_check_is_quiet_when_the_limit_suffices(tmp_path, certs, upstream):
    path = tmp_path / "policy.yaml"
    path.write_text(to_yaml(policy(certs, upstream, 100)))
    code, output = harness.run_check(str(path), binary=limited_binary(tmp_path, 1024, 1024))
    assert code == 0, output
    assert "RLIMIT_NOFILE" not in output

"""Fixtures for the integration tests: the test PKI, demo upstreams and gateways, each started for
the test that asks and stopped after it."""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def certs():
    directory = tempfile.mkdtemp(prefix="portcullis-certs-")
    try:
        pki = harness.make_certs(directory)
        harness.DEFAULT_CA = pki.ca
        yield pki
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def upstream_factory(certs):
    """start(name=..., threads=..., tls=False|True, tls_cert=..., tls_key=...) -> Upstream;
    every upstream started is stopped after the test."""
    started = []

    def start(name="upstream", tls=False, **kwargs):
        if tls:
            kwargs.setdefault("tls_cert", certs.upstream_cert)
            kwargs.setdefault("tls_key", certs.upstream_key)
        u = harness.Upstream(name=name, **kwargs)
        started.append(u)
        return u

    yield start
    for u in started:
        u.stop()


@pytest.fixture
def upstream(upstream_factory):
    return upstream_factory(name="core")


@pytest.fixture
def gateway_factory(certs):
    """start(policy) -> Gateway; every gateway started is stopped after the test."""
    started = []

    def start(policy, **kwargs):
        g = harness.Gateway(policy, **kwargs)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


@pytest.fixture
def gateway(gateway_factory, certs, upstream):
    """The base policy in front of the `upstream` fixture."""
    return gateway_factory(harness.base_policy(certs, upstream))


@pytest.fixture
def refused_port():
    with harness.RefusedPort() as port:
        yield port

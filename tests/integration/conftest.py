"""Fixtures for the integration tests: the test PKI, demo upstreams and gateways, each started for
the test that asks and stopped after it."""

import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

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


@pytest.fixture(scope="module")
def core():
    """A demo upstream named core, shared by the tests of one module."""
    upstream = harness.Upstream(name="core")
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def jwt_keys():
    """An ES256 signing key (kid es-1) and its JWKS file, shared by the tests of one module."""
    from test_jwt import keygen
    directory = tempfile.mkdtemp(prefix="portcullis-jwt-keys-")
    keys = SimpleNamespace(key=os.path.join(directory, "es-1.pem"),
                           jwks=os.path.join(directory, "jwks.json"))
    keygen("ES256", "es-1", keys.key, keys.jwks)
    yield keys
    shutil.rmtree(directory, ignore_errors=True)

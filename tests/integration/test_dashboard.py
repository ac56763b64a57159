"""The Grafana dashboard (conf/grafana/portcullis-dashboard.json) queries only metrics that the
gateway exposes: every metric name in its expressions appears in /metrics."""

import json
import os
import re

from harness import Gateway, base_policy, plain_request, request

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "grafana",
                         "portcullis-dashboard.json")


def queried_metrics():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    names = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\bportcullis_[a-z0-9_]+", target["expr"]):
                names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def test_every_metric_the_dashboard_queries_is_exposed(certs, upstream):
    policy = base_policy(certs, upstream)
    policy["rate_limits"] = {"per_ip": {"key": "client_ip", "rate": 100, "per": "1s", "burst": 100}}
    policy["routes"][0]["rate_limit"] = ["per_ip"]
    with Gateway(policy) as gw:
        assert request(gw.tls_port, "GET", "/").status == 200
        text = plain_request(gw.admin_port, "GET", "/metrics").body.decode()
    exposed = set(re.findall(r"^# TYPE (portcullis_[a-z0-9_]+) ", text, re.M))
    queried = queried_metrics()
    assert len(queried) >= 20
    missing = sorted(queried - exposed)
    assert not missing, f"queried by the dashboard but not exposed: {missing}"

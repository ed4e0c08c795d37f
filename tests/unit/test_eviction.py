"""Node-pressure eviction ranking (orchestrator/eviction.py), table-driven."""

from __future__ import annotations

import pytest

from orchestrator.eviction import Candidate, choose, message

MI = 2**20


def c(name, qos, usage_mi, request_mi=0, daemon=False):
    return Candidate(f"uid-{name}", f"default/{name}", qos, request_mi * MI, usage_mi * MI, daemon)


PODS = [
    c("be-small", "BestEffort", 10),
    c("be-big", "BestEffort", 300),
    c("bu-within", "Burstable", 100, request_mi=200),
    c("bu-over", "Burstable", 500, request_mi=100),
    c("bu-way-over", "Burstable", 900, request_mi=100),
    c("gu", "Guaranteed", 2000, request_mi=2000),
    c("ds", "BestEffort", 5000, daemon=True),
]


@pytest.mark.parametrize("available_mi, threshold_mi, expected", [
    (200, 100, []),  # no pressure
    (100, 100, []),  # exactly at the threshold: none
    (90, 100, ["be-big"]),  # 10 Mi short: the biggest BestEffort covers it
    (-200, 100, ["be-big"]),  # 300 short: be-big alone frees 300
    (-210, 100, ["be-big", "be-small"]),  # 310 short: both BestEffort pods
    (-300, 100, ["be-big", "be-small", "bu-way-over"]),  # then Burstable, most over its request first
    (-5000, 100, ["be-big", "be-small", "bu-way-over", "bu-over"]),  # never Guaranteed, within-request or DS
])
def test_choose(available_mi, threshold_mi, expected):
    got = choose(available_mi * MI, threshold_mi * MI, PODS)
    assert [p.key.split("/")[1] for p in got] == expected


def test_message_is_kubelets():
    assert message(50 * MI, 100 * MI) == ("The node was low on resource: memory. Threshold quantity: 100Mi, "
                                          "available: 50Mi.")

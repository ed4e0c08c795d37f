"""The VXLAN mode of the pod network (podnet.py, config.yaml `network.mode: vxlan`):
pod traffic between hosts goes through each host's podctl.vx device, a no-op reconcile
stays one, and switching back to host-gw restores plain routes and removes the device.
Only lab addresses and pod IPs."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from orchestrator.podnet import NET_VERB, ROUTE_PROTO, VXLAN_DEV, VXLAN_OVERHEAD, vtep_mac

pytestmark = pytest.mark.e2e

PODS = textwrap.dedent("""
    apiVersion: v1
    kind: Pod
    metadata: {name: vxweb}
    spec:
      nodeName: node1
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: [sh, -c, 'mkdir /www; echo served-over-vxlan > /www/index.html; exec httpd -f -p 8080 -h /www']
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: vxclient}
    spec:
      nodeName: node2
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [sleep, '3600']
""")


def wait_running(podctl, *names: str, timeout: float = 30.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        objs = {n: json.loads(podctl("get", "pods", n, "-o", "json").stdout) for n in names}
        if all(o["status"]["phase"] == "Running" and o["status"].get("podIP") for o in objs.values()):
            return objs
        assert time.monotonic() < deadline, json.dumps({n: o["status"] for n, o in objs.items()}, indent=1)
        time.sleep(0.3)


def in_pod(podctl, name: str, script: str):
    return podctl("exec", name, "--", "sh", "-c", script)


def network_syncs(report: dict) -> list[str]:
    return sorted(a["host"] for a in report["plan"] if a["verb"] == NET_VERB)


def counters(lab, host: str) -> tuple[int, int]:
    out = lab.ssh(host, f"cat /sys/class/net/{VXLAN_DEV}/statistics/tx_packets "
                        f"/sys/class/net/{VXLAN_DEV}/statistics/rx_packets", check=True).stdout.split()
    return int(out[0]), int(out[1])


def routes(lab, host: str) -> list[str]:
    return lab.ssh(host, f"ip -4 route show proto {ROUTE_PROTO}", check=True).stdout.strip().splitlines()


def has_device(lab, host: str) -> bool:
    return lab.ssh(host, f"test -e /sys/class/net/{VXLAN_DEV}").returncode == 0


def test_pods_reach_each_other_over_vxlan_and_back_to_host_gw(lab, podctl):
    settings = lab.home / "config.yaml"
    saved = settings.read_text() if settings.exists() else None
    try:
        settings.write_text((saved or "") + "\nnetwork: {mode: vxlan, vxlanPort: 8472, vni: 42}\n")
        podctl("apply", "-f", "-", input=PODS)
        objs = wait_running(podctl, "vxweb", "vxclient")
        web_ip = objs["vxweb"]["status"]["podIP"]

        # Each host has the device (its MAC from its node IP, the underlay's MTU less 50), and
        # every podctl route goes through it, onlink to the peer's VTEP address.
        for host in ("node1", "node2"):
            link = lab.ssh(host, f"ip -d -o link show dev {VXLAN_DEV}", check=True).stdout
            assert "vxlan id 42 " in link and "dstport 8472 " in link and "nolearning" in link, link
            assert f"local {lab.address(host)} " in link and vtep_mac(lab.address(host)) in link
            assert routes(lab, host) and all(f"dev {VXLAN_DEV} " in r and " onlink" in r for r in routes(lab, host))
        underlay = lab.ssh("node1", f"ip -o -4 addr show to {lab.address('node1')}/32", check=True).stdout.split()[1]
        mtu = int(lab.ssh("node1", f"cat /sys/class/net/{underlay}/mtu", check=True).stdout)
        assert int(lab.ssh("node1", f"cat /sys/class/net/{VXLAN_DEV}/mtu", check=True).stdout) == mtu - VXLAN_OVERHEAD
        # Pods created in VXLAN mode get an eth0 that fits in the tunnel.
        assert in_pod(podctl, "vxclient", "cat /sys/class/net/eth0/mtu").stdout.strip() == str(mtu - VXLAN_OVERHEAD)
        neigh = lab.ssh("node2", f"ip neigh show dev {VXLAN_DEV}", check=True).stdout
        assert f"lladdr {vtep_mac(lab.address('node1'))} PERMANENT" in neigh
        fdb = lab.ssh("node2", f"bridge fdb show dev {VXLAN_DEV}", check=True).stdout
        assert f"{vtep_mac(lab.address('node1'))} dst {lab.address('node1')}" in fdb

        # A pod on node2 reaches a pod on node1 by IP, and the packets went through the tunnel.
        before = {h: counters(lab, h) for h in ("node1", "node2")}
        out = in_pod(podctl, "vxclient", f"wget -q -O - http://{web_ip}:8080/index.html").stdout
        assert out.strip() == "served-over-vxlan"
        after = {h: counters(lab, h) for h in ("node1", "node2")}
        for h in ("node1", "node2"):
            assert after[h][0] > before[h][0] and after[h][1] > before[h][1], (h, before, after)

        assert "Mode:       vxlan (podctl.vx, VNI 42, UDP port 8472)" in podctl("describe", "host", "node1").stdout

        # Converged: no network block.
        assert network_syncs(json.loads(podctl("reconcile", "--json").stdout)) == []

        # A stale peer's entries go: a made-up peer's route, neighbour and fdb entry on node1.
        lab.ssh("node1", f"ip route replace 10.244.250.0/24 via 10.244.250.0 dev {VXLAN_DEV} onlink "
                         f"proto {ROUTE_PROTO}; ip neigh replace 10.244.250.0 lladdr 0e:ec:0a:d5:00:fa dev "
                         f"{VXLAN_DEV} nud permanent; bridge fdb append 0e:ec:0a:d5:00:fa dev {VXLAN_DEV} "
                         f"dst 10.213.0.250; rm /run/podctl/net.digest", check=True)
        assert network_syncs(json.loads(podctl("reconcile", "--json").stdout)) == ["node1"]
        assert not [r for r in routes(lab, "node1") if r.startswith("10.244.250.")]
        assert "10.244.250.0" not in lab.ssh("node1", f"ip neigh show dev {VXLAN_DEV}", check=True).stdout
        assert "0e:ec:0a:d5:00:fa" not in lab.ssh("node1", f"bridge fdb show dev {VXLAN_DEV}", check=True).stdout

        # Back to host-gw: the device goes, plain routes via the node IPs come back.
        settings.write_text(saved or "")
        report = json.loads(podctl("reconcile", "--json").stdout)
        assert {"node1", "node2"} <= set(network_syncs(report))
        for host in ("node1", "node2"):
            assert not has_device(lab, host)
            assert routes(lab, host) and not [r for r in routes(lab, host) if VXLAN_DEV in r or "onlink" in r]
        assert f"via {lab.address('node1')} " in lab.ssh("node2", "ip -4 route show 10.244.1.0/24", check=True).stdout
        out = in_pod(podctl, "vxclient", f"wget -q -O - http://{web_ip}:8080/index.html").stdout
        assert out.strip() == "served-over-vxlan"
    finally:
        if saved is None:
            settings.unlink(missing_ok=True)
        else:
            settings.write_text(saved)
        for name in ("vxweb", "vxclient"):
            podctl("delete", "pod", name, check=False)
        podctl("reconcile", check=False)  # host-gw again on every host, whatever failed above

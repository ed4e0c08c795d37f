"""The pod network across hosts (podnet.py): host-gw routes, masquerade, hostPort, and
routes following hosts in and out of the inventory. Only lab addresses and pod IPs."""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
import threading
import time
import urllib.request

import pytest
import yaml

from orchestrator.podnet import NET_VERB, ROUTE_PROTO

pytestmark = pytest.mark.e2e

ROOT_SIDE = "10.213.0.1"  # the lab bridge's address in this machine's network namespace
HOST_PORT = 18080
# (busybox-static's `wget -T` segfaults: no -T below; podctl exec has its own timeout)

PODS = textwrap.dedent(f"""
    apiVersion: v1
    kind: Pod
    metadata: {{name: netweb}}
    spec:
      nodeName: node1
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: [sh, -c, 'mkdir /www; echo served-by-netweb > /www/index.html; exec httpd -f -p 8080 -h /www']
        ports: [{{containerPort: 8080, hostPort: {HOST_PORT}}}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {{name: netclient}}
    spec:
      nodeName: node2
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [sleep, '3600']
""")


def pod(podctl, name: str) -> dict:
    return json.loads(podctl("get", "pods", name, "-o", "json").stdout)


def wait_running(podctl, *names: str, timeout: float = 30.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        objs = {n: pod(podctl, n) for n in names}
        if all(o["status"]["phase"] == "Running" and o["status"].get("podIP") for o in objs.values()):
            return objs
        if time.monotonic() > deadline:
            raise AssertionError(json.dumps({n: o["status"] for n, o in objs.items()}, indent=1))
        time.sleep(0.3)


def in_pod(podctl, name: str, script: str, check: bool = True):
    return podctl("exec", name, "--", "sh", "-c", script, check=check)


def podctl_routes(lab, host: str) -> set[str]:
    out = lab.ssh(host, f"ip -4 route show proto {ROUTE_PROTO}", check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def network_syncs(report: dict) -> list[str]:
    return sorted(a["host"] for a in report["plan"] if a["verb"] == NET_VERB)


class Listener:
    """A TCP server in this machine's network namespace, bound to the lab bridge's
    address only, that answers one line and remembers each peer's address."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((ROOT_SIDE, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            with conn:
                self.peers.append(peer[0])
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_pod_network_across_hosts(lab, podctl, tmp_path):
    listener = Listener()
    try:
        podctl("apply", "-f", "-", input=PODS)
        objs = wait_running(podctl, "netweb", "netclient")
        web_ip = objs["netweb"]["status"]["podIP"]
        assert objs["netweb"]["spec"]["nodeName"] == "node1" and objs["netclient"]["spec"]["nodeName"] == "node2"

        # Every host routes the others' pod CIDRs via their node IPs, marked as podctl's.
        inv = yaml.safe_load(lab.inventory.read_text())
        cidrs = {name: h["pod_cidr"] for name, h in inv["all"]["hosts"].items()}
        leaving = max(cidrs, key=lambda n: int(n[4:]))  # the lab's last host
        assert leaving not in ("node1", "node2")
        others = {name: set(cidrs.values()) - {cidr} for name, cidr in cidrs.items()}
        assert podctl_routes(lab, "node1") == others["node1"]
        route = lab.ssh("node2", "ip -4 route show 10.244.1.0/24", check=True).stdout
        assert "via 10.213.0.11" in route and f"proto {ROUTE_PROTO}" in route

        # A pod on node2 reaches a pod on node1 by its IP.
        out = in_pod(podctl, "netclient", f"wget -q -O - http://{web_ip}:8080/index.html").stdout
        assert out.strip() == "served-by-netweb"

        # Masquerade: outside the pod network, the peer sees node2's address, not the pod's.
        out = in_pod(podctl, "netclient", f"wget -q -O - http://{ROOT_SIDE}:{listener.port}/").stdout
        assert out.strip() == "hello"
        assert listener.peers == [lab.address("node2")]

        # hostPort: node1's address forwards to the pod, from outside and from node1 itself.
        url = f"http://{lab.address('node1')}:{HOST_PORT}/index.html"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.read().decode().strip() == "served-by-netweb"
        r = lab.ssh("node1", f"busybox wget -q -O - {url}", check=True)
        assert r.stdout.strip() == "served-by-netweb"

        # A second pod asking for the same hostPort on node1 is not scheduled there.
        r = podctl("apply", "-f", "-", input=PODS.split("---")[0].replace("netweb", "netweb2"), check=False)
        assert r.returncode == 1 and "didn't have free ports for the requested pod ports" in r.stdout + r.stderr
        assert pod(podctl, "netweb2")["status"]["phase"] == "Pending"
        podctl("delete", "pod", "netweb2")

        # The host table and `describe host` show node IPs, pod CIDRs and the network.
        table = podctl("get", "hosts", "-o", "wide").stdout.splitlines()
        assert table[0].split()[-2:] == ["POD-CIDR", "NODE-IP"]
        assert table[1].split()[-2:] == [cidrs["node1"], lab.address("node1")]
        described = podctl("describe", "host", "node1").stdout
        assert f"Node IP:      {lab.address('node1')}" in described and "(applied)" in described
        assert f"Route:      {cidrs['node2']} via {lab.address('node2')} (node2)" in described
        assert f"HostPort:   {HOST_PORT}/TCP -> {web_ip}:8080 (default/netweb)" in described

        # A converged cluster gets no network block.
        again = json.loads(podctl("reconcile", "--json").stdout)
        assert network_syncs(again) == []

        # The last host leaves the inventory: the others drop the route to its pods, and only that.
        del inv["all"]["hosts"][leaving]
        smaller = tmp_path / "inventory.yaml"
        smaller.write_text(yaml.safe_dump(inv))
        report = json.loads(podctl("-i", str(smaller), "reconcile", "--json").stdout)
        assert network_syncs(report) == sorted(set(cidrs) - {leaving})
        assert podctl_routes(lab, "node1") == others["node1"] - {cidrs[leaving]}
        assert podctl_routes(lab, "node2") == others["node2"] - {cidrs[leaving]}
        # It comes back.
        report = json.loads(podctl("reconcile", "--json").stdout)
        assert network_syncs(report) == sorted(set(cidrs) - {leaving})
        assert podctl_routes(lab, "node1") == others["node1"]

        # A reboot loses routes, rules and the applied digest (/run): the next run restores them.
        lab.ssh("node2", f"ip route flush proto {ROUTE_PROTO}; nft delete table ip podctl; "
                         "rm /run/podctl/net.digest", check=True)
        report = json.loads(podctl("reconcile", "--json").stdout)
        assert network_syncs(report) == ["node2"]
        assert podctl_routes(lab, "node2") == others["node2"]
        out = in_pod(podctl, "netclient", f"wget -q -O - http://{web_ip}:8080/index.html").stdout
        assert out.strip() == "served-by-netweb"

        # The pod's deletion takes its hostPort rule away.
        podctl("delete", "pod", "netweb")
        rules = lab.ssh("node1", "nft list table ip podctl", check=True).stdout
        assert f"dport {HOST_PORT}" not in rules and "masquerade" in rules
    finally:
        listener.close()
        for name in ("netweb", "netweb2", "netclient"):
            podctl("delete", "pod", name, check=False)
    # Nothing of the pod network reached this machine's own network namespace.
    assert subprocess.run(["ip", "-4", "route", "show", "proto", str(ROUTE_PROTO)], capture_output=True,
                          text=True, check=True).stdout == ""
    assert subprocess.run(["nft", "list", "table", "ip", "podctl"], capture_output=True).returncode != 0

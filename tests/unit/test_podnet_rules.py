"""The pod network's desired state (podnet.py): routes, masquerade, hostPorts, digest,
when a host gets a network block, and the inventory's podctl_node_ip."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from orchestrator import podnet
from orchestrator.errors import InventoryError
from orchestrator.inventory import parse_inventory
from orchestrator.model import Container, ContainerPort, Host, ObjectMeta, Pod, PodSpec
from orchestrator.plan import Action, Plan
from orchestrator.podnet import PortBinding, Route
from orchestrator.probe import HostSnapshot
from orchestrator.runtime import batch_script

CIDRS = {"a": "10.244.1.0/24", "b": "10.244.2.0/24", "c": "10.244.3.0/24"}


def hosts(**addresses) -> list[Host]:
    return [Host(name, addr) for name, addr in addresses.items()]


def nets(hs, bindings=None, cidrs=CIDRS):
    return podnet.desired_networks(hs, cidrs, bindings or {})


def test_each_host_routes_every_other_hosts_pod_cidr_via_its_node_ip():
    got, notes = nets(hosts(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3"))
    assert notes == []
    assert got["a"].routes == (Route("10.244.2.0/24", "10.0.0.2", "b"), Route("10.244.3.0/24", "10.0.0.3", "c"))
    assert got["b"].routes == (Route("10.244.1.0/24", "10.0.0.1", "a"), Route("10.244.3.0/24", "10.0.0.3", "c"))
    assert (got["a"].gateway, got["a"].prefix) == ("10.244.1.1", 24)


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"),  # Vagrant's ssh-config: a port forward
    ("node1.example.net", "not an IPv4 address"),
    ("0.0.0.0", "not a unicast"),
    ("10.244.9.9", "inside the cluster's pod network"),
])
def test_a_host_without_a_usable_node_ip_gets_no_route_and_a_note(address, why):
    got, notes = nets(hosts(a="10.0.0.1", b=address))
    assert got["a"].routes == ()  # never a route to a wrong address
    assert got["b"].routes == (Route("10.244.1.0/24", "10.0.0.1", "a"),)  # it still reaches the others
    assert len(notes) == 1 and notes[0].startswith("host b: no route to its pods") and why in notes[0]
    assert "podctl_node_ip" in notes[0]


def test_podctl_node_ip_wins_over_the_inventory_address():
    hs = [Host("a", "127.0.0.1", port=2222, node_ip="192.168.56.11"),
          Host("b", "127.0.0.1", port=2200, node_ip="192.168.56.12")]
    got, notes = nets(hs)
    assert notes == []
    assert got["a"].routes == (Route("10.244.2.0/24", "192.168.56.12", "b"),)


def test_hosts_sharing_one_derived_address_get_no_route():
    # Two hosts NATed behind one address (different ssh ports): routing there is wrong.
    hs = [Host("a", "198.51.100.1", port=2201), Host("b", "198.51.100.1", port=2202), Host("c", "10.0.0.3")]
    got, notes = nets(hs)
    assert got["c"].routes == ()
    assert [n.split(":")[0] for n in notes] == ["host a", "host b"]


def test_hosts_without_a_pod_cidr_get_no_network_and_no_route():
    got, _ = nets(hosts(a="10.0.0.1", b="10.0.0.2"), cidrs={"a": "10.244.1.0/24", "b": None})
    assert set(got) == {"a"} and got["a"].routes == ()


def test_pod_cidrs_outside_the_cluster_cidr_are_not_masqueraded_either():
    got, _ = nets(hosts(a="10.0.0.1", b="10.0.0.2"), cidrs={"a": "10.244.1.0/24", "b": "10.250.0.0/24"})
    assert got["a"].cluster_nets == ("10.244.0.0/16", "10.250.0.0/24")
    assert "ip daddr != { 10.244.0.0/16, 10.250.0.0/24 } masquerade" in podnet.nft_ruleset(got["a"])


def pod(name: str, *ports: tuple[int, int | None, str]) -> Pod:
    cports = tuple(ContainerPort(cp, proto, host_port=hp) for cp, hp, proto in ports)
    return Pod(ObjectMeta(name), PodSpec(containers=(Container("c", "busybox", ports=cports),)))


def test_port_bindings_keep_only_host_ports_of_bound_pods_with_an_ip():
    got = podnet.port_bindings([
        ("a", "default/web", "10.244.1.2", pod("web", (8080, 80, "TCP"), (9090, None, "TCP"), (53, 5353, "UDP"))),
        (None, "default/pending", None, pod("pending", (80, 81, "TCP"))),
        ("b", "default/noip", None, pod("noip", (80, 82, "TCP"))),
    ])
    assert got == {"a": [PortBinding(80, "TCP", "10.244.1.2", 8080, "default/web"),
                         PortBinding(5353, "UDP", "10.244.1.2", 53, "default/web")]}


def test_a_host_port_claimed_twice_on_a_host_goes_to_the_first_pod():
    first = PortBinding(80, "TCP", "10.244.1.2", 8080, "default/old")
    second = PortBinding(80, "TCP", "10.244.1.3", 8080, "default/new")
    udp = PortBinding(80, "UDP", "10.244.1.3", 8080, "default/new")
    got, notes = nets(hosts(a="10.0.0.1"), {"a": [first, second, udp]})
    assert got["a"].ports == (first, udp)
    assert notes == ["host a: hostPort 80/TCP of pod default/new is already taken by pod default/old; not forwarded"]


def test_rules_dnat_host_ports_and_masquerade_out_of_the_cluster():
    binding = PortBinding(80, "TCP", "10.244.1.2", 8080, "default/web")
    sctp = PortBinding(9, "SCTP", "10.244.1.2", 9, "default/web")
    net = nets(hosts(a="10.0.0.1"), {"a": [binding, sctp]})[0]["a"]
    nft = podnet.nft_ruleset(net)
    # Created, then deleted, then made: one transaction whether the table exists or not.
    assert nft.startswith("table ip podctl {}\ndelete table ip podctl\ntable ip podctl {\n")
    assert "tcp dport 80 dnat to 10.244.1.2:8080" in nft and "sctp dport 9 dnat to 10.244.1.2:9" in nft
    assert nft.count("fib daddr type local jump hostports") == 2  # arriving, and from the host itself
    assert 'ip saddr 10.244.1.0/24 oifname "podctl0" ct status dnat masquerade' in nft  # hairpin
    ipt = podnet.iptables_nat(net)
    assert "-A PODCTL-HOSTPORTS -p tcp --dport 80 -j DNAT --to-destination 10.244.1.2:8080" in ipt
    assert ipt.splitlines()[-3:] == ["-A PODCTL-POSTROUTING -s 10.244.1.0/24 -d 10.244.0.0/16 -j RETURN",
                                     "-A PODCTL-POSTROUTING -s 10.244.1.0/24 -j MASQUERADE", "COMMIT"]
    assert "-A PODCTL-FORWARD -s 10.244.1.0/24 -j ACCEPT" in podnet.iptables_filter(net)


def test_the_digest_follows_routes_and_ports_and_nothing_else():
    hs = hosts(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3")
    base = nets(hs)[0]["a"].digest
    assert len(base) == 16 and base == nets(list(reversed(hs)))[0]["a"].digest
    assert nets(hs[:2])[0]["a"].digest != base  # c left
    moved = [hs[0], hs[1], Host("c", "10.0.0.9")]
    assert nets(moved)[0]["a"].digest != base  # c's node IP changed
    binding = PortBinding(80, "TCP", "10.244.1.2", 8080, "default/web")
    assert nets(hs, {"a": [binding]})[0]["a"].digest != base
    assert nets(hs, {"b": [binding]})[0]["a"].digest == base  # b's ports are b's business


def snap(name: str, digest: str | None, status: str = "ok") -> HostSnapshot:
    facts = {"net_digest": digest} if digest is not None else {}
    return HostSnapshot(name, status, facts)


def test_only_reachable_hosts_whose_digest_differs_get_a_sync():
    want, _ = nets(hosts(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3"))
    observed = {"a": snap("a", want["a"].digest), "b": snap("b", ""), "c": snap("c", None, "unreachable")}
    actions = podnet.network_actions(want, observed)
    assert actions == [Action(podnet.NET_VERB, "b", reason="not set up: 2 route(s), masquerade, 0 hostPort(s)",
                              digest=want["b"].digest)]
    observed["b"] = snap("b", "0123456789abcdef")
    assert "changed from 0123456789abcdef" in podnet.network_actions(want, observed)[0].reason
    observed["b"] = snap("b", want["b"].digest)
    assert podnet.network_actions(want, observed) == []


def test_the_sync_comes_before_pod_work_on_its_host():
    plan = Plan((Action("create", "a", "u1", "default/p", "new"),), ("n1",))
    sync = Action(podnet.NET_VERB, "a", reason="x", digest="d")
    got = podnet.with_network(plan, [sync], ["n2"])
    assert [a.verb for a in got.actions] == [podnet.NET_VERB, "create"] and got.notes == ("n1", "n2")
    assert got.summary() == "1 to sync-network, 1 to create"
    assert podnet.with_network(plan, [], []) is plan


def test_the_network_block_is_valid_bash_and_reports_its_result():
    net = nets(hosts(a="10.0.0.1", b="10.0.0.2"), {"a": [PortBinding(80, "TCP", "10.244.1.2", 8080, "x/y")]})[0]["a"]
    script = batch_script([], 3, network=podnet.apply_context(net))
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    assert "report_result network $?" in script
    assert f"NET_DIGEST={net.digest}" in script
    assert "route_proto" not in script and f"RT_PROTO={podnet.ROUTE_PROTO}" in script
    # The digest is written only once everything succeeded.
    assert script.index("[ \"$failed\" = 0 ] || exit 5") < script.index('write_atomic "$PODCTL_RUN/net.digest"')
    assert "net_apply" not in batch_script([], 3)  # no network: no block


# ---------------------------------------------------------------- inventory


def inv(text: str):
    return parse_inventory(textwrap.dedent(text), "/inv/hosts.yaml")


def test_inventory_reads_podctl_node_ip():
    got = inv("""
        all:
          hosts:
            a: {ansible_host: 127.0.0.1, ansible_port: 2222, podctl_node_ip: 192.168.56.11}
            b: {ansible_host: 10.0.0.2}
    """)
    assert [h.node_ip for h in got.hosts] == ["192.168.56.11", None]
    assert podnet.node_ip_of(got.hosts[1]) == ("10.0.0.2", "")


@pytest.mark.parametrize("value, words", [
    ("eth0", "is not an IPv4 address"),
    ("127.0.0.2", "loopback"),
    ("10.244.0.5", "inside the cluster's pod network"),
    ("224.0.0.1", "not a unicast"),
])
def test_inventory_rejects_a_bad_node_ip(value, words):
    with pytest.raises(InventoryError) as info:
        inv(f"all:\n  hosts:\n    a: {{podctl_node_ip: '{value}'}}\n")
    err = info.value
    assert (err.host, err.field) == ("a", "podctl_node_ip") and words in str(err)


def test_inventory_rejects_two_hosts_with_one_node_ip():
    with pytest.raises(InventoryError) as info:
        inv("""
            all:
              hosts:
                a: {podctl_node_ip: 10.0.0.1}
                b: {podctl_node_ip: 10.0.0.1}
        """)
    assert (info.value.host, info.value.field) == ("b", "podctl_node_ip") and "also host 'a'" in str(info.value)


def test_a_host_port_on_the_hosts_ssh_port_is_not_forwarded():
    ssh = PortBinding(22, "TCP", "10.244.1.2", 2222, "default/sshd")
    udp = PortBinding(22, "UDP", "10.244.1.2", 22, "default/sshd")
    got, notes = nets(hosts(a="10.0.0.1"), {"a": [ssh, udp]})
    assert got["a"].ports == (udp,)
    assert notes == ["host a: hostPort 22/TCP of pod default/sshd is the host's SSH port podctl reaches it by; "
                     "not forwarded"]


# ---------------------------------------------------------------- vxlan

VXLAN = podnet.NetworkSettings("vxlan", vxlan_port=8472, vni=7)


def test_vtep_macs_are_derived_from_node_ips_locally_administered_and_unicast():
    assert podnet.vtep_mac("10.213.0.11") == "0e:ec:0a:d5:00:0b"
    assert podnet.vtep_mac("192.168.56.12") == "0e:ec:c0:a8:38:0c"
    first = int(podnet.vtep_mac("10.0.0.1")[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert len({podnet.vtep_mac(f"10.0.{i}.{j}") for i in range(4) for j in range(256)}) == 1024


def test_each_vxlan_peer_gets_a_route_a_neighbour_and_an_fdb_entry():
    got, _ = podnet.desired_networks(hosts(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3"), CIDRS, {}, settings=VXLAN)
    a = got["a"]
    assert podnet.vxlan_peers(a) == (
        podnet.VxlanPeer("10.244.2.0/24", "10.244.2.0", "0e:ec:0a:00:00:02", "10.0.0.2"),
        podnet.VxlanPeer("10.244.3.0/24", "10.244.3.0", "0e:ec:0a:00:00:03", "10.0.0.3"))
    ctx = podnet.apply_context(a)["vxlan"]
    assert ctx["mode"] == "vxlan" and (ctx["dev"], ctx["vni"], ctx["port"]) == ("podctl.vx", 7, 8472)
    assert (ctx["local"], ctx["mac"], ctx["address"]) == ("10.0.0.1", "0e:ec:0a:00:00:01", "10.244.1.0/32")
    assert ctx["gateways"] == ["10.244.2.0", "10.244.3.0"] and ctx["node_ips"] == ["10.0.0.2", "10.0.0.3"]
    assert "over podctl.vx" in a.summary()
    # b reaches a at the address and MAC a configures on itself.
    b = podnet.apply_context(got["b"])["vxlan"]
    i = b["dests"].index("10.244.1.0/24")
    assert (b["gateways"][i], b["macs"][i], b["node_ips"][i]) == (ctx["address"][:-3], ctx["mac"], ctx["local"])


def test_the_digest_changes_with_the_mode_and_its_settings_and_host_gw_keeps_its_digest():
    hs = hosts(a="10.0.0.1", b="10.0.0.2")
    plain = nets(hs)[0]["a"]
    explicit = podnet.desired_networks(hs, CIDRS, {}, settings=podnet.NetworkSettings())[0]["a"]
    assert plain.digest == explicit.digest
    assert podnet.apply_context(plain)["vxlan"] == {"mode": "host-gw"}
    digests = {podnet.desired_networks(hs, CIDRS, {}, settings=s)[0]["a"].digest for s in (
        podnet.NetworkSettings(), VXLAN, podnet.NetworkSettings("vxlan", 4789, 7),
        podnet.NetworkSettings("vxlan", 8472, 8))}
    assert len(digests) == 4
    # Deterministic: the same cluster gives the same digest (a no-op reconcile stays one).
    assert podnet.desired_networks(hs, CIDRS, {}, settings=VXLAN)[0]["a"].digest == \
        podnet.desired_networks(hs, CIDRS, {}, settings=VXLAN)[0]["a"].digest


def test_in_vxlan_mode_a_host_without_a_node_ip_has_no_vtep_and_no_routes():
    got, notes = podnet.desired_networks(hosts(a="10.0.0.1", b="127.0.0.1"), CIDRS, {}, settings=VXLAN)
    assert got["b"].routes == () and podnet.apply_context(got["b"])["vxlan"] == {"mode": "host-gw"}
    assert got["a"].routes == () and notes[0].startswith("host b: no route")


@pytest.mark.parametrize("settings", [podnet.NetworkSettings(), VXLAN])
def test_the_network_block_in_either_mode_is_valid_bash(settings):
    net = podnet.desired_networks(hosts(a="10.0.0.1", b="10.0.0.2"), CIDRS, {}, settings=settings)[0]["a"]
    script = batch_script([], 3, network=podnet.apply_context(net))
    subprocess.run(["bash", "-n"], input=script.encode(), check=True)
    if settings.mode == "vxlan":
        assert "type vxlan id \"$VX_ID\" local \"$VX_LOCAL\" dstport \"$VX_PORT\" nolearning" in script
        assert "VX_LOCAL=10.0.0.1" in script and "MACS=(0e:ec:0a:00:00:02)" in script
        assert 'via ${GWS[i]} dev $VX onlink proto $RT_PROTO' in script
    else:
        assert 'ip link del "$VX"' in script and "onlink" not in script


def settings_of(tmp_path, text: str):
    from orchestrator.config import Config, network_settings
    (tmp_path / "config.yaml").write_text(textwrap.dedent(text))
    return network_settings(Config(home=tmp_path))


def test_config_yaml_sets_the_network_mode(tmp_path):
    from orchestrator.config import Config, network_settings, scheduler_settings
    assert network_settings(Config(home=tmp_path)) == podnet.NetworkSettings()
    assert settings_of(tmp_path, "network: {mode: vxlan, vni: 7}") == VXLAN
    assert settings_of(tmp_path, "kubelet: {podPidsLimit: 5}") == podnet.NetworkSettings()
    settings_of(tmp_path, "network: {mode: vxlan}\nscheduler: {scoringStrategy: MostAllocated}\n")
    assert scheduler_settings(Config(home=tmp_path))["scoring_strategy"] == "MostAllocated"  # a known key there


@pytest.mark.parametrize("text, words", [
    ("network: {mode: flannel}", "network.mode: 'flannel': expected one of host-gw, vxlan"),
    ("network: {mode: vxlan, vxlanPort: 0}", "network.vxlanPort: 0: expected an integer 1..65535"),
    ("network: {vni: 16777216}", "network.vni: 16777216: expected an integer 1..16777215"),
    ("network: {vni: 'x'}", "network.vni: 'x'"),
    ("network: {port: 1}", "network.port: unknown field (known: mode, vxlanPort, vni)"),
    ("network: vxlan", "network: expected a mapping"),
])
def test_config_yaml_network_errors_name_the_file_and_the_field(tmp_path, text, words):
    from orchestrator.errors import UsageError
    with pytest.raises(UsageError) as info:
        settings_of(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'config.yaml'}: ") and words in str(info.value)

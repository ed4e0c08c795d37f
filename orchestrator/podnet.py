"""The pod network each host should have, from plain data (pure; no I/O).

host-gw (the default): every host routes each other inventory host's pod CIDR via that
host's node IP (hosts must share an L2 segment). vxlan (config.yaml `network.mode`), for
hosts that share none, as flannel's vxlan backend with iproute2 only: each host has a
VXLAN device whose MAC is derived from its node IP, so every host computes every peer's
VTEP MAC without any exchange, and routes each peer's pod CIDR through it (a route, a
permanent neighbour and an fdb entry per peer; no learning, no multicast). Each host
forwards IP, masquerades traffic from its pods to anything outside the cluster's pod
networks, and DNATs its pods' hostPorts (traffic arriving at the host, and from the
host itself). The whole state has a short digest: the probe reports the digest a host
last applied (templates/probe.sh.j2), and only a host whose digest differs gets the
network block (templates/net_apply.sh.j2) in its batch, so a no-op reconcile stays one.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .model import Host, Pod
from .plan import Action, Plan, ordered

CLUSTER_CIDR = "10.244.0.0/16"
# Routes podctl makes carry this routing protocol number (`ip route ... proto 152`),
# so the network block removes its own stale routes and never anyone else's.
ROUTE_PROTO = 152
NFT_TABLE = "podctl"
BRIDGE = "podctl0"  # as lib.sh.j2's PODCTL_BRIDGE
NET_VERB = "sync-network"
# Bumped when the rules' shape changes, so hosts re-apply after an upgrade.
SCHEMA = 1


VXLAN_DEV = "podctl.vx"
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
MODES = ("host-gw", "vxlan")


@dataclass(frozen=True)
class NetworkSettings:
    """config.yaml's `network:` (config.network_settings validates it)."""

    mode: str = "host-gw"
    vxlan_port: int = 8472  # flannel's and the Linux kernel's VXLAN port (IANA's is 4789)
    vni: int = 1


def vtep_mac(node_ip: str) -> str:
    """The VXLAN device's MAC of the host at node_ip: locally administered, unicast
    (first octet 0x0e), then the IPv4 address's four octets: unique per node IP, and
    any host computes any peer's without asking it."""
    octets = ipaddress.IPv4Address(node_ip).packed
    return ":".join(f"{b:02x}" for b in (0x0E, 0xEC, *octets))


def vtep_address(pod_cidr: str) -> str:
    """A host's address on the VXLAN device: its pod CIDR's network address (as
    flannel's), the next hop peers route its pods via (onlink)."""
    return str(ipaddress.IPv4Network(pod_cidr).network_address)


def context_key(host: str) -> str:
    """The executor's context key of a host's network block (pod uids never look so)."""
    return f"network/{host}"


# ---------------------------------------------------------------- node IPs


def node_ip_of(host: Host) -> tuple[str | None, str]:
    """(the address other hosts route this host's pods via, why there is none).

    The inventory's podctl_node_ip when set (validated there); else the inventory
    address when it is a usable IPv4 literal: a name or a loopback address (Vagrant's
    forwarded 127.0.0.1:2222) says nothing about where pod traffic can go."""
    if host.node_ip:
        return host.node_ip, ""
    try:
        ip = ipaddress.IPv4Address(host.address)
    except ValueError:
        return None, (f"its address {host.address!r} is not an IPv4 address; set podctl_node_ip "
                      f"to the address other hosts reach it at")
    problem = node_ip_problem(ip)
    if problem:
        return None, f"its address {host.address} {problem}; set podctl_node_ip"
    return str(ip), ""


def node_ip_problem(ip: ipaddress.IPv4Address, cluster_cidr: str = CLUSTER_CIDR) -> str:
    """Why an address cannot carry pod traffic between hosts ("" when it can)."""
    if ip.is_loopback:
        return "is a loopback address (a port forward, not the host's network)"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip.is_link_local:
        return "is not a unicast host address"
    if ip in ipaddress.IPv4Network(cluster_cidr):
        return f"is inside the cluster's pod network {cluster_cidr}"
    return ""


# ---------------------------------------------------------------- desired state


@dataclass(frozen=True)
class PortBinding:
    """One hostPort of one pod: host:host_port/protocol -> pod_ip:container_port."""

    host_port: int
    protocol: str  # TCP | UDP | SCTP
    pod_ip: str
    container_port: int
    pod: str  # namespace/name


@dataclass(frozen=True)
class Route:
    dest: str  # a peer's pod CIDR
    via: str  # the peer's node IP
    peer: str  # the peer host's name


@dataclass(frozen=True)
class HostNetwork:
    host: str
    pod_cidr: str
    routes: tuple[Route, ...]
    cluster_nets: tuple[str, ...]  # destinations that are pods: never masqueraded
    ports: tuple[PortBinding, ...]
    settings: NetworkSettings = NetworkSettings()
    node_ip: str | None = None  # this host's own (the VXLAN device's local address)

    @property
    def vxlan(self) -> bool:
        return self.settings.mode == "vxlan"

    @property
    def gateway(self) -> str:
        return str(ipaddress.IPv4Network(self.pod_cidr).network_address + 1)

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(self.pod_cidr).prefixlen

    @property
    def digest(self) -> str:
        doc = {"v": SCHEMA, "cidr": self.pod_cidr, "routes": [(r.dest, r.via) for r in self.routes],
               "cluster": list(self.cluster_nets),
               "ports": [(p.host_port, p.protocol, p.pod_ip, p.container_port) for p in self.ports]}
        if self.vxlan:  # (host-gw digests stay as they were before VXLAN existed)
            doc["vxlan"] = [self.settings.vni, self.settings.vxlan_port, self.node_ip]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def summary(self) -> str:
        routes = f"{len(self.routes)} route(s)" + (f" over {VXLAN_DEV}" if self.vxlan else "")
        return f"{routes}, masquerade, {len(self.ports)} hostPort(s)"


def port_bindings(pods: Iterable[tuple[str, str, str | None, Pod]]) -> dict[str, list[PortBinding]]:
    """host -> its pods' hostPorts, from (host, namespace/name, pod IP, pod), oldest pod
    first: should two pods claim one hostPort (the scheduler's NodePorts filter keeps a
    second one Pending, nodeName or not), the first keeps it, as the one serving does."""
    out: dict[str, list[PortBinding]] = {}
    for host, key, ip, pod in pods:
        if not host or not ip:
            continue
        for c in pod.spec.containers:
            for p in c.ports:
                if p.host_port:
                    out.setdefault(host, []).append(PortBinding(p.host_port, p.protocol, ip, p.container_port, key))
    return out


def desired_networks(hosts: Sequence[Host], cidrs: Mapping[str, str | None],
                     bindings: Mapping[str, Sequence[PortBinding]],
                     cluster_cidr: str = CLUSTER_CIDR, settings: NetworkSettings = NetworkSettings(),
                     ) -> tuple[dict[str, HostNetwork], list[str]]:
    """Every inventory host's network (hosts without a pod CIDR get none), and notes
    for the plan: hosts others cannot route to, hostPort conflicts. In vxlan mode a
    host without a node IP has no VTEP: it gets no routes (none come back to it)."""
    notes: list[str] = []
    node_ips = {}
    derived = [node_ip_of(h)[0] for h in hosts if not h.node_ip]
    for h in hosts:
        ip, why = node_ip_of(h)
        if ip and not h.node_ip and derived.count(ip) > 1:
            # Several hosts behind one address (NAT port forwards): routing to it is wrong.
            ip, why = None, f"its address {ip} is several hosts' address; set podctl_node_ip"
        node_ips[h.name] = ip
        if ip is None and cidrs.get(h.name):
            notes.append(f"host {h.name}: no route to its pods from other hosts: {why}")
    cluster = {ipaddress.IPv4Network(cluster_cidr)}
    cluster |= {ipaddress.IPv4Network(c) for c in cidrs.values() if c}
    cluster_nets = tuple(str(n) for n in ipaddress.collapse_addresses(cluster))
    out = {}
    for h in hosts:
        cidr = cidrs.get(h.name)
        if not cidr:
            continue
        routes = tuple(sorted((Route(cidrs[p.name], node_ips[p.name], p.name) for p in hosts
                               if p.name != h.name and cidrs.get(p.name) and node_ips[p.name]),
                              key=lambda r: ipaddress.IPv4Network(r.dest)))
        if settings.mode == "vxlan" and not node_ips[h.name]:
            routes = ()
        taken: dict[tuple[int, str], PortBinding] = {}
        for b in bindings.get(h.name, ()):
            if b.protocol == "TCP" and b.host_port in (h.port, 22):
                # DNAT of the SSH port would cut podctl itself off the host (22 too: a
                # port forward such as Vagrant's 2222 lands on the host's port 22).
                notes.append(f"host {h.name}: hostPort {b.host_port}/TCP of pod {b.pod} is the host's SSH "
                             f"port podctl reaches it by; not forwarded")
                continue
            first = taken.setdefault((b.host_port, b.protocol), b)
            if first is not b:
                notes.append(f"host {h.name}: hostPort {b.host_port}/{b.protocol} of pod {b.pod} is "
                             f"already taken by pod {first.pod}; not forwarded")
        ports = tuple(sorted(taken.values(), key=lambda b: (b.protocol, b.host_port)))
        out[h.name] = HostNetwork(h.name, cidr, routes, cluster_nets, ports, settings, node_ips[h.name])
    return out, notes


def network_actions(desired: Mapping[str, HostNetwork], observed: Mapping) -> list[Action]:
    """A sync for each reachable host whose applied digest is not the desired one
    (none after a reboot: /run/podctl went, with the routes and rules)."""
    actions = []
    for name, net in sorted(desired.items()):
        snap = observed.get(name)
        if snap is None or not snap.reachable:
            continue
        have = snap.facts.get("net_digest", "")
        if have == net.digest:
            continue
        why = "not set up" if not have else f"changed from {have}"
        actions.append(Action(NET_VERB, name, reason=f"{why}: {net.summary()}", digest=net.digest))
    return actions


def with_network(plan: Plan, actions: Sequence[Action], notes: Sequence[str]) -> Plan:
    """The pod plan with the network syncs (and their notes) added."""
    if not actions and not notes:
        return plan
    return Plan(ordered(list(plan.actions) + list(actions)), plan.notes + tuple(notes))


# ---------------------------------------------------------------- rules


_NFT_L4 = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


def nft_ruleset(net: HostNetwork) -> str:
    """One nft transaction that replaces table ip podctl (creating it first, so the
    delete never fails): masquerade out of the cluster, hostPort DNAT, and masquerade
    of a pod reaching a hostPort of its own host (else the reply skips the DNAT)."""
    cluster = ", ".join(net.cluster_nets)
    dnat = [f"    {_NFT_L4[p.protocol]} dport {p.host_port} dnat to {p.pod_ip}:{p.container_port}"
            for p in net.ports]
    lines = [
        f"table ip {NFT_TABLE} {{}}",
        f"delete table ip {NFT_TABLE}",
        f"table ip {NFT_TABLE} {{",
        "  chain hostports {", *dnat, "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump hostports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",  # dstnat is prerouting-only
        "    fib daddr type local jump hostports",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f"    ip saddr {net.pod_cidr} oifname \"{BRIDGE}\" ct status dnat masquerade",
        f"    ip saddr {net.pod_cidr} ip daddr != {{ {cluster} }} masquerade",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def iptables_nat(net: HostNetwork) -> str:
    """The same as nft_ruleset for `iptables-restore --noflush`: podctl's own chains
    (declaring a chain flushes it), jumped to from the built-in ones by the script."""
    lines = ["*nat", ":PODCTL-HOSTPORTS - [0:0]", ":PODCTL-POSTROUTING - [0:0]"]
    lines += [f"-A PODCTL-HOSTPORTS -p {_NFT_L4[p.protocol]} --dport {p.host_port} -j DNAT "
              f"--to-destination {p.pod_ip}:{p.container_port}" for p in net.ports]
    lines.append(f"-A PODCTL-POSTROUTING -s {net.pod_cidr} -o {BRIDGE} -m conntrack --ctstate DNAT -j MASQUERADE")
    lines += [f"-A PODCTL-POSTROUTING -s {net.pod_cidr} -d {c} -j RETURN" for c in net.cluster_nets]
    lines += [f"-A PODCTL-POSTROUTING -s {net.pod_cidr} -j MASQUERADE", "COMMIT"]
    return "\n".join(lines) + "\n"


def iptables_filter(net: HostNetwork) -> str:
    """Forwarding of pod traffic accepted ahead of a FORWARD policy DROP (Docker sets one)."""
    return "\n".join(["*filter", ":PODCTL-FORWARD - [0:0]",
                      f"-A PODCTL-FORWARD -s {net.pod_cidr} -j ACCEPT",
                      f"-A PODCTL-FORWARD -d {net.pod_cidr} -j ACCEPT", "COMMIT"]) + "\n"


@dataclass(frozen=True)
class VxlanPeer:
    """What a host needs to reach one peer's pods over VXLAN (as flannel's vxlan backend)."""

    dest: str  # the peer's pod CIDR: `ip route replace DEST via GW dev podctl.vx onlink`
    gateway: str  # the peer's VTEP address: `ip neigh replace GW lladdr MAC ... nud permanent`
    mac: str  # the peer's VTEP MAC: `bridge fdb replace MAC dev podctl.vx dst NODE_IP`
    node_ip: str


def vxlan_peers(net: HostNetwork) -> tuple[VxlanPeer, ...]:
    return tuple(VxlanPeer(r.dest, vtep_address(r.dest), vtep_mac(r.via), r.via) for r in net.routes)


def vxlan_context(net: HostNetwork) -> dict:
    """The VXLAN device and its per-peer entries ({"mode": "host-gw"} otherwise: the
    script then removes the device, and with it every route through it)."""
    if not net.vxlan or not net.node_ip:
        return {"mode": "host-gw"}
    peers = vxlan_peers(net)
    return {"mode": "vxlan", "dev": VXLAN_DEV, "vni": net.settings.vni, "port": net.settings.vxlan_port,
            "local": net.node_ip, "mac": vtep_mac(net.node_ip), "address": f"{vtep_address(net.pod_cidr)}/32",
            "overhead": VXLAN_OVERHEAD, "dests": [p.dest for p in peers], "gateways": [p.gateway for p in peers],
            "macs": [p.mac for p in peers], "node_ips": [p.node_ip for p in peers]}


def apply_context(net: HostNetwork) -> dict:
    """What templates/net_apply.sh.j2 needs, as plain values."""
    return {"vxlan": vxlan_context(net), "digest": net.digest, "gateway_cidr": f"{net.gateway}/{net.prefix}",
            "route_dests": [r.dest for r in net.routes], "route_vias": [r.via for r in net.routes],
            "route_proto": ROUTE_PROTO, "nft": nft_ruleset(net), "iptables_nat": iptables_nat(net),
            "iptables_filter": iptables_filter(net)}

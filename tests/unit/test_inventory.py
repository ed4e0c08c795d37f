"""Inventory parsing: every format, Ansible precedence, every validation error path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator import inventory as inventory_module
from orchestrator.errors import InventoryError
from orchestrator.inventory import (Inventory, detect_format, effective_capacity,
                                    load_inventory, parse_inventory)
from orchestrator.model import Capacity, Taint

REPO = Path(__file__).resolve().parents[2]
SRC = "/inv/hosts.yaml"  # a fake path: relative paths in tests resolve against /inv


def parse(text: str, fmt: str | None = None, source: str = SRC) -> Inventory:
    return parse_inventory(textwrap.dedent(text), source, fmt)


def one(text: str, fmt: str | None = None):
    inv = parse(text, fmt)
    assert len(inv) == 1, inv.names
    return inv.hosts[0]


def yaml_host(**hostvars) -> str:
    """A one-host YAML inventory whose host `h1` carries `hostvars` (flow style)."""
    import yaml
    return yaml.safe_dump({"all": {"hosts": {"h1": hostvars}}})


# ------------------------------------------------------------------ examples


@pytest.mark.parametrize("name, count, fmt", [
    ("lab.yaml", 3, "yaml"),
    ("vagrant.yaml", 3, "yaml"),
    ("baremetal.example.yaml", 6, "yaml"),
    ("hosts.example.ini", 6, "ini"),
])
def test_example_inventories_load(name, count, fmt):
    path = REPO / "inventory" / name
    assert detect_format(path.read_text()) == fmt
    inv = load_inventory(path)
    assert len(inv) == count
    assert inv.source == str(path)
    for host in inv:
        assert host.label_map["kubernetes.io/hostname"] == host.name
        assert host.source == str(path)


def test_lab_inventory_shape():
    inv = load_inventory(REPO / "inventory" / "lab.yaml")
    assert inv.names == ("node1", "node2", "node3")
    home = str(Path.home())
    for i, host in enumerate(inv, 1):
        assert host.address == f"10.213.0.1{i}"
        assert host.pod_cidr == f"10.244.{i}.0/24"
        assert host.user == "root"
        assert host.key_file == f"{home}/.podctl/lab/id_ed25519"
        assert host.known_hosts == f"{home}/.podctl/lab/known_hosts"
        assert inv.host_key_checking[host.name] == "strict"


def test_vagrant_inventory_keys_resolve_against_the_file():
    inv = load_inventory(REPO / "inventory" / "vagrant.yaml")
    node2 = inv.get("node2")
    assert node2.address == "192.168.56.12" and node2.user == "vagrant" and node2.become
    assert node2.key_file == str(REPO / "vagrant/.vagrant/machines/node2/virtualbox/private_key")


def test_baremetal_example_details():
    inv = load_inventory(REPO / "inventory" / "baremetal.example.yaml")
    assert inv.names[:3] == ("worker01.example.net", "worker02.example.net", "worker03.example.net")
    worker = inv.get("worker02.example.net")
    assert worker.port == 2222 and worker.groups == ("rack_a", "workers_a")
    assert worker.label_map["node-role.kubernetes.io/worker"] == ""
    gpu = inv.get("gpu1.example.net")
    assert gpu.capacity == Capacity(cpu_m=31500, memory=120 * 2**30, pods=30)
    assert gpu.taints == (Taint("example.com/gpu", "true", "NoSchedule"),)
    db = inv.get("db1.example.net")
    assert db.capacity == Capacity(cpu_m=0, memory=60 * 2**30, pods=110)
    assert db.taints == (Taint("dedicated", "database", "NoSchedule"),
                         Taint("example.com/maintenance", "", "PreferNoSchedule"))
    assert inv.get("edge1.example.net").user == "admin"
    assert inv.get("nope") is None


# ------------------------------------------------------------------ format detection


@pytest.mark.parametrize("text, fmt", [
    ("all:\n  hosts:\n    a:\n", "yaml"),
    ("---\n# comment\nweb:\n  hosts: {a: }\n", "yaml"),
    ("[web]\na\n", "ini"),
    ("# c\n; c\na ansible_host=1.2.3.4\n[db]\nb\n", "ini"),
    ("a ansible_host=1.2.3.4\nb\n", "ini"),
    ("node1\n", "ini"),
    ("Host default\n  HostName 127.0.0.1\n", "ssh-config"),
    ("all:\n  hosts: [\n", "yaml"),  # broken YAML is reported as YAML
    ("", "yaml"),
])
def test_detect_format(text, fmt):
    assert detect_format(text) == fmt


# ------------------------------------------------------------------ YAML


def test_yaml_all_fields():
    host = one("""
        all:
          hosts:
            web-1.example.com:
              ansible_host: 192.0.2.1
              ansible_port: "2200"
              ansible_user: deploy
              ansible_ssh_private_key_file: keys/id
              ansible_become: "yes"
              ansible_become_user: podctl
              ansible_password: secret
              ansible_connection: ssh
              ansible_python_interpreter: /usr/bin/python3
              app_version: 1.2.3
              podctl_known_hosts: ~/kh
              cpu: 3500m
              memory: 16Gi
              max_pods: "50"
              pod_cidr: 10.244.7.0/24
              labels: {zone: a, example.com/disk: ssd, empty: }
              taints: ["a=b:NoSchedule", "c:NoExecute", {key: d, effect: PreferNoSchedule}]
    """)
    assert (host.name, host.address, host.port, host.user) == ("web-1.example.com", "192.0.2.1", 2200, "deploy")
    assert host.key_file == "/inv/keys/id"
    assert host.known_hosts == str(Path.home() / "kh")
    assert (host.become, host.become_user, host.password) == (True, "podctl", "secret")
    assert host.capacity == Capacity(cpu_m=3500, memory=16 * 2**30, pods=50)
    assert host.pod_cidr == "10.244.7.0/24"
    assert host.label_map == {"zone": "a", "example.com/disk": "ssd", "empty": "",
                              "kubernetes.io/hostname": "web-1.example.com"}
    assert host.taints == (Taint("a", "b", "NoSchedule"), Taint("c", "", "NoExecute"),
                           Taint("d", "", "PreferNoSchedule"))
    assert host.groups == ("ungrouped",)
    assert host.source == SRC


def test_yaml_defaults():
    host = one("all:\n  hosts:\n    h1:\n")
    assert (host.address, host.port, host.user, host.key_file, host.known_hosts) == ("h1", 22, "root", None, None)
    assert (host.become, host.become_user, host.capacity, host.pod_cidr, host.taints) == (False, "root", None, None, ())
    assert host.labels == (("kubernetes.io/hostname", "h1"),)


def test_yaml_nested_children_and_multiple_groups():
    inv = parse("""
        all:
          children:
            dc1:
              children:
                rack1:
                  children:
                    gpu:
                      hosts:
                        a:
                rack2:
                  hosts:
                    b:
            monitored:
              hosts:
                a:
                b:
        web:            # a top-level group that is not under all: still a child of all
          hosts:
            c:
    """)
    assert inv.names == ("a", "b", "c")
    assert inv.get("a").groups == ("dc1", "gpu", "monitored", "rack1")
    assert inv.get("b").groups == ("dc1", "monitored", "rack2")
    assert inv.get("c").groups == ("web",)


PRECEDENCE = """
    all:
      vars: {ansible_user: from_all, ansible_port: 1001, cpu: "1", memory: 1Gi}
      children:
        parent:
          vars: {ansible_user: from_parent, ansible_port: 1002, cpu: "2"}
          children:
            child:
              vars: {ansible_user: from_child, ansible_port: 1003}
              hosts:
                h1: {ansible_user: from_host}
                h2:
          hosts:
            h3:
        other:
          hosts:
            h4:
"""


@pytest.mark.parametrize("host, user, port, cpu_m", [
    ("h1", "from_host", 1003, 2000),  # host vars beat every group
    ("h2", "from_child", 1003, 2000),  # child group beats parent group
    ("h3", "from_parent", 1002, 2000),  # parent group beats all.vars
    ("h4", "from_all", 1001, 1000),  # all.vars is the floor
])
def test_yaml_precedence(host, user, port, cpu_m):
    h = parse(PRECEDENCE).get(host)
    assert (h.user, h.port, h.capacity.cpu_m, h.capacity.memory) == (user, port, cpu_m, 2**30)


SIBLINGS = """
    all:
      children:
        alpha: {vars: {ansible_user: alpha, ansible_port: 1}, hosts: {h1: }}
        zulu: {vars: {ansible_user: zulu}, hosts: {h1: }}
        deep:
          children:
            deeper: {vars: {ansible_port: 9}, hosts: {h1: }}
"""


def test_yaml_sibling_groups_last_name_wins_and_deeper_beats_shallower():
    h = parse(SIBLINGS).get("h1")
    assert h.user == "zulu"  # same depth: the name that sorts last wins
    assert h.port == 9  # depth 2 beats depth 1 whatever the names
    assert h.groups == ("alpha", "deep", "deeper", "zulu")


def test_yaml_group_priority_overrides_name_order():
    text = SIBLINGS.replace("{ansible_user: alpha,", "{ansible_group_priority: 10, ansible_user: alpha,")
    assert parse(text).get("h1").user == "alpha"


def test_yaml_host_vars_merge_across_groups_in_file_order():
    h = one("""
        all:
          children:
            a: {hosts: {h1: {ansible_user: u1, ansible_port: 2201}}}
            b: {hosts: {h1: {ansible_user: u2}}}
    """)
    assert (h.user, h.port) == ("u2", 2201)


def test_yaml_mappings_replace_rather_than_merge():
    h = one("""
        all:
          vars: {labels: {zone: a, disk: ssd}}
          hosts: {h1: {labels: {role: db}}}
    """)
    assert h.label_map == {"role": "db", "kubernetes.io/hostname": "h1"}


@pytest.mark.parametrize("pattern, names", [
    ("node[1:3]", ["node1", "node2", "node3"]),
    ("db[01:10:4]", ["db01", "db05", "db09"]),
    ("n[a:c]", ["na", "nb", "nc"]),
    ("r[1:2]-n[1:2]", ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]),
    ("n[:2]", ["n0", "n1", "n2"]),
])
def test_host_ranges_yaml_and_ini(pattern, names):
    assert list(parse(f"all:\n  hosts:\n    {pattern}:\n").names) == names
    assert list(parse(f"[g]\n{pattern}\n").names) == names


def test_host_port_in_pattern():
    assert one("all:\n  hosts:\n    h1:2222:\n").port == 2222
    assert one("[g]\nh1:2222\n").port == 2222
    assert one("[g]\nh1:2222 ansible_port=2300\n").port == 2300  # an explicit var wins


# ------------------------------------------------------------------ INI


INI = """
    # comment
    ; another comment
    lb ansible_host=192.0.2.1   # ungrouped, with an inline comment

    [web]
    web[1:2] ansible_port=2222 labels="{'tier': 'web', 'zone': 'a'}"
    web3 ansible_host="192.0.2.13" ansible_become=True motd="hello world"

    [db]
    db1 taints="dedicated=db:NoSchedule,maint:PreferNoSchedule" max_pods=20 ansible_ssh_pass=1234

    [web:vars]
    ansible_user = deploy
    labels = tier=web, zone=b

    [prod:children]
    web
    db

    [prod:vars]
    ansible_become = yes
    cpu = "2"

    [all:vars]
    ansible_user=root2
    ansible_ssh_private_key_file="keys/my key"
"""


def test_ini_inventory():
    inv = parse(INI, source="/inv/hosts")
    assert inv.names == ("lb", "web1", "web2", "web3", "db1")
    lb, web1, web3, db1 = inv.get("lb"), inv.get("web1"), inv.get("web3"), inv.get("db1")
    assert (lb.address, lb.user, lb.groups, lb.become, lb.capacity) == ("192.0.2.1", "root2", ("ungrouped",), False, None)
    assert lb.key_file == "/inv/keys/my key"
    assert (web1.port, web1.user, web1.become, web1.groups) == (2222, "deploy", True, ("prod", "web"))
    assert web1.label_map == {"tier": "web", "zone": "a", "kubernetes.io/hostname": "web1"}  # host line wins
    assert web3.label_map == {"tier": "web", "zone": "b", "kubernetes.io/hostname": "web3"}  # [web:vars] string form
    assert (web3.address, web3.become) == ("192.0.2.13", True)
    assert db1.taints == (Taint("dedicated", "db", "NoSchedule"), Taint("maint", "", "PreferNoSchedule"))
    assert db1.capacity == Capacity(cpu_m=2000, memory=0, pods=20)
    assert db1.password == "1234"  # a literal int on a host line becomes a string again


def test_ini_child_group_declared_before_its_hosts():
    inv = parse("[prod:children]\nweb\n[prod:vars]\nansible_port=2000\n[web]\nw1\n")
    assert inv.get("w1").port == 2000 and inv.get("w1").groups == ("prod", "web")


# ------------------------------------------------------------------ vagrant ssh-config


VAGRANT = """
    Host node1
      HostName 127.0.0.1
      User vagrant
      Port 2222
      UserKnownHostsFile /dev/null
      StrictHostKeyChecking no
      PasswordAuthentication no
      IdentityFile "/home/me/my project/.vagrant/machines/node1/virtualbox/private_key"
      IdentityFile /second/key
      IdentitiesOnly yes
      LogLevel FATAL
      PubkeyAcceptedKeyTypes +ssh-rsa

    Host node2
      HostName 192.168.56.12
      User vagrant
      Port 22
      IdentityFile .vagrant/machines/node2/virtualbox/private_key
"""


def test_vagrant_ssh_config():
    inv = parse(VAGRANT, source="/proj/ssh-config")
    assert inv.names == ("node1", "node2")
    n1, n2 = inv.hosts
    assert (n1.address, n1.port, n1.user, n1.become) == ("127.0.0.1", 2222, "vagrant", True)
    assert n1.key_file == "/home/me/my project/.vagrant/machines/node1/virtualbox/private_key"
    assert n1.known_hosts is None  # UserKnownHostsFile /dev/null is NOT honoured
    assert inv.host_key_checking["node1"] == "strict"  # nor is StrictHostKeyChecking no
    assert n2.key_file == "/proj/.vagrant/machines/node2/virtualbox/private_key"
    assert parse(VAGRANT, fmt="vagrant").names == ("node1", "node2")


# ------------------------------------------------------------------ value parsing


@pytest.mark.parametrize("value, expected", [
    ("yes", True), ("Yes", True), ("true", True), ("on", True), ("1", True), (1, True), (True, True),
    ("no", False), ("FALSE", False), ("off", False), ("0", False), (0, False), (False, False),
])
def test_ansible_booleans(value, expected):
    assert one(yaml_host(ansible_become=value)).become is expected


@pytest.mark.parametrize("hostvars, capacity", [
    ({}, None),
    ({"cpu": 4}, Capacity(cpu_m=4000, memory=0, pods=110)),
    ({"cpu": "3500m"}, Capacity(cpu_m=3500, memory=0, pods=110)),
    ({"memory": "16Gi"}, Capacity(cpu_m=0, memory=16 * 2**30, pods=110)),
    ({"max_pods": 20}, Capacity(cpu_m=0, memory=0, pods=20)),
])
def test_capacity_overrides_leave_the_rest_unset(hostvars, capacity):
    assert one(yaml_host(**hostvars)).capacity == capacity


def test_effective_capacity_fills_unset_fields_from_the_probe():
    probed = Capacity(cpu_m=8000, memory=32 * 2**30, pods=110)
    assert effective_capacity(None, probed) == probed
    assert effective_capacity(Capacity(cpu_m=4000), probed) == Capacity(4000, 32 * 2**30, 110)
    assert effective_capacity(Capacity(memory=2**30, pods=5), probed) == Capacity(8000, 2**30, 5)


@pytest.mark.parametrize("key, value", [
    ("ansible_ssh_host", "192.0.2.9"), ("ansible_ssh_port", 2201), ("ansible_ssh_user", "old"),
    ("ansible_private_key_file", "/k"), ("ansible_ssh_pass", "pw"),
])
def test_old_ansible_aliases_are_honoured(key, value):
    h = one(yaml_host(**{key: value}))
    assert value in (h.address, h.port, h.user, h.key_file, h.password)


def test_primary_name_beats_alias():
    assert one(yaml_host(ansible_host="a.example", ansible_ssh_host="b.example")).address == "a.example"


def test_host_key_checking_mode():
    inv = parse(yaml_host(podctl_host_key_checking="accept-new"))
    assert inv.host_key_checking == {"h1": "accept-new"}


# ------------------------------------------------------------------ errors

# (inventory text, expected error source, host, field, words the message must contain)
ERRORS = [
    # host names
    ("all:\n  hosts:\n    Node1:\n", SRC, "Node1", "name", "lowercase"),
    ("all:\n  hosts:\n    node_1:\n", SRC, "node_1", "name", "lowercase letters, digits, '-' and '.'"),
    ("all:\n  hosts:\n    -node:\n", SRC, "-node", "name", "starting and ending"),
    (f"all:\n  hosts:\n    {'a' * 64}:\n", SRC, "a" * 64, "name", "63"),
    (f"all:\n  hosts:\n    {'a.' * 127}b:\n", SRC, "a." * 127 + "b", "name", "253"),
    # connection vars
    (yaml_host(ansible_port=0), SRC, "h1", "ansible_port", "1..65535"),
    (yaml_host(ansible_port=70000), SRC, "h1", "ansible_port", "1..65535"),
    (yaml_host(ansible_port="ssh"), SRC, "h1", "ansible_port", "port"),
    (yaml_host(ansible_port=True), SRC, "h1", "ansible_port", "port"),
    (yaml_host(ansible_ssh_port="x"), SRC, "h1", "ansible_ssh_port", "port"),
    (yaml_host(ansible_become="maybe"), SRC, "h1", "ansible_become", "yes/no"),
    (yaml_host(ansible_user="a b"), SRC, "h1", "ansible_user", "word"),
    (yaml_host(ansible_host=""), SRC, "h1", "ansible_host", "word"),
    (yaml_host(ansible_become_user="-x"), SRC, "h1", "ansible_become_user", "word"),
    (yaml_host(ansible_connection="local"), SRC, "h1", "ansible_connection", "not supported"),
    (yaml_host(ansible_connection="winrm"), SRC, "h1", "ansible_connection", "not supported"),
    (yaml_host(ansible_become_method="su"), SRC, "h1", "ansible_become_method", "only sudo"),
    (yaml_host(ansible_ssh_private_key_file=["k"]), SRC, "h1", "ansible_ssh_private_key_file", "path"),
    (yaml_host(ansible_password=["x"]), SRC, "h1", "ansible_password", "string"),
    # podctl vars
    (yaml_host(podctl_known_host="/k"), SRC, "h1", "podctl_known_host", "did you mean 'podctl_known_hosts'"),
    (yaml_host(podctl_labels={"a": "b"}), SRC, "h1", "podctl_labels", "did you mean 'labels'"),
    (yaml_host(podctl_host_key_checking="no"), SRC, "h1", "podctl_host_key_checking", "strict, accept-new"),
    # labels
    (yaml_host(labels=["a"]), SRC, "h1", "labels", "mapping"),
    (yaml_host(labels="a"), SRC, "h1", "labels", "key=value"),
    (yaml_host(labels={"-a": "b"}), SRC, "h1", "labels.-a", "not a valid key"),
    (yaml_host(labels={"Example.com/a": "b"}), SRC, "h1", "labels.Example.com/a", "DNS subdomain"),
    (yaml_host(labels={"a" * 64: "b"}), SRC, "h1", "labels." + "a" * 64, "63"),
    (yaml_host(labels={"/a": "b"}), SRC, "h1", "labels./a", "not a valid key"),
    (yaml_host(labels={"a": "b" * 64}), SRC, "h1", "labels.a", "63"),
    (yaml_host(labels={"a": "b c"}), SRC, "h1", "labels.a", "not a valid value"),
    (yaml_host(labels={"a": "b-"}), SRC, "h1", "labels.a", "ending with a letter or digit"),
    (yaml_host(labels={"a": True}), SRC, "h1", "labels.a", "quote"),
    (yaml_host(labels={"a": 1.5}), SRC, "h1", "labels.a", "quote"),
    (yaml_host(labels={"kubernetes.io/hostname": "other"}), SRC, "h1", "labels", "always the host name"),
    # taints
    (yaml_host(taints="a=b"), SRC, "h1", "taints[0]", "key=value:Effect"),
    (yaml_host(taints=["a=b:Never"]), SRC, "h1", "taints[0].effect", "NoSchedule, PreferNoSchedule, NoExecute"),
    (yaml_host(taints=[{"key": "a", "effect": "NoSchedule", "operator": "x"}]), SRC, "h1", "taints[0]", "operator"),
    (yaml_host(taints=[{"key": "a"}]), SRC, "h1", "taints[0].effect", "None"),
    (yaml_host(taints=[{"key": "-a", "effect": "NoSchedule"}]), SRC, "h1", "taints[0].key", "not a valid key"),
    (yaml_host(taints=["a=b c:NoSchedule"]), SRC, "h1", "taints[0].value", "not a valid value"),
    (yaml_host(taints=["a:NoSchedule", "a=x:NoSchedule"]), SRC, "h1", "taints[1]", "duplicate taint"),
    (yaml_host(taints={"a": "b"}), SRC, "h1", "taints", "list"),
    (yaml_host(taints=[3]), SRC, "h1", "taints[0]", "key=value:Effect"),
    # capacity
    (yaml_host(cpu="lots"), SRC, "h1", "cpu", "not a quantity"),
    (yaml_host(cpu="0"), SRC, "h1", "cpu", "more than 0"),
    (yaml_host(memory="16GB"), SRC, "h1", "memory", "not a quantity"),
    (yaml_host(memory=0), SRC, "h1", "memory", "more than 0"),
    (yaml_host(max_pods=0), SRC, "h1", "max_pods", "positive integer"),
    (yaml_host(max_pods="many"), SRC, "h1", "max_pods", "positive integer"),
    # pod_cidr
    (yaml_host(pod_cidr="10.244.1.5/24"), SRC, "h1", "pod_cidr", "host bits"),
    (yaml_host(pod_cidr="fd00::/64"), SRC, "h1", "pod_cidr", "IPv4"),
    (yaml_host(pod_cidr="10.244.1.0/31"), SRC, "h1", "pod_cidr", "too small"),
    (yaml_host(pod_cidr="banana"), SRC, "h1", "pod_cidr", "IPv4"),
    ("all:\n  hosts:\n    a: {pod_cidr: 10.244.1.0/24}\n    b: {pod_cidr: 10.244.1.0/24}\n",
     SRC, "b", "pod_cidr", "is the same as 10.244.1.0/24 of host 'a'"),
    ("all:\n  hosts:\n    a: {pod_cidr: 10.244.0.0/16}\n    b: {pod_cidr: 10.244.9.0/24}\n",
     SRC, "b", "pod_cidr", "overlaps 10.244.0.0/16 of host 'a'"),
    ("all:\n  hosts:\n    a: {pod_cidr: 10.0.0.0/8}\n    b: {pod_cidr: 10.1.0.0/16}\n    c: {pod_cidr: 10.2.0.0/16}\n",
     SRC, "b", "pod_cidr", "'a'"),
    # origin of a group var is named
    ("all:\n  children:\n    web:\n      vars: {ansible_port: 0}\n      hosts: {h1: }\n",
     SRC, "h1", "ansible_port", "vars of group 'web'"),
    # YAML structure
    ("all:\n  hosts:\n    h1: {a: 1\n", f"{SRC}:4", None, None, "YAML syntax error"),
    ("all:\n  hosts:\n    h1:\n    h1:\n", f"{SRC}:4", None, None, "duplicate key 'h1'"),
    ("- h1\n- h2\n", SRC, None, None, "mapping of groups"),
    ("all:\n  host:\n    h1:\n", SRC, None, "all.host", "did you mean 'hosts'"),
    ("all:\n  hosts: [h1]\n", SRC, None, "all.hosts", "mapping"),
    ("all:\n  hosts:\n    h1: [1]\n", SRC, None, "all.hosts.h1", "mapping"),
    ("all:\n  children:\n    web: [h1]\n", SRC, None, "all.children.web", "vars/hosts/children"),
    ("all:\n  vars:\n    1: x\n  hosts: {h1: }\n", SRC, None, "all.vars.1", "strings"),
    ("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n      hosts: {h1: }\n",
     SRC, None, "a", "loop: a -> b -> a"),
    ("all:\n  children:\n    all:\n", SRC, None, "all.children.all", "'all' cannot be a child"),
    ("all:\n  children:\n    web: {vars: {ansible_group_priority: high}, hosts: {h1: }}\n",
     SRC, None, "web.ansible_group_priority", "integer"),
    # host patterns
    ("all:\n  hosts:\n    n[3:1]:\n", SRC, "n[3:1]", None, "begin <= end"),
    ("all:\n  hosts:\n    n[1:]:\n", SRC, "n[1:]", None, "needs an end"),
    ("all:\n  hosts:\n    n[01:100]:\n", SRC, "n[01:100]", None, "equal width"),
    ("all:\n  hosts:\n    n[a:10]:\n", SRC, "n[a:10]", None, "numeric"),
    ("all:\n  hosts:\n    n[1]:\n", SRC, "n[1]", None, "[begin:end]"),
    ("all:\n  hosts:\n    n[0:99999]:\n", SRC, "n[0:99999]", None, "more than 10000"),
    # INI
    ("[web\nh1\n", f"{SRC}:1", None, None, "bad section header"),
    ("[web:hostvars]\nh1\n", f"{SRC}:1", None, None, "[group:vars]"),
    ("[web]\nh1 ansible_port\n", f"{SRC}:2", "h1", None, "key=value"),
    ("[web]\nh1 motd='unterminated\n", f"{SRC}:2", None, None, "cannot split"),
    ("[web:vars]\njust_a_word\n[web]\nh1\n", f"{SRC}:2", None, None, "key=value"),
    ("[web:children]\na b\n", f"{SRC}:2", None, None, "one child group"),
    ("[web:children]\nall\n", f"{SRC}:2", None, None, "'all' cannot be a child"),
    ("[web]\nh1 ansible_port=0\n", SRC, "h1", "ansible_port", "host vars on /inv/hosts.yaml:2"),
    ("[web:vars]\nansible_port=x\n[web]\nh1\n", SRC, "h1", "ansible_port", "vars of group 'web'"),
    # ssh-config
    ("Host *\n  User x\n", f"{SRC}:1", None, None, "no patterns"),
    ("Host a b\n", f"{SRC}:1", None, None, "one host"),
    ("Host a\nMatch all\n", f"{SRC}:2", None, None, "Match"),
    ("Host Default\n  HostName 127.0.0.1\n", SRC, "Default", "name", "lowercase"),
    ("Host a\n  Port none\n", SRC, "a", "ansible_port", "Host block on /inv/hosts.yaml:1"),
    # empty
    ("", SRC, None, None, "no hosts"),
    ("# nothing here\n", SRC, None, None, "no hosts"),
    ("all:\n  vars: {a: 1}\n", SRC, None, None, "no hosts"),
    ("[web]\n", SRC, None, None, "no hosts"),
]


@pytest.mark.parametrize("text, source, host, field, words", ERRORS,
                         ids=[f"{i}-{e[3] or e[4][:20]}" for i, e in enumerate(ERRORS)])
def test_errors_name_file_host_and_field(text, source, host, field, words):
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, SRC)
    err = info.value
    assert (err.source, err.host, err.field) == (source, host, field)
    message = str(err)
    assert message.startswith(source)
    assert words in message
    if host:
        assert f"host {host!r}" in message
    if field:
        assert f"field {field!r}" in message


def test_unknown_format_is_an_error():
    with pytest.raises(InventoryError, match="unknown format 'toml'"):
        parse_inventory("a", SRC, fmt="toml")


def test_ordinary_user_vars_and_other_ansible_vars_are_ignored():
    h = one(yaml_host(ansible_python_interpreter="/usr/bin/python3", ansible_become_pass="x",
                      my_app_setting={"nested": [1, 2]}, lables={"typo": "is just a user var"}))
    assert h.labels == (("kubernetes.io/hostname", "h1"),)


# ------------------------------------------------------------------ files


def test_missing_file(tmp_path):
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path / "nope.yaml")
    assert str(info.value).startswith(str(tmp_path / "nope.yaml"))
    assert "no such inventory file" in str(info.value)


def test_directory_is_not_an_inventory(tmp_path):
    with pytest.raises(InventoryError, match="is a directory"):
        load_inventory(tmp_path)


def test_binary_file_is_reported(tmp_path):
    path = tmp_path / "inv"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(path)


def test_relative_paths_resolve_against_the_inventory_directory(tmp_path, monkeypatch):
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "hosts").write_text("h1 ansible_ssh_private_key_file=keys/id podctl_known_hosts=../kh\n")
    monkeypatch.chdir("/")
    host = load_inventory(sub / "hosts").get("h1")
    assert host.key_file == str(sub / "keys" / "id")
    assert host.known_hosts == str(tmp_path / "kh")


YAML_LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if getattr(yaml, "CSafeLoader", None) else [])


@pytest.mark.parametrize("base", YAML_LOADERS, ids=lambda b: b.__name__)
def test_both_yaml_loaders_read_alike_and_name_the_line(base, monkeypatch):
    """libyaml's loader is used when PyYAML has it; the pure-Python one is the fallback."""
    monkeypatch.setattr(inventory_module, "_Loader", inventory_module._loader_class(base))
    text = "all:\n  vars: {labels: {a: '1'}}\n  hosts:\n    h1: {ansible_port: 2222}\n    h2:\n"
    assert [(h.name, h.port, h.label_map["a"]) for h in parse_inventory(text, SRC)] == \
        [("h1", 2222, "1"), ("h2", 22, "1")]
    for bad, line, words in [("all:\n  hosts:\n    h1:\n    h1:\n", 4, "duplicate key 'h1'"),
                             ("all:\n  hosts:\n    h1:\n      a: 1\n      a: 2\n", 5, "duplicate key 'a'"),
                             ("all:\n  hosts:\n    h1: {a: 1\n", 4, "YAML syntax error")]:
        with pytest.raises(InventoryError) as info:
            parse_inventory(bad, SRC)
        assert info.value.source == f"{SRC}:{line}" and words in str(info.value), str(info.value)


def test_inventory_uses_libyaml_when_pyyaml_has_it():
    if not getattr(yaml, "CSafeLoader", None):
        pytest.skip("PyYAML without libyaml")
    assert issubclass(inventory_module._Loader, yaml.CSafeLoader)


def test_yaml_error_line_is_reported_from_a_file(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text("all:\n  hosts:\n    h1:\n      ansible_port: [\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.source.startswith(f"{path}:")
    assert "line" in str(info.value)


# ------------------------------------------------------------------ fencing and eviction vars


@pytest.mark.parametrize("value, argv", [
    ("vagrant halt {host}", ("vagrant", "halt", "h1")),
    ("/usr/local/bin/pdu off 'rack 3' {host}", ("/usr/local/bin/pdu", "off", "rack 3", "h1")),
    (["ipmitool", "-H", "{host}-bmc", "power", "off"], ("ipmitool", "-H", "h1-bmc", "power", "off")),
])
def test_fence_command(value, argv):
    assert one(yaml_host(podctl_fence_command=value)).fence_command == argv


@pytest.mark.parametrize("value", ["", "'unclosed", 42, ["ok", 1]])
def test_bad_fence_command(value):
    with pytest.raises(InventoryError) as info:
        one(yaml_host(podctl_fence_command=value))
    assert info.value.field == "podctl_fence_command"


def test_memory_available_min():
    assert one(yaml_host(podctl_memory_available_min="512Mi")).memory_available_min == 512 * 2**20
    assert one(yaml_host()).memory_available_min is None
    with pytest.raises(InventoryError) as info:
        one(yaml_host(podctl_memory_available_min="lots"))
    assert info.value.field == "podctl_memory_available_min"

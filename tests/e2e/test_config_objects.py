"""ConfigMaps and Secrets end to end: env, envFrom, volumes, downward API values, a secret
that never shows in argv, logs or files outside its tmpfs, a pod waiting for a missing
Secret, QoS and the pods' pids limit."""

from __future__ import annotations

import json
import secrets
import time

import pytest

from test_pods import manifest, pod_json, wait_for

pytestmark = pytest.mark.e2e

SECRET = "s3cr3t-" + secrets.token_hex(12)


def objects(secret: str) -> str:
    return manifest(f"""
        apiVersion: v1
        kind: ConfigMap
        metadata: {{name: cfg}}
        data:
          greeting: hello
          1bad: skipped
          config.txt: |
            line one
        ---
        apiVersion: v1
        kind: Secret
        metadata: {{name: creds}}
        stringData:
          password: {secret}
        ---
        apiVersion: v1
        kind: Pod
        metadata:
          name: cfgpod
          labels: {{app: demo}}
        spec:
          nodeName: node1
          terminationGracePeriodSeconds: 1
          volumes:
          - {{name: cfgvol, configMap: {{name: cfg, items: [{{key: config.txt, path: sub/c.txt}}]}}}}
          - {{name: secvol, secret: {{secretName: creds, defaultMode: 0400}}}}
          containers:
          - name: app
            image: busybox:latest
            command: ["sh", "-c", "echo started $(GREETING); sleep 3600"]
            resources:
              requests: {{cpu: 100m, memory: 32Mi}}
              limits: {{memory: 64Mi}}
            envFrom:
            - configMapRef: {{name: cfg}}
            - {{configMapRef: {{name: cfg}}, prefix: CM_}}
            env:
            - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}}}
            - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
            - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
            - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
            - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
            - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
            - {{name: APP, valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}}}
            - {{name: MEM_LIMIT, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
            - {{name: CPU_REQ, valueFrom: {{resourceFieldRef: {{resource: requests.cpu, divisor: 1m}}}}}}
            - {{name: CPU_LIMIT, valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}}}
            - {{name: EXPANDED, value: "x-$(GREETING)-$$(GREETING)"}}
            volumeMounts:
            - {{name: cfgvol, mountPath: /etc/cfg}}
            - {{name: secvol, mountPath: /etc/creds}}
    """)


def env_of(podctl, pod: str) -> dict[str, str]:
    out = podctl("exec", pod, "--", "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_config_and_secret_reach_the_pod_and_the_secret_nowhere_else(lab, podctl):
    started = time.monotonic()
    try:
        podctl("apply", "-f", "-", input=objects(SECRET))
        obj = wait_for(podctl, "cfgpod", lambda o: o["status"]["phase"] == "Running")
        assert obj["status"]["qosClass"] == "Burstable"
        uid = obj["metadata"]["uid"]
        env = env_of(podctl, "cfgpod")
        cpus = int(lab.ssh("node1", "nproc", check=True).stdout)
        assert {k: env.get(k) for k in ("GREETING", "PASSWORD", "POD_NAME", "NODE", "POD_IP", "HOST_IP",
                                         "APP", "MEM_LIMIT", "CPU_REQ", "EXPANDED", "greeting",
                                         "CM_greeting", "CM_1bad", "1bad")} == {
            "GREETING": "hello", "PASSWORD": SECRET, "POD_NAME": "cfgpod", "NODE": "node1",
            "POD_IP": obj["status"]["podIP"], "HOST_IP": lab.address("node1"), "APP": "demo",
            "MEM_LIMIT": "64", "CPU_REQ": "100", "EXPANDED": "x-hello-$(GREETING)", "greeting": "hello",
            "CM_greeting": "hello", "CM_1bad": "skipped", "1bad": None}
        assert int(env["CPU_LIMIT"]) <= cpus  # unset limit: the host's allocatable, rounded up
        files = podctl("exec", "cfgpod", "--", "sh", "-c",
                       "cat /etc/cfg/sub/c.txt /etc/creds/password; echo; stat -c %a /etc/creds/password; "
                       "touch /etc/creds/x 2>&1 || echo read-only").stdout.splitlines()
        assert files[:3] == ["line one", SECRET, "400"] and files[-1] == "read-only", files
        described = podctl("describe", "pod", "cfgpod").stdout
        assert "QoS Class:    Burstable" in described
        events = json.dumps(podctl("describe", "pod", "cfgpod").stdout)
        assert "InvalidEnvironmentVariableNames" in events and "1bad" in events

        # get/describe show no secret value; -o json shows it base64-encoded, as kubectl does
        assert SECRET not in podctl("get", "secrets").stdout + podctl("describe", "secret", "creds").stdout
        shown = json.loads(podctl("get", "secret", "creds", "-o", "json").stdout)
        assert shown["type"] == "Opaque" and "stringData" not in shown and SECRET not in json.dumps(shown)
        assert "cfg" in podctl("get", "cm").stdout

        # not in any process's argv on the host, nor in the container's log
        cmdlines = lab.ssh("node1", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '", check=True).stdout
        assert "sleep 3600" in cmdlines and SECRET not in cmdlines
        log = podctl("logs", "cfgpod").stdout
        assert log.strip() == "started hello" and SECRET not in log
        # on disk nowhere; in memory only in the pod's tmpfs (0700), the env file 0600
        r = lab.ssh("node1", "grep -rlF -f /dev/stdin /var/lib/podctl /run/podctl; true", input=SECRET + "\n",
                    check=True)
        hits = sorted(r.stdout.split())
        tmpfs = f"/run/podctl/pods/{uid}/secrets"
        assert hits and all(h.startswith(tmpfs + "/") for h in hits), hits
        r = lab.ssh("node1", f"stat -c '%a %n' {tmpfs} {tmpfs}/env/app/*; grep -c ' {tmpfs} ' /proc/self/mountinfo",
                    check=True).stdout.splitlines()
        assert r[0] == f"700 {tmpfs}" and all(line.startswith("600 ") for line in r[1:-1]) and r[-1] == "1", r
        assert lab.ssh("node1", "stat -c %a /var/lib/podctl/.. /var/lib/podctl", check=True).stdout.split()[-1] == "700"
    finally:
        podctl("delete", "-f", "-", input=objects(SECRET), check=False)
    print(f"\nconfig objects: {time.monotonic() - started:.1f}s")


WAITS = manifest("""
    apiVersion: v1
    kind: Pod
    metadata: {name: waiter}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox:latest
        command: ["sleep", "3600"]
        env:
        - {name: TOKEN, valueFrom: {secretKeyRef: {name: later, key: token}}}
""")
LATER = manifest("""
    apiVersion: v1
    kind: Secret
    metadata: {name: later}
    data: {token: dG9rZW4=}
""")


def test_missing_secret_holds_the_pod_until_it_exists(podctl):
    try:
        podctl("apply", "-f", "-", input=WAITS, check=False)
        obj = pod_json(podctl, "waiter")
        waiting = obj["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting == {"reason": "CreateContainerConfigError", "message": 'secret "later" not found'}
        assert "CreateContainerConfigError" in podctl("get", "pods", "waiter").stdout
        podctl("apply", "-f", "-", input=LATER)
        wait_for(podctl, "waiter", lambda o: o["status"]["phase"] == "Running")
        assert podctl("exec", "waiter", "--", "sh", "-c", "echo $TOKEN").stdout.strip() == "token"
    finally:
        podctl("delete", "pod", "waiter", check=False)
        podctl("delete", "secret", "later", check=False)


FORK = manifest("""
    apiVersion: v1
    kind: Pod
    metadata: {name: forker}
    spec:
      terminationGracePeriodSeconds: 1
      nodeName: node2
      containers:
      - name: app
        image: busybox:latest
        command: ["sh", "-c", "i=0; while [ $i -lt 200 ]; do sleep 300 & i=$((i+1)); done; sleep 300"]
""")


def test_pids_limit_contains_a_fork_bomb(lab, podctl):
    settings = lab.home / "config.yaml"
    assert not settings.exists()
    settings.write_text("kubelet:\n  podPidsLimit: 40\n")
    try:
        podctl("apply", "-f", "-", input=FORK, check=False)
        uid = wait_for(podctl, "forker", lambda o: o["status"]["phase"] == "Running")["metadata"]["uid"]
        time.sleep(1.5)
        r = lab.ssh("node2", f"d=$(find /sys/fs/cgroup -maxdepth 3 -type d -name {uid} | head -1); "
                             f"cat $d/pids.max; cat $d/pids.current", check=True).stdout.split()
        assert r[0] == "40" and int(r[1]) <= 40, r
        assert json.loads(podctl("get", "pods", "forker", "-o", "json").stdout)["status"]["qosClass"] == "BestEffort"
    finally:
        settings.unlink()
        podctl("delete", "pod", "forker", check=False)

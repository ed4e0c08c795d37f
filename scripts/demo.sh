#!/usr/bin/env bash
# The podctl demo: a local lab of 3 SSH hosts, a two-container pod, the tables.
# Run as root after scripts/install.sh. Safe to run again. The lab stays up so you
# can explore; `podctl lab down` removes every trace of it.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step podctl lab up --hosts 3
step podctl hosts
step podctl apply -f examples/web.yaml
step podctl get pods -o wide
step podctl exec web -c client -- wget -qO- http://127.0.0.1:8080/
step podctl exec web -c client -- sh -c 'hostname; ls -l /proc/self/ns/net /proc/self/ns/mnt'
step podctl exec web -c server -- sh -c 'hostname; ls -l /proc/self/ns/net /proc/self/ns/mnt'
sleep 2
step podctl logs web -c client --tail 3
step podctl describe pod web
step podctl reconcile
# A Kubernetes documentation example, unchanged: an app and its log-shipping sidecar.
step podctl apply -f tests/e2e/k8s_examples/application__deployment-sidecar.yaml
sleep 3
step podctl get pods
step podctl logs deployment/myapp -c logshipper --tail 3
step podctl image ls
cat <<'TXT'

The pod runs on a lab host (an SSH server in its own namespaces). Try:
  podctl get pods -o json | jq .
  podctl delete pod web
  podctl apply -f tests/e2e/k8s_examples/   # every example from the Kubernetes docs we test
  podctl lab down            # removes the lab: namespaces, links, cgroups, files
TXT

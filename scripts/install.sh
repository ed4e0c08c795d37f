#!/usr/bin/env bash
# Installs what podctl and its tests need on a Debian machine (run as root):
# the controller's Python packages, and for the local lab the machine's real sshd,
# iproute2, util-linux and a static busybox to build the demo image from; nftables for
# the chaos suite's packet loss (this kernel has no netem); a real OCI registry (Debian's
# docker-registry), skopeo and htpasswd (apache2-utils) for the registry tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in openssh-server openssh-client busybox-static iproute2 util-linux tar procps shellcheck nftables python3-minimal \
           docker-registry skopeo apache2-utils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

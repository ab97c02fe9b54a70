#!/usr/bin/env bash
# Set up realm on a fresh Debian machine (as root): system packages, npm dependencies, build.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(bubblewrap libseccomp-dev gcc make libc6-dev util-linux mount procps iproute2 python3 busybox-static tmux slirp4netns nftables curl git openssh-client docker-registry runsc mmdebstrap qemu-system-x86 cpio)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "realm setup: missing system packages: ${missing[*]} — run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "realm setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies: install when package.json changed since the last install.
stamp=node_modules/.realm-install-stamp
want=$(cat package.json packages/sdk/package.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "realm setup: installing npm dependencies"
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

bash scripts/build.sh

# Put `realm` on PATH where we can.
if [ "$(id -u)" -eq 0 ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
  ln -sf "$PWD/bin/realm" /usr/local/bin/realm
fi
echo "realm setup: ready (bin/realm)"

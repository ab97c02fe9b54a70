#!/usr/bin/env bash
# Set up realm on a fresh Debian machine (as root): system packages, npm dependencies, build.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(bubblewrap libseccomp-dev gcc make libc6-dev util-linux mount procps iproute2 python3 busybox-static tmux slirp4netns nftables curl git openssh-client docker-registry runsc mmdebstrap qemu-system-x86 cpio clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt etcd-server prometheus chromium)

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
  # chromium is for the dashboard's browser test (test/browser/, driven by playwright-core, which downloads no browser).
  # prometheus is here for promtool (the metrics test checks a scrape with it), not for a server
  # listening on every address: the one its package just started is stopped and disabled.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# npm dependencies: install when package.json changed since the last install.
stamp=node_modules/.realm-install-stamp
want=$(cat package.json packages/sdk/package.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "realm setup: installing npm dependencies"
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# The wasm driver's engine: Wasmtime's official Python bindings (the engine is inside the wheel),
# from pip's configured index, where every sandbox sees it (the host image's read-only /usr).
WASMTIME_VERSION=49.0.0
wasmtime_dir=/usr/local/lib/realm/wasmtime
if [ ! -d "$wasmtime_dir/wasmtime-$WASMTIME_VERSION.dist-info" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "realm setup: the wasm driver wants Wasmtime: run as root, or: pip install --target $wasmtime_dir wasmtime==$WASMTIME_VERSION" >&2
  elif command -v pip >/dev/null || command -v pip3 >/dev/null; then
    echo "realm setup: installing Wasmtime $WASMTIME_VERSION for the wasm driver"
    rm -rf "$wasmtime_dir.new"
    if "$(command -v pip || command -v pip3)" install -q --disable-pip-version-check --retries 0 --timeout 5 --no-deps --only-binary :all: --target "$wasmtime_dir.new" "wasmtime==$WASMTIME_VERSION" 2>&1 | grep -v "as the 'root' user" >&2; [ -d "$wasmtime_dir.new/wasmtime" ]; then
      rm -rf "$wasmtime_dir" && mv "$wasmtime_dir.new" "$wasmtime_dir"
    else
      echo "realm setup: Wasmtime could not be installed; the wasm driver stays unavailable (realm doctor says why)" >&2
    fi
  else
    echo "realm setup: no pip: the wasm driver stays unavailable until Wasmtime is in $wasmtime_dir" >&2
  fi
fi

bash scripts/build.sh

# The wasm runners, where every sandbox sees them (replaced when this realm's differ).
runner_dir=/usr/local/lib/realm/wasm-runner
if [ "$(id -u)" -eq 0 ]; then
  for f in build/native/realm-wasm build/native/realm-wasm-http src/drivers/wasm/runner.py src/drivers/wasm/realm_wasmtime.py; do
    if ! cmp -s "$f" "$runner_dir/$(basename "$f")"; then
      install -D -m 0755 "$f" "$runner_dir/$(basename "$f").new" && mv -f "$runner_dir/$(basename "$f").new" "$runner_dir/$(basename "$f")"
    fi
  done
fi

# Put `realm` on PATH where we can.
if [ "$(id -u)" -eq 0 ] && [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
  ln -sf "$PWD/bin/realm" /usr/local/bin/realm
fi
echo "realm setup: ready (bin/realm)"

#!/usr/bin/env bash
# Build everything: the static native helpers, the SO_PEERCRED addon and the TypeScript (SDK first, then the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C native
# The daemon reads a unix-socket caller's uid with SO_PEERCRED, which Node has no API for: a tiny
# N-API addon, built by the node-gyp that ships with npm against the installed Node's headers.
addon=build/native/peercred.node
if [ native/peercred/peercred.c -nt "$addon" ] || [ native/peercred/binding.gyp -nt "$addon" ]; then
  gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  nodedir=()
  [ -f /usr/include/node/node_api.h ] && nodedir=(--nodedir=/usr)
  (cd native/peercred && node "$gyp" rebuild "${nodedir[@]}" --loglevel=error >/dev/null)
  mkdir -p build/native
  cp native/peercred/build/Release/peercred.node "$addon"
  rm -rf native/peercred/build
fi
npx tsc -b

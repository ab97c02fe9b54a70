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

# The CLI's start-up: every command pays for loading its modules, and Node's ESM loader takes
# a share of a millisecond or more for each file. esbuild bundles program.ts, the commands, the
# SDK and commander into a few files beside it (program.bundle*.js: one for what every command
# loads, one per command, and what some share); main.js loads them when they are there. Left as
# they are, loaded from their own files: the npm packages the daemon uses (native ones among
# them) and realm's modules outside src/cli/, which find files from where they live and share
# state (the daemon's RealmError) with the daemon that `realm serve` runs in the same process.
# src/mcp/ is bundled: `realm mcp` hands it the CLI's client, so both must see one copy of the SDK.
# Rebuilt each time (tens of ms): a bundle older than the modules would run old code.
externals=()
for f in dist/src/*; do
  case "$(basename "$f")" in
    cli | mcp | *.map | *.d.ts) ;;
    *.js) externals+=("--external:./$f") ;;
    *) [ -d "$f" ] && externals+=("--external:./$f/*") ;;
  esac
done
for p in $(node -p "Object.keys({...require('./package.json').dependencies, ...require('./packages/sdk/package.json').dependencies}).join(' ')"); do
  case "$p" in commander | @realm/sdk) ;; *) externals+=("--external:$p") ;; esac
done
rm -f dist/src/cli/program.bundle*.js dist/src/cli/program.bundle*.js.map
# commander is CommonJS: in an ES module bundle its require() of Node's modules needs one.
# Without comments and spaces the files parse faster; the source maps (tsc's, carried on) lead back
# to the sources for `node --enable-source-maps`.
npx esbuild dist/src/cli/program.js --bundle --splitting --format=esm --platform=node --target=node20 --log-level=warning \
  --minify-whitespace --minify-syntax --sourcemap --outdir=dist/src/cli --entry-names='[name].bundle' --chunk-names='program.bundle-[hash]' "${externals[@]}" \
  --banner:js="import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);"

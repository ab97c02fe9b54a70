#!/usr/bin/env bash
# Build everything: the static native helpers, the SO_PEERCRED addon and the TypeScript (SDK first, then the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C native
# The daemon reads a unix-socket caller's uid with SO_PEERCRED and dials into sandboxes' network
# namespaces (preview URLs), which Node has no API for: a tiny
# N-API addon, built by the node-gyp that ships with npm against the installed Node's headers.
addon=build/native/peercred.node
if [ -n "$(find native/peercred -newer "$addon" -type f 2>/dev/null)" ] || [ ! -f "$addon" ]; then
  gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  nodedir=()
  [ -f /usr/include/node/node_api.h ] && nodedir=(--nodedir=/usr)
  (cd native/peercred && node "$gyp" rebuild "${nodedir[@]}" --loglevel=error >/dev/null)
  mkdir -p build/native
  cp native/peercred/build/Release/peercred.node "$addon"
  rm -rf native/peercred/build
fi
npx tsc -b
# The dashboard (web/, see web/README.md): type-checked, then bundled by Vite into dist/web, which
# the daemon serves at /ui/ (src/daemon/ui.ts). Rebuilt when anything in web/ is newer than it.
if [ ! -f dist/web/index.html ] || [ -n "$(find web package-lock.json -type f -newer dist/web/index.html 2>/dev/null | head -n 1)" ]; then
  npx tsc -p web/tsconfig.json
  npx vite build web --logLevel warn
fi

# The CLI's start-up: every command pays for loading its modules, and Node's ESM loader takes a
# share of a millisecond or more for each file (and more for each round of import()s). esbuild
# bundles program.ts, the commands, the SDK and commander into one CommonJS file beside it
# (program.bundle.cjs), which main.js requires when it is there: ~10 ms less for `realm run` than
# the same code as ES module chunks. Left out, loaded from tsc's files by import() as before:
# - `serve` and `mcp` (commands/serve.js, commands/mcp.js) with all they load: the daemon's modules
#   find files from where they live and share state (the daemon's RealmError) with the command,
#   and the MCP server takes the command's client (one copy of the SDK's classes on each side);
# - realm's other modules (ES modules, which Node 20 cannot require): only import() may reach
#   them from the bundle, which the check below holds to; config, version, util/errors and util/units (no
#   state, no files) are copied in;
# - the npm packages the daemon uses, native ones among them.
# Rebuilt each time (tens of ms): a bundle older than the modules would run old code.
externals=(--external:./dist/src/cli/commands/serve.js --external:./dist/src/cli/commands/mcp.js)
for f in dist/src/* dist/src/util/*.js; do
  case "${f#dist/src/}" in
    cli | util | config.js | version.js | util/errors.js | util/units.js | *.map | *.d.ts) ;;
    *.js) externals+=("--external:./$f") ;;
    *) [ -d "$f" ] && externals+=("--external:./$f/*") ;;
  esac
done
for p in $(node -p "Object.keys({...require('./package.json').dependencies, ...require('./packages/sdk/package.json').dependencies}).join(' ')"); do
  case "$p" in commander | @realm/sdk) ;; *) externals+=("--external:$p") ;; esac
done
rm -f dist/src/cli/program.bundle*
# import.meta.url (the daemon's path for starting one, cli-table3's require) is the bundle's own,
# beside the modules it was bundled from. Without comments and spaces the file parses faster; the
# source map (tsc's, carried on) leads back to the sources for `node --enable-source-maps`.
npx esbuild dist/src/cli/program.js --bundle --format=cjs --platform=node --target=node20 --log-level=warning \
  --minify-whitespace --minify-syntax --sourcemap --outfile=dist/src/cli/program.bundle.cjs "${externals[@]}" \
  --define:import.meta.url=__bundleUrl --banner:js="var __bundleUrl = require('node:url').pathToFileURL(__filename).href;"
if grep -Eo 'require\("\.[^"]*"\)' dist/src/cli/program.bundle.cjs; then
  echo "build: the CLI bundle requires realm's ES modules above (Node 20 cannot): import() them, or bundle them" >&2
  exit 1
fi

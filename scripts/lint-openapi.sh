#!/usr/bin/env bash
# Lint the OpenAPI document the daemon serves (/v1/openapi.json) with redocly's recommended rules
# (redocly.yaml). Reads the built tree: run scripts/build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node --input-type=module -e "import { openapiDocument } from './dist/src/daemon/openapi.js'; process.stdout.write(JSON.stringify(openapiDocument(), null, 1));" >"$tmp/openapi.json"
# No telemetry or update checks (and no network needed); redocly's Node 20 notice goes to /dev/null.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1
node node_modules/@redocly/cli/bin/cli.js lint --config redocly.yaml --format stylish "$tmp/openapi.json" 2>&1 | { grep -v '[║╔╚]' || true; }

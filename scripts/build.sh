#!/usr/bin/env bash
# Build everything: the static native helpers and the TypeScript (SDK first, then the rest).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C native
npx tsc -b

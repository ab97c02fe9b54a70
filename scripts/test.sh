#!/usr/bin/env bash
# Lint, then every test: unit, conformance (each driver), hostile programs, end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
npx eslint --max-warnings 0 .
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
# One file at a time: the suites start daemons and sandboxes and measure the host between cases.
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"

#!/usr/bin/env bash
# Lint, then every test: unit, conformance (each driver), hostile programs, end to end. Then the
# hostile programs again on each other driver this host offers (gvisor, microvm — under emulation
# where KVM cannot boot guests); where one is unavailable its cases skip with the reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."
npx eslint --max-warnings 0 .
# One layout for the code (.prettierrc.json); `npm run format` applies it.
npx prettier --check . > /dev/null || { npx prettier --list-different .; echo 'prettier: run npm run format' >&2; exit 1; }
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
mapfile -t hostile < <(find dist/test/hostile -name '*.test.js' | sort)
# One file at a time: the suites start daemons and sandboxes and measure the host between cases.
status=0
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" || status=1
for driver in gvisor microvm; do
  echo "# hostile programs on the ${driver} driver (REALM_TEST_DRIVER=${driver})"
  start=$(date +%s)
  REALM_TEST_DRIVER=$driver node --test --test-concurrency=1 --test-reporter=spec "${hostile[@]}" || status=1
  echo "# hostile programs on ${driver}: $(($(date +%s) - start)) s"
done
exit $status

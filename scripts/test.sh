#!/usr/bin/env bash
# Lint, then every test: unit, conformance (each driver), hostile programs, end to end. Then the
# hostile programs again on each other driver this host offers (gvisor, microvm — under emulation
# where KVM cannot boot guests); where one is unavailable its cases skip with the reason printed.
#
# Slow suites run once, not once per driver, unless the driver is what they test. So the re-runs
# on gvisor and microvm take only the files directly in test/hostile/ (hostile programs inside a
# sandbox: what they meet is the driver's). Files in test/hostile/daemon/ test the daemon's own
# boundaries (HTTP guard, unix socket and tokens, data dir modes, image directories), which no
# driver takes part in: they run in the first pass only, as do those in test/hostile/jobs/ (the job
# path: archives unpacked and artifacts read inside the sandbox by the same code on every driver).
# A new hostile file goes in test/hostile/
# (every driver) unless no driver can change its outcome.
#
# Test files are named from their sources (test/**/*.test.ts), so a compiled file whose source was
# moved or removed (tsc -b leaves it in dist) is not run.
set -euo pipefail
cd "$(dirname "$0")/.."
npx eslint --max-warnings 0 .
# One layout for the code (.prettierrc.json); `npm run format` applies it.
npx prettier --check . > /dev/null || { npx prettier --list-different .; echo 'prettier: run npm run format' >&2; exit 1; }
compiled() { sed -e 's|^|dist/|' -e 's|\.ts$|.js|'; }
mapfile -t files < <(find test -name '*.test.ts' | sort | compiled)
mapfile -t hostile < <(find test/hostile -maxdepth 1 -name '*.test.ts' | sort | compiled)
# One file at a time: the suites start daemons and sandboxes and measure the host between cases.
status=0
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}" || status=1
for driver in gvisor microvm; do
  echo "# hostile programs on the ${driver} driver (REALM_TEST_DRIVER=${driver}; test/hostile/daemon/ ran once above)"
  start=$(date +%s)
  REALM_TEST_DRIVER=$driver node --test --test-concurrency=1 --test-reporter=spec "${hostile[@]}" || status=1
  echo "# hostile programs on ${driver}: $(($(date +%s) - start)) s"
done
exit $status

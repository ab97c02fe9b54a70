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
# Every test file, then the hostile files again on gvisor and microvm, shared by two lanes (one
# file each at a time; see test/run/lanes.ts for why that is safe and what it prints).
node dist/test/run/lanes.js

/**
 * Job specs: TOML and JSON through one schema; a bad spec is refused whole with the key and its
 * line; paths stay inside the working directory. Cron firings through daylight saving time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJobSpec, parseJobToml } from '../../src/jobs/spec.js';
import { missedFirings, nextFiring } from '../../src/jobs/schedule.js';

const BUILD = `name = "build"

[run]
image = "host"
command = "make"
memory = "1g"
timeout = "10m"

[[inputs]]
source = "cas:sha256:${'ab'.repeat(32)}"
dest = "src.tar.gz"
unpack = true

[[inputs]]
artifact = "tools#3:cc"
dest = "bin/cc"

[[artifacts]]
path = "app"
name = "app"
`;

void test('a TOML spec and its JSON twin give the same job, defaults filled in', () => {
  const spec = parseJobToml(BUILD);
  assert.equal(spec.type, 'batch');
  assert.equal(spec.run.memory, 1024 ** 3);
  assert.equal(spec.run.timeout, 600_000);
  assert.equal(spec.run.cpus, 1);
  assert.deepEqual(spec.retry, { attempts: 1, delay: 5_000, backoff: 'constant', max_delay: 3_600_000 });
  assert.equal(spec.inputs[1]?.unpack, false);
  assert.deepEqual(parseJobSpec(JSON.parse(JSON.stringify({ ...spec, run: { ...spec.run } }))), spec);
  assert.deepEqual(parseJobSpec({ name: 'x', run: { command: ['make', '-j2'] } }).run.command, ['make', '-j2']);
});

void test('a bad spec names the key and its line, and says what to change', () => {
  const bad = (toml: string, re: RegExp): void => {
    assert.throws(
      () => parseJobToml(toml),
      (e: Error & { code?: string }) => e.code === 'JOB_SPEC_INVALID' && re.test(e.message),
    );
  };
  bad(BUILD.replace('memory = "1g"', 'memory = "lots"'), /line 6: run\.memory: "lots" is not a size/);
  bad(BUILD.replace('timeout = "10m"', 'timout = "10m"'), /line 7: run\.timout: unknown key/);
  bad(BUILD.replace('unpack = true', 'unpack = "yes"'), /line 12: inputs\[0\]\.unpack: .*boolean/);
  bad(
    BUILD.replace('dest = "bin/cc"', 'dest = "../../etc/cc"'),
    /line 16: inputs\[1\]\.dest: \.\.\/\.\.\/etc\/cc is outside the working directory \/home\/user/,
  );
  bad(BUILD.replace('path = "app"', 'path = "/etc/passwd"'), /line 19: artifacts\[0\]\.path: \/etc\/passwd is outside/);
  bad(BUILD.replace('path = "app"', 'path = "."'), /artifacts\[0\]\.path: \. is outside/);
  bad(BUILD.replace('command = "make"', ''), /line 3: run\.command: required, missing/);
  bad(BUILD.replace('artifact = "tools#3:cc"', 'artifact = "tools"'), /line 15: inputs\[1\]\.artifact: artifact is JOB:NAME/);
  bad(BUILD.replace(`source = "cas:sha256:${'ab'.repeat(32)}"`, 'source = "cas:sha256:12"'), /line 10: inputs\[0\]\.source/);
  bad(BUILD.replace('name = "build"', 'name = "build"\ntype = "cron"'), /schedule: a cron job has a \[schedule\]/);
  bad(BUILD + '\n[schedule]\ncron = ["61 * * * *"]\n', /schedule/);
  bad(
    `name = "c"\ntype = "cron"\n[schedule]\ncron = ["0 3 * * *", "99 * * * *"]\n[run]\ncommand = "true"\n`,
    /line 4: schedule\.cron\[1\]: "99 \* \* \* \*" is not a cron expression/,
  );
  bad(
    `name = "c"\ntype = "cron"\n[schedule]\ncron = ["0 3 * * *"]\ntimezone = "Mars/Olympus"\n[run]\ncommand = "true"\n`,
    /line 5: schedule\.timezone: timezone is an IANA zone/,
  );
  bad('name = "x"\n[run\ncommand = "x"\n', /^line 2: /);
  assert.throws(
    () => parseJobSpec({ name: 'x', run: { command: 'true', image: 'host', language: 'c' } }),
    /give image or language, not both/,
  );
});

void test('cron in a time zone: the skipped hour neither skips nor doubles a daily firing', () => {
  const tz = 'Europe/Berlin'; // 2026-03-29 02:00 → 03:00; 2026-10-25 03:00 → 02:00
  const days = (expr: string, from: string, n: number): string[] => {
    const out: string[] = [];
    let at = new Date(from);
    for (let i = 0; i < n; i++) {
      const d = nextFiring([expr], tz, at);
      assert.ok(d);
      out.push(d.toISOString());
      at = d;
    }
    return out;
  };
  // 02:30 does not exist on the 29th: it fires at 03:00 CEST that day, once.
  assert.deepEqual(days('30 2 * * *', '2026-03-27T12:00:00Z', 3), [
    '2026-03-28T01:30:00.000Z',
    '2026-03-29T01:00:00.000Z',
    '2026-03-30T00:30:00.000Z',
  ]);
  // 02:30 happens twice on 25 October: it fires once.
  assert.deepEqual(days('30 2 * * *', '2026-10-24T12:00:00Z', 3), [
    '2026-10-25T00:30:00.000Z',
    '2026-10-26T01:30:00.000Z',
    '2026-10-27T01:30:00.000Z',
  ]);
  // The earliest of several expressions; seconds resolution when asked.
  assert.equal(
    nextFiring(['0 5 * * *', '0 4 * * *'], 'UTC', new Date('2026-01-01T00:00:00Z'))?.toISOString(),
    '2026-01-01T04:00:00.000Z',
  );
  assert.equal(nextFiring(['*/2 * * * * *'], 'UTC', new Date('2026-01-01T00:00:00Z'))?.toISOString(), '2026-01-01T00:00:02.000Z');
});

void test('firings missed while the node was down: skip, latest or all, each skipped one with its reason', () => {
  const last = new Date('2026-01-01T00:00:00Z');
  const now = new Date('2026-01-01T05:30:00Z');
  const hourly = ['0 * * * *'];
  const skip = missedFirings(hourly, 'UTC', last, now, 'skip');
  assert.equal(skip.run.length, 0);
  assert.equal(skip.skipped.length, 5);
  const latest = missedFirings(hourly, 'UTC', last, now, 'latest');
  assert.deepEqual(
    latest.run.map((d) => d.toISOString()),
    ['2026-01-01T05:00:00.000Z'],
  );
  assert.equal(latest.skipped.length, 4);
  assert.match(latest.skipped[0]?.reason ?? '', /only the latest/);
  const all = missedFirings(hourly, 'UTC', last, now, 'all');
  assert.equal(all.run.length, 5);
  assert.equal(all.skipped.length, 0);
  const flood = missedFirings(['* * * * *'], 'UTC', last, new Date('2026-01-01T03:00:00Z'), 'all');
  assert.equal(flood.run.length, 100);
  assert.equal(flood.skipped.length, 80);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSize, parseCpus, parseDuration, parseSize } from '../../src/util/units.js';
import { createSandboxSchema, runSchema } from '../../src/engine/schemas.js';

void test('sizes in the units people write', () => {
  assert.equal(parseSize('512m'), 512 * 1024 ** 2);
  assert.equal(parseSize('2g'), 2 * 1024 ** 3);
  assert.equal(parseSize('2GiB'), 2 * 1024 ** 3);
  assert.equal(parseSize('64k'), 65536);
  assert.equal(parseSize('100'), 100);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ['', 'm', '-1m', '1.5.5m', '12q', '1e3', ' ', 'NaN']) assert.equal(parseSize(bad), null, bad);
  assert.equal(parseSize(-1), null);
  assert.equal(parseSize(1.5), null);
});

void test('durations and cpus', () => {
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('10'), 10_000);
  assert.equal(parseDuration(250), 250);
  for (const bad of ['soon', '-1s', '1y', '']) assert.equal(parseDuration(bad), null, bad);
  assert.equal(parseCpus('1.5'), 1.5);
  assert.equal(parseCpus(0), null);
  assert.equal(parseCpus('x'), null);
  assert.equal(formatSize(512 * 1024 ** 2), '512.0 MiB');
});

void test('schemas fill defaults and refuse what they do not know', () => {
  const d = createSandboxSchema.parse({});
  assert.equal(d.image, 'host');
  assert.equal(d.network, 'none');
  assert.equal(d.memory, 512 * 1024 ** 2);
  assert.throws(() => createSandboxSchema.parse({ unknown: 1 }));
  assert.throws(() => createSandboxSchema.parse({ memory: '1k' }), /outside/);
  // A unit field of the wrong type says what it takes, not zod's bare "Invalid input".
  assert.throws(() => createSandboxSchema.parse({ memory: true }), /a size is a string such as 512m or a number, not boolean/);
  assert.throws(
    () => createSandboxSchema.parse({ cpus: [1] }),
    /a number of CPUs is a string such as 1\.5 or a number, not an array/,
  );
  assert.throws(() => runSchema.parse({ language: 'python', code: '', timeout: {} }), /a duration is a string such as 10s/);
  assert.throws(() => createSandboxSchema.parse({ env: { 'BAD-NAME': 'x' } }));
  assert.throws(() => createSandboxSchema.parse({ volumes: [{ volume: '../x', path: '/data' }] }));
  assert.throws(() => runSchema.parse({ language: 'python' }), /code/);
  assert.equal(runSchema.parse({ language: 'python', code: '' }).timeout, 10_000);
});

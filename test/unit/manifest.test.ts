/**
 * Signed manifests, the parts that need no daemon: canonical bytes (key order and whitespace do
 * not change a signature; any changed value does), public key text and fingerprints, the owner
 * key file (mode 0600, never replaced, refused when others can read it), TOML errors naming key
 * and line, export TOML that parses back to the same services, and diffs.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RealmError } from '../../src/util/errors.js';
import {
  canonicalBytes,
  fingerprint,
  generateOwnerKey,
  parsePublicKey,
  publicKeyText,
  signPayload,
  verifyPayload,
} from '../../src/signing/keys.js';
import { defaultKeyPath } from '../../src/config.js';
import { createKeyFile, loadKeyFile } from '../../src/signing/key-file.js';
import { manifestOf, signedManifestSchema } from '../../src/services/manifest-spec.js';
import { manifestToml, parseManifestToml } from '../../src/services/manifest-toml.js';
import { diffApps, diffServices } from '../../src/services/manifest-diff.js';

const refused = (code: string, message?: RegExp) => (e: unknown) =>
  e instanceof RealmError && e.code === code && (!message || message.test(e.message));

const WEB = `# a comment
[services.web]
image = "host"
command = "python3 -m http.server 8000"
port = 8000
replicas = 2
memory = "256m"
env = { GREETING = "hi" }

[services.web.health]
path = "/"
interval = "5s"

[services.api]
image = "host"
command = "sleep infinity"
port = 9000
restart = { delay = "200ms" }
`;

void test('canonical bytes: key order and spacing do not matter, and nested keys are sorted too', () => {
  const a = canonicalBytes({ b: 1, a: { d: [1, 'x'], c: 0.5 } }).toString();
  const b = canonicalBytes(JSON.parse('{ "a" : { "c": 0.5, "d": [1, "x"] }, "b": 1 }')).toString();
  assert.equal(a, '{"a":{"c":0.5,"d":[1,"x"]},"b":1}');
  assert.equal(a, b);
});

void test('a signature verifies over the same manifest however its keys are ordered, and not over a changed one', () => {
  const { privateKey, publicKey } = generateOwnerKey();
  const pub = publicKeyText(publicKey);
  const m = manifestOf(parseManifestToml(WEB).services, 3);
  const sig = signPayload(privateKey, m);
  const reordered = JSON.parse(
    JSON.stringify({ apps: m.apps, services: m.services, version: m.version, kind: m.kind }),
  ) as unknown;
  assert.equal(verifyPayload(pub, reordered, sig), true);
  const tampered = structuredClone(m);
  tampered.services.web.replicas = 3;
  assert.equal(verifyPayload(pub, tampered, sig), false);
  assert.equal(verifyPayload(pub, { ...m, version: 4 }, sig), false, 'the version is signed');
  const other = publicKeyText(generateOwnerKey().publicKey);
  assert.equal(verifyPayload(other, m, sig), false, "another key's");
  assert.equal(verifyPayload(pub, m, `${sig.slice(0, -4)}AAA=`), false);
  assert.equal(verifyPayload(pub, m, 'not base64!'), false);
});

void test('public keys: text form round-trips, fingerprints are SHA256:…, anything else is KEY_INVALID', () => {
  const { publicKey, privateKey } = generateOwnerKey();
  const text = publicKeyText(publicKey);
  assert.match(text, /^realm-ed25519:[A-Za-z0-9+/]{43}=$/);
  assert.equal(publicKeyText(privateKey), text);
  assert.equal(publicKeyText(parsePublicKey(`  ${text}\n`)), text);
  assert.match(fingerprint(text), /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.equal(fingerprint(text), fingerprint(publicKey));
  assert.throws(() => parsePublicKey('ssh-ed25519 AAAA'), refused('KEY_INVALID'));
  assert.throws(() => parsePublicKey('realm-ed25519:AAAA'), refused('KEY_INVALID'));
});

void test('the owner key file: made 0600, never replaced, refused when others can read it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-key-'));
  try {
    assert.equal(defaultKeyPath({ REALM_CONFIG: dir }), join(dir, 'owner.key'));
    assert.equal(defaultKeyPath({ HOME: '/h', XDG_CONFIG_HOME: '/x' }), '/x/realm/owner.key');
    const path = join(dir, 'sub', 'owner.key');
    const made = createKeyFile(path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.throws(() => createKeyFile(path), refused('KEY_EXISTS'));
    const loaded = loadKeyFile(path);
    assert.equal(loaded.publicKey, made.publicKey);
    assert.equal(verifyPayload(made.publicKey, { kind: 'x' }, signPayload(loaded.privateKey, { kind: 'x' })), true);
    chmodSync(path, 0o644);
    assert.throws(() => loadKeyFile(path), refused('KEY_INVALID', /chmod 600/));
    assert.throws(() => loadKeyFile(join(dir, 'none')), refused('KEY_NOT_FOUND', /realm key init/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('TOML: services in normal form (sizes in bytes, durations in ms, every default written)', () => {
  const s = parseManifestToml(WEB).services;
  assert.deepEqual(Object.keys(s).sort(), ['api', 'web']);
  assert.equal(s.web.memory, 256 * 1024 ** 2);
  assert.equal(s.web.health.interval, 5000);
  assert.equal(s.web.health.timeout, 1000);
  assert.equal(s.api.replicas, 1);
  assert.equal(s.api.restart.delay, 200);
  assert.equal(s.api.restart.max_delay, 3_600_000);
  // The signed form passes the node's own check unchanged.
  const m = manifestOf(s, 1);
  assert.deepEqual(signedManifestSchema.parse(m), m);
});

void test('TOML errors name the key and its line; nothing else is said valid', () => {
  const at = (text: string, re: RegExp): void => assert.throws(() => parseManifestToml(text), refused('MANIFEST_INVALID', re));
  at(WEB.replace('replicas = 2', 'replicas = 2\nreplica = 3'), /line 7: services\.web\.replica: unknown key/);
  at(WEB.replace('port = 8000', 'port = "8000"'), /line 5: services\.web\.port: /);
  at(WEB.replace('interval = "5s"', 'interval = "soon"'), /line 12: services\.web\.health\.interval: "soon" is not a duration/);
  at(WEB.replace('command = "sleep infinity"\n', ''), /services\.api\.command: required, missing/);
  at(WEB.replace('[services.api]', '[services.API]'), /services\.API: a service name/);
  at(`${WEB}\nversion = 3\n`, /version: unknown key/);
  at('[services.web]\nimage = \n', /line 2: /);
  at(WEB.replace('image = "host"', 'image = "host"\nsha256 = "abc"'), /line 4: services\.web\.sha256: a sha256 is 64/);
});

void test('export TOML parses back to the same services', () => {
  const s = parseManifestToml(WEB).services;
  s.web.sha256 = 'ab'.repeat(32);
  s.web.cpus = 0.5;
  s.api.memory = 1000 * 1024 * 1024 + 1; // not a whole unit: written in bytes
  const text = manifestToml(s, ['exported']);
  assert.match(text, /^# exported\n/);
  assert.match(text, /memory = "256m"/);
  assert.match(text, /interval = "5s"/);
  assert.deepEqual(parseManifestToml(text).services, s);
  assert.deepEqual(parseManifestToml(manifestToml({})), { services: {}, packaged: {}, apps: {} });
});

void test('diff: added, removed (only where allowed), changed fields; env values hidden', () => {
  const a = parseManifestToml(WEB).services;
  const b = structuredClone(a);
  b.web.replicas = 3;
  b.web.env = { GREETING: 'hello' };
  delete b.api;
  b.new = structuredClone(a.api);
  assert.deepEqual(diffServices(a, b), [
    { name: 'api', change: 'removed', fields: [] },
    { name: 'new', change: 'added', fields: [] },
    {
      name: 'web',
      change: 'changed',
      fields: [
        { field: 'env.GREETING', from: '(set)', to: '(set)' },
        { field: 'replicas', from: 2, to: 3 },
      ],
    },
  ]);
  assert.deepEqual(
    diffServices(a, b, (n) => n !== 'api').map((c) => c.name),
    ['new', 'web'],
  );
});

const APPS = `[apps.hello]
file = "hello.wasm"
memory = "32m"
timeout = "5s"

[apps.pinned]
sha256 = "${'cd'.repeat(32)}"
fuel = 1000000
visibility = "public"
replicas = 1
`;

void test('TOML apps: limits in base units with defaults; a module named by file or sha256; errors name key and line', () => {
  const { apps } = parseManifestToml(APPS);
  assert.deepEqual(apps.hello, { file: 'hello.wasm', memory: 32 * 1024 ** 2, timeout: 5000, visibility: 'local', replicas: 2 });
  assert.equal(apps.pinned?.fuel, 1_000_000);
  const at = (text: string, re: RegExp): void => assert.throws(() => parseManifestToml(text), refused('MANIFEST_INVALID', re));
  at(APPS.replace('timeout = "5s"', 'timeout = "5s"\ncolour = 1'), /line 5: apps\.hello\.colour: unknown key/);
  at(APPS.replace('file = "hello.wasm"\n', ''), /apps\.hello: name the module: file = "app\.wasm"/);
  at(APPS.replace('replicas = 1', 'replicas = 17'), /line 10: apps\.pinned\.replicas: /);
  at(APPS.replace(`sha256 = "${'cd'.repeat(32)}"`, 'sha256 = "cd"'), /line 7: apps\.pinned\.sha256: a sha256 is 64/);
  at(`${WEB}\n[apps.web]\nsha256 = "${'ab'.repeat(32)}"\n`, /apps\.web: "web" is both a service and an app/);
});

void test('apps are signed by digest and export back to the same apps; diff marks them', () => {
  const app = { sha256: 'ab'.repeat(32), memory: 64 * 1024 ** 2, timeout: 10_000, visibility: 'local' as const, replicas: 2 };
  const m = manifestOf({}, 1, { hello: app });
  assert.deepEqual(signedManifestSchema.parse(m), m);
  // A manifest signed before apps existed has none.
  assert.deepEqual(signedManifestSchema.parse({ kind: 'realm-manifest', version: 1, services: {} }).apps, {});
  const text = manifestToml({}, [], { hello: app });
  assert.match(text, /\[apps\.hello\]\nsha256 = "a/);
  assert.match(text, /memory = "64m"\ntimeout = "10s"/);
  assert.deepEqual(parseManifestToml(text).apps, { hello: app });
  assert.deepEqual(diffApps({ hello: app }, { hello: { ...app, sha256: 'cd'.repeat(32) } }), [
    { name: 'hello', change: 'changed', kind: 'app', fields: [{ field: 'sha256', from: app.sha256, to: 'cd'.repeat(32) }] },
  ]);
});

const PACKAGED = `[services.site]
package = "site-1.0.0.realm"
replicas = 2

[services.pinned]
package_sha256 = "${'ef'.repeat(32)}"
`;

void test('TOML packaged services: a package by file or sha256, replicas (default 1); other keys refused saying why; signed and exported by digest', () => {
  const { services, packaged } = parseManifestToml(`${WEB}\n${PACKAGED}`);
  assert.deepEqual(Object.keys(services).sort(), ['api', 'web']);
  assert.deepEqual(packaged, {
    site: { package: 'site-1.0.0.realm', replicas: 2 },
    pinned: { package_sha256: 'ef'.repeat(32), replicas: 1 },
  });
  const at = (text: string, re: RegExp): void => assert.throws(() => parseManifestToml(text), refused('MANIFEST_INVALID', re));
  at(
    PACKAGED.replace('replicas = 2', 'replicas = 2\nimage = "host"'),
    /line 4: services\.site\.image: a service from a package takes only package, package_sha256 and replicas/,
  );
  at(PACKAGED.replace('package_sha256 = "', 'package_sha256 = "x'), /line 6: services\.pinned\.package_sha256: a sha256 is 64/);
  at(PACKAGED.replace('replicas = 2', 'replicas = 99'), /line 3: services\.site\.replicas: /);
  const pkg = { package_sha256: 'ab'.repeat(32), replicas: 2 };
  const m = manifestOf({ site: pkg, web: parseManifestToml(WEB).services.web }, 1);
  assert.deepEqual(signedManifestSchema.parse(m), m);
  // The signed form takes no file name, and says which keys a packaged service takes.
  assert.throws(
    () => signedManifestSchema.parse({ ...m, services: { site: { ...pkg, package: 'x.realm' } } }),
    (e: unknown) => /takes only package_sha256 and replicas/.test(String(e)),
  );
  const text = manifestToml({ site: pkg });
  assert.match(text, /\[services\.site\]\npackage_sha256 = "a{1}b/);
  assert.deepEqual(parseManifestToml(text).packaged, { site: pkg });
  assert.deepEqual(diffServices({ site: pkg }, { site: { ...pkg, package_sha256: 'cd'.repeat(32) } }), [
    { name: 'site', change: 'changed', fields: [{ field: 'package_sha256', from: pkg.package_sha256, to: 'cd'.repeat(32) }] },
  ]);
});

void test('disconnect.stop_after: read from TOML, signed only when set, exported and diffed, the push spec', async () => {
  const { specOf, serviceOf } = await import('../../src/services/manifest-spec.js');
  const toml = '[services.w]\nimage = "host"\ncommand = "true"\nport = 8000\n\n[services.w.disconnect]\nstop_after = "30s"\n';
  const s = parseManifestToml(toml).services;
  assert.deepEqual(s.w?.disconnect, { stop_after: 30_000 });
  const spec = specOf('w', s.w);
  assert.deepEqual(spec.disconnect, { stopAfter: 30_000 });
  assert.deepEqual(serviceOf(spec), manifestOf(s, 1).services.w, 'export gives back what was signed');
  assert.match(manifestToml({ w: serviceOf(spec) }), /\[services\.w\.disconnect\]\nstop_after = "30s"/);
  const without = parseManifestToml(toml.replace(/\n\[services\.w\.disconnect\][^]*$/, '\n')).services;
  assert.equal('disconnect' in (manifestOf(without, 1).services.w ?? {}), false, 'unset: not in the signed form');
  assert.deepEqual(diffServices(without, s), [
    { name: 'w', change: 'changed', fields: [{ field: 'disconnect.stop_after', from: null, to: 30_000 }] },
  ]);
  assert.throws(
    () => parseManifestToml(toml.replace('"30s"', '"1s"')),
    (e: unknown) => e instanceof RealmError && e.code === 'MANIFEST_INVALID' && /disconnect\.stop_after/.test(e.message),
  );
});

/**
 * Wasm apps in signed manifests, through the CLI as an owner uses it: `realm apply` v1 with a CGI
 * app (its module file uploaded, its digest signed) and a process service, both served through
 * the gateway; an ad-hoc app left alone; a live push over it is drift; export and diff with apps; v2 with another module →
 * served; a module whose bytes are not the signed digest, a digest the node lacks and a file
 * whose sha256 is not the one written beside it → refused, nothing changed; v3 drops the app →
 * removed; an unknown key in an app's table names its line. A wasi:http component (built from WAT
 * in the test) as an app: applied, served through the gateway, replaced by a new version.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RealmError, apps } from '@realm/sdk';
import { realm as realmCli, type CliResult } from '../helpers/cli.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { wasmSkipReason, wat } from '../helpers/wasm.js';
import { HANDLER_WAT, httpComponent } from '../helpers/http-component.js';
import { loadKeyFile } from '../../src/signing/key-file.js';
import { signPayload } from '../../src/signing/keys.js';
import { manifestOf } from '../../src/services/manifest-spec.js';
import { parseManifestToml } from '../../src/services/manifest-toml.js';
import { until } from '../helpers/until.js';

const skip = (await namespaceSkipReason()) ?? (await wasmSkipReason());
if (skip) console.log(`# skipping manifest app tests: ${skip}`);

/** A CGI module that answers `hello WORD`. */
function hello(word: string): Promise<Buffer> {
  const text = `Content-Type: text/plain\\n\\nhello ${word}\\n`;
  const length = Buffer.byteLength(text.replace(/\\n/g, '\n'));
  return wat(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "${text}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const ${length}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const WEB = `[services.web]
image = "host"
command = "exec /usr/bin/python3 -m http.server 8000"
port = 8000
replicas = 1
memory = "128m"
health = { interval = "200ms" }
restart = { delay = "200ms" }
`;
const app = (file: string, extra = ''): string => `
[apps.hello]
file = "${file}"
memory = "32m"
timeout = "5s"
replicas = 1
${extra}`;

void describe('signed manifests with wasm apps', { skip }, () => {
  let t: TestDaemon;
  let gw = '';
  let dir = '';
  let v1: Buffer;
  let v2: Buffer;
  /** The wasi:http component (built while the daemon starts: it takes seconds). */
  let c1: Buffer;
  const cli = (args: string[]): Promise<CliResult> => realmCli(args, { url: t.url, env: { REALM_CONFIG: dir } });
  const file = (name: string, text: string | Buffer): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const refused = (r: CliResult, code: string): void => {
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`\\[${code}\\]`));
  };
  const get = async (path: string): Promise<{ status: number; text: string }> => {
    const r = await fetch(`${gw}${path}`);
    return { status: r.status, text: await r.text() };
  };

  before(async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), 'realm-manifest-apps-'));
    const building = httpComponent(HANDLER_WAT);
    [v1, v2] = await Promise.all([hello('v1'), hello('v2')]);
    file('hello1.wasm', v1);
    file('hello2.wasm', v2);
    t = await startTestDaemon({ warm: 1, gateway: '127.0.0.1:0' });
    c1 = await building;
    gw = t.daemon.gatewayUrl ?? '';
    const made = await cli(['key', 'init']);
    assert.equal(made.code, 0, made.stderr);
  });
  after(async () => {
    if (!t) return;
    for (const s of await t.client.services.list()) await t.client.services.remove(s.name);
    for (const a of await apps.list(t.client)) await apps.remove(a.name, t.client);
    assert.deepEqual(await leftovers(t), []);
    await t.close();
    removeTestDirs(t);
    rmSync(dir, { recursive: true, force: true });
  });

  void it('applies v1: the app (module uploaded, digest signed) and the service both served through the gateway; an ad-hoc app left alone', async () => {
    const adhoc = await cli(['push', 'adhoc', '--file', join(dir, 'hello2.wasm'), '--replicas', '1']);
    assert.equal(adhoc.code, 0, adhoc.stderr);
    const r = await cli(['apply', '--file', file('v1.toml', WEB + app('hello1.wasm')), '--version', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied version 1.*\n\+ web\n\+ app hello\n$/);
    assert.deepEqual(await get('/hello/'), { status: 200, text: 'hello v1\n' });
    const web = await until('web through the gateway', async () => {
      const g = await get('/web/');
      return g.status === 200 ? g : undefined;
    });
    assert.match(web.text, /Directory listing/);
    const s = await t.client.manifest.status();
    assert.deepEqual(s.apps, {
      hello: { sha256: sha(v1), memory: 32 * 1024 ** 2, timeout: 5000, visibility: 'local', replicas: 1 },
    });
    assert.deepEqual(Object.keys(s.unmanagedApps), ['adhoc']);
    assert.deepEqual(s.drift, []);
    assert.equal((await apps.get('hello', t.client)).sha256, sha(v1));
  });

  void it('a live push over a manifest app is drift; pushing its module back ends it', async () => {
    const pushed = await cli([
      'push',
      'hello',
      '--file',
      join(dir, 'hello2.wasm'),
      '--memory',
      '32m',
      '--timeout',
      '5s',
      '--replicas',
      '1',
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.deepEqual((await t.client.manifest.status()).drift, [
      { name: 'hello', change: 'changed', kind: 'app', fields: [{ field: 'sha256', from: sha(v1), to: sha(v2) }] },
    ]);
    assert.match(
      (await cli(['manifest', 'status'])).stdout,
      new RegExp(`drift:\\n  ~ app hello: sha256 ${sha(v1)} → ${sha(v2)}\\n`),
    );
    const back = await cli([
      'push',
      'hello',
      '--file',
      join(dir, 'hello1.wasm'),
      '--memory',
      '32m',
      '--timeout',
      '5s',
      '--replicas',
      '1',
    ]);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual((await t.client.manifest.status()).drift, []);
  });

  void it('exports apps by digest and the export applies back with no change; diff shows a new module', async () => {
    const out = join(dir, 'exported.toml');
    const exported = await cli(['manifest', 'export', '--file', out]);
    assert.equal(exported.code, 0, exported.stderr);
    const text = readFileSync(out, 'utf8');
    assert.match(text, new RegExp(`\\[apps\\.hello\\]\\nsha256 = "${sha(v1)}"\\nmemory = "32m"\\ntimeout = "5s"\\n`));
    assert.doesNotMatch(text, /adhoc/);
    assert.match((await cli(['manifest', 'export', '--all'])).stdout, /\[apps\.adhoc\]/);
    const same = await cli(['manifest', 'diff', out]);
    assert.equal(same.stdout, 'no change\napps left alone (ad hoc, not in a manifest): adhoc\n');
    // Applying the export sends no module: the node uses the one it keeps, hashed again.
    const back = await cli(['apply', '--file', out, '--version', '2']);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /\nno change\n$/);
    const next = await cli(['manifest', 'diff', file('v2.toml', WEB + app('hello2.wasm'))]);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, new RegExp(`^~ app hello: sha256 ${sha(v1)} → ${sha(v2)}\\n`));
  });

  void it('refuses a module whose bytes are not the signed digest, a digest the node lacks, and a file that is not its sha256 — nothing changed', async () => {
    const key = loadKeyFile(join(dir, 'owner.key'));
    const v3 = await hello('v3');
    const m = manifestOf(parseManifestToml(WEB).services, 3, {
      hello: { sha256: sha(v3), memory: 32 * 1024 ** 2, timeout: 5000, visibility: 'local', replicas: 1 },
    });
    const signature = signPayload(key.privateKey, m);
    const tampered = Buffer.from(v3);
    tampered[tampered.length - 20] ^= 1;
    const code = (c: string, re: RegExp) => (e: unknown) => e instanceof RealmError && e.code === c && re.test(e.message);
    const post = (modules?: Record<string, string>) =>
      t.client.manifest.apply({ manifest: m, signature, publicKey: key.publicKey, version: 3, ...(modules ? { modules } : {}) });
    await assert.rejects(
      post({ [sha(v3)]: tampered.toString('base64') }),
      code('MANIFEST_DIGEST_MISMATCH', new RegExp(`sent as sha256:${sha(v3)} but its bytes are sha256:${sha(tampered)}`)),
    );
    await assert.rejects(post(), code('MANIFEST_DIGEST_MISMATCH', /apps\.hello\.sha256: this node has no module/));
    const wrong = await cli([
      'apply',
      '--file',
      file('wrong.toml', WEB + app('hello2.wasm', `sha256 = "${sha(v1)}"\n`)),
      '--version',
      '3',
    ]);
    refused(wrong, 'MANIFEST_DIGEST_MISMATCH');
    assert.match(wrong.stderr, /apps\.hello: .*hello2\.wasm is sha256:/);
    const bad = await cli(['apply', '--file', file('bad.toml', WEB + app('hello2.wasm', 'colour = "blue"\n')), '--version', '3']);
    refused(bad, 'MANIFEST_INVALID');
    assert.match(bad.stderr, /line 15: apps\.hello\.colour: unknown key/);

    assert.equal((await t.client.manifest.status()).current?.version, 2);
    assert.equal((await apps.get('hello', t.client)).sha256, sha(v1));
    assert.deepEqual(await get('/hello/'), { status: 200, text: 'hello v1\n' });
  });

  void it('v3 with another module: reconciled (the old module file dropped); v4 without the app: removed, the ad-hoc app left', async () => {
    const r = await cli(['apply', '--file', join(dir, 'v2.toml'), '--version', '3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { changes: unknown[] }).changes, [
      { name: 'hello', change: 'changed', kind: 'app', fields: [{ field: 'sha256', from: sha(v1), to: sha(v2) }] },
    ]);
    assert.deepEqual(await get('/hello/'), { status: 200, text: 'hello v2\n' });
    assert.equal(existsSync(join(t.dataDir, 'apps', `${sha(v1)}.wasm`)), false);

    const gone = await cli(['apply', '--file', file('v4.toml', WEB), '--version', '4']);
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stdout, /\n- app hello\n$/);
    assert.equal((await get('/hello/')).status, 404);
    await assert.rejects(apps.get('hello', t.client), (e: unknown) => e instanceof RealmError && e.code === 'APP_NOT_FOUND');
    assert.deepEqual(await get('/adhoc/'), { status: 200, text: 'hello v2\n' });
    assert.equal((await get('/web/')).status, 200);
    const s = await t.client.manifest.status();
    assert.deepEqual(s.apps, {});
    assert.deepEqual(Object.keys(s.unmanagedApps), ['adhoc']);
  });

  void it('a wasi:http component as an app: applied, served through the gateway, updated by a new version', async () => {
    const started = Date.now();
    // Version two: the same component with another greeting of the same length written over the
    // old in its data segment (nothing else moves; building a second component costs seconds).
    const at = c1.indexOf('hello from a component: ');
    assert.ok(at > 0);
    const c2 = Buffer.concat([c1.subarray(0, at), Buffer.from('hello from version two: '), c1.subarray(at + 24)]);
    file('comp1.wasm', c1);
    file('comp2.wasm', c2);
    const comp = (f: string): string => `\n[apps.comp]\nfile = "${f}"\nmemory = "32m"\nreplicas = 1\n`;
    const r = await cli(['apply', '--file', file('v5.toml', WEB + comp('comp1.wasm')), '--version', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\n\+ app comp\n$/);
    assert.deepEqual(await get('/comp/x'), { status: 200, text: 'hello from a component: /x' });
    assert.equal((await t.client.manifest.status()).apps.comp?.sha256, sha(c1));
    const next = await cli(['apply', '--file', file('v6.toml', WEB + comp('comp2.wasm')), '--version', '6']);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, new RegExp(`\\n~ app comp: sha256 ${sha(c1)} → ${sha(c2)}\\n$`));
    assert.deepEqual(await get('/comp/y'), { status: 200, text: 'hello from version two: /y' });
    assert.deepEqual((await t.client.manifest.status()).drift, []);
    const gone = await cli(['apply', '--file', join(dir, 'v4.toml'), '--version', '7']);
    assert.match(gone.stdout, /\n- app comp\n$/);
    assert.equal((await get('/comp/x')).status, 404);
    console.log(`# component app in a manifest: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});

/**
 * Signed manifests against a real daemon, through the CLI as an owner uses it: `realm key init`,
 * `realm apply` v1 then v2 (a replica count changed: scaled, replicas counted running; a service
 * dropped: removed; an ad-hoc one left alone), the same version again refused, a tampered
 * manifest, a digest mismatch, an unknown key and a second key (after trust on first use) all
 * refused with nothing changed, `realm node trust` of the second key accepted, and drift: a live
 * scale shows in `manifest diff`, and `manifest export` round-trips through `apply`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RealmError, type ManifestStatus } from '@realm/sdk';
import { realm as realmCli, type CliResult } from '../helpers/cli.js';
import {
  leftovers,
  userClient,
  namespaceSkipReason,
  removeTestDirs,
  startTestDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { loadKeyFile } from '../../src/signing/key-file.js';
import { signPayload } from '../../src/signing/keys.js';
import { manifestOf } from '../../src/services/manifest-spec.js';
import { parseManifestToml } from '../../src/services/manifest-toml.js';
import { BUSYBOX, makeImage, makeTar, ociArchive } from '../helpers/oci.js';
import { until } from '../helpers/until.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping manifest tests: ${skip}`);

const toml = (replicas: number, extra = ''): string => `[services.web]
image = "host"
command = "exec /usr/bin/python3 -m http.server 8000"
port = 8000
replicas = ${replicas}
memory = "128m"
health = { interval = "200ms" }
restart = { delay = "200ms" }
${extra}`;
// A service with no replicas: in v1, dropped by v2 (so removed), and costs no sandbox.
const GONE = `
[services.gone]
image = "host"
command = "sleep infinity"
port = 9000
replicas = 0
`;

void describe('signed manifests', { skip }, () => {
  let t: TestDaemon;
  let dir = '';
  const keyA = (): string => join(dir, 'a');
  const keyB = (): string => join(dir, 'b');
  const cli = (args: string[], config = keyA()): Promise<CliResult> =>
    realmCli(args, { url: t.url, env: { REALM_CONFIG: config } });
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const refused = (r: CliResult, code: string): void => {
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`\\[${code}\\]`));
  };
  /** Replica sandboxes of `web` that really run. */
  const running = async (): Promise<number> =>
    (await t.daemon.engine.listSandboxes()).filter((s) => s.labels['realm.service'] === 'web' && s.status === 'running').length;
  const healthy = (n: number): Promise<true> =>
    until(`${n} healthy replicas of web`, async () => {
      const s = await t.client.services.get('web');
      return s.healthy === n && s.replicaList.length === n && (await running()) === n ? true : undefined;
    });
  const status = (): Promise<ManifestStatus> => t.client.manifest.status();

  before(async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), 'realm-manifest-'));
    t = await startTestDaemon({ warm: 0 });
  });
  after(async () => {
    if (!t) return;
    for (const s of await t.client.services.list()) await t.client.services.remove(s.name);
    assert.deepEqual(await leftovers(t), []);
    await t.close();
    removeTestDirs(t);
    rmSync(dir, { recursive: true, force: true });
  });

  void it('makes an owner key, 0600, and shows it', async () => {
    const made = await cli(['key', 'init']);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /made an owner key at .*owner\.key/);
    const shown = await cli(['key', 'show', '--json']);
    const k = JSON.parse(shown.stdout) as { publicKey: string; fingerprint: string; path: string };
    assert.match(k.publicKey, /^realm-ed25519:/);
    assert.match(k.fingerprint, /^SHA256:/);
    assert.equal(k.path, join(keyA(), 'owner.key'));
    refused(await cli(['key', 'init']), 'KEY_EXISTS');
    assert.equal((await cli(['key', 'init'], keyB())).code, 0);
  });

  void it("is the node's admin's: a user can neither apply, trust, diff nor read the manifest", async () => {
    const user = await userClient(t, 'uid:4201');
    const key = loadKeyFile(join(keyB(), 'owner.key'));
    const m = manifestOf(parseManifestToml(toml(1)).services, 1);
    const forbidden = (e: unknown) => e instanceof RealmError && e.code === 'FORBIDDEN';
    await assert.rejects(
      user.manifest.apply({ manifest: m, signature: signPayload(key.privateKey, m), publicKey: key.publicKey, version: 1 }),
      forbidden,
    );
    await assert.rejects(user.manifest.trust(key.publicKey), forbidden);
    await assert.rejects(user.manifest.status(), forbidden);
    await assert.rejects(user.manifest.diff({}), forbidden);
    await assert.rejects(user.manifest.trusted(), forbidden);
    // Nothing was trusted: trust on first use is still open for the owner.
    assert.equal((await t.client.manifest.status()).firstUseOpen, true);
  });

  void it('applies v1 (trusting its key on first use), then v2 with more replicas: scaled, the dropped service removed, the ad-hoc one left', async () => {
    await t.client.services.push({
      name: 'adhoc',
      image: 'host',
      command: 'sleep infinity',
      port: 7000,
      replicas: 0,
      disconnect: { stopAfter: '45s' },
    });
    assert.equal((await status()).firstUseOpen, true);
    const v1 = await cli(['apply', '--file', file('v1.toml', toml(1, GONE)), '--version', '1']);
    assert.equal(v1.code, 0, v1.stderr);
    assert.match(v1.stdout, /applied version 1, signed by SHA256:.*first use/);
    assert.match(v1.stdout, /\+ gone\n\+ web\n/);
    await healthy(1);
    const first = await t.client.services.get('web');
    const s1 = await status();
    assert.equal(s1.current?.version, 1);
    assert.equal(s1.firstUseOpen, false);
    assert.deepEqual(
      s1.trusted.map((k) => k.how),
      ['first-use'],
    );
    assert.deepEqual(s1.drift, []);
    assert.deepEqual(Object.keys(s1.unmanaged), ['adhoc']);

    const v2 = await cli(['apply', '--file', file('v2.toml', toml(2)), '--version', '2', '--json']);
    assert.equal(v2.code, 0, v2.stderr);
    const r2 = JSON.parse(v2.stdout) as { changes: unknown[]; trusted: string };
    assert.equal(r2.trusted, 'already');
    assert.deepEqual(r2.changes, [
      { name: 'gone', change: 'removed', fields: [] },
      { name: 'web', change: 'changed', fields: [{ field: 'replicas', from: 1, to: 2 }] },
    ]);
    await healthy(2);
    const now = await t.client.services.get('web');
    assert.equal(now.generation, first.generation, 'a replica count alone scales: nothing was replaced');
    assert.ok(now.replicaList.some((r) => r.sandbox === first.replicaList[0]?.sandbox));
    await assert.rejects(
      t.client.services.get('gone'),
      (e: unknown) => e instanceof RealmError && e.code === 'SERVICE_NOT_FOUND',
    );
    assert.equal((await t.client.services.get('adhoc')).replicas, 0, 'a service never in a manifest is left alone');
    assert.equal((await status()).current?.version, 2);
  });

  void it('refuses the same version again, a lower one, a tampered manifest, a digest mismatch and an unknown key — nothing changed', async () => {
    const before = await status();
    refused(await cli(['apply', '--file', file('v2.toml', toml(2)), '--version', '2']), 'MANIFEST_VERSION_STALE');
    refused(await cli(['apply', '--file', file('v1b.toml', toml(1)), '--version', '1']), 'MANIFEST_VERSION_STALE');

    const key = loadKeyFile(join(keyA(), 'owner.key'));
    const post = (manifest: Record<string, unknown>, signature: string, version = 3) =>
      t.client.manifest.apply({ manifest, signature, publicKey: key.publicKey, version });
    const code = (c: string) => (e: unknown) => e instanceof RealmError && e.code === c;
    // Signed over one replica count, posted with another.
    const signed = manifestOf(parseManifestToml(toml(1)).services, 3);
    const tampered = structuredClone(signed);
    tampered.services.web.replicas = 3;
    await assert.rejects(post(tampered, signPayload(key.privateKey, signed)), code('MANIFEST_SIGNATURE_INVALID'));
    // The posted version is checked against the signed one.
    await assert.rejects(post(signed, signPayload(key.privateKey, signed), 4), code('MANIFEST_INVALID'));
    // A digest the image does not have (host has none).
    const pinned = manifestOf(parseManifestToml(toml(1, '')).services, 3);
    pinned.services.web.sha256 = 'ab'.repeat(32);
    await assert.rejects(post(pinned, signPayload(key.privateKey, pinned)), code('MANIFEST_DIGEST_MISMATCH'));
    // Signed, but with a key the node does not know.
    const odd = { ...signed, services: { web: { ...signed.services.web, replica: 2 } } };
    await assert.rejects(
      post(odd, signPayload(key.privateKey, odd)),
      (e: unknown) =>
        e instanceof RealmError && e.code === 'MANIFEST_INVALID' && /services\.web\.replica: unknown key/.test(e.message),
    );
    // The CLI names the line of a bad key in the file.
    const bad = await cli(['apply', '--file', file('bad.toml', toml(1, 'colour = "blue"\n')), '--version', '9']);
    refused(bad, 'MANIFEST_INVALID');
    assert.match(bad.stderr, /line 9: services\.web\.colour: unknown key/);

    const after = await status();
    assert.deepEqual(after.current, before.current);
    assert.equal((await t.client.services.get('web')).replicas, 2);
    await healthy(2);
  });

  void it('checks an image digest against the image the node has: the one it has is taken, another refused', async () => {
    const layer = await makeTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', content: readFileSync(BUSYBOX), mode: 0o755 },
      { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    ]);
    const img = makeImage([layer]);
    const [imported] = await t.client.images.import(await ociArchive(img), { name: 'tiny-manifest:1' });
    assert.equal(imported?.digest, img.manifestDigest);
    const hex = img.manifestDigest.slice('sha256:'.length);
    const pinned = (sha: string): string =>
      `${toml(2)}\n[services.pinned]\nimage = "tiny-manifest:1"\nsha256 = "${sha}"\ncommand = "sleep 1000"\nport = 9000\nreplicas = 0\n`;
    const wrong = await cli(['apply', '--file', file('pinned.toml', pinned('cd'.repeat(32))), '--version', '3']);
    refused(wrong, 'MANIFEST_DIGEST_MISMATCH');
    assert.match(wrong.stderr, new RegExp(`services\\.pinned\\.sha256: image "tiny-manifest:1" is sha256:${hex} on this node`));
    assert.equal((await status()).current?.version, 2);
    const right = await cli(['apply', '--file', file('pinned.toml', pinned(hex)), '--version', '3']);
    assert.equal(right.code, 0, right.stderr);
    assert.match(right.stdout, /\+ pinned\n/);
    // Dropped again by the next version (and the image removed), so the tests after see v2's services.
    const back = await cli(['apply', '--file', file('v2.toml', toml(2)), '--version', '4']);
    assert.match(back.stdout, /- pinned\n/);
    await t.client.images.remove('tiny-manifest:1');
  });

  void it('refuses a second key after first use until `realm node trust`; revoking refuses it again', async () => {
    const b = JSON.parse((await cli(['key', 'show', '--json'], keyB())).stdout) as { publicKey: string; fingerprint: string };
    const other = await cli(['apply', '--file', file('v2.toml', toml(2)), '--version', '1'], keyB());
    refused(other, 'MANIFEST_KEY_UNTRUSTED');
    assert.match(other.stderr, new RegExp(`realm node trust ${b.publicKey.replace(/[+/]/g, '\\$&')}`));
    assert.equal((await status()).current?.version, 4, 'nothing changed');

    const trusted = await cli(['node', 'trust', b.publicKey]);
    assert.equal(trusted.code, 0, trusted.stderr);
    assert.equal(trusted.stdout, `trusted ${b.fingerprint}\n`);
    const list = JSON.parse((await cli(['node', 'trusted', '--json'])).stdout) as {
      keys: { how: string; fingerprint: string }[];
    };
    assert.deepEqual(
      list.keys.map((k) => k.how),
      ['first-use', 'explicit'],
    );
    // Versions are per key: the second key starts from its own 1.
    const ok = await cli(['apply', '--file', file('v2.toml', toml(2)), '--version', '1'], keyB());
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /no change/);
    assert.equal((await status()).current?.owner.fingerprint, b.fingerprint);

    assert.equal((await cli(['node', 'untrust', b.fingerprint])).code, 0);
    refused(await cli(['apply', '--file', file('v2.toml', toml(2)), '--version', '2'], keyB()), 'MANIFEST_KEY_UNTRUSTED');
    refused(await cli(['node', 'untrust', b.fingerprint]), 'KEY_NOT_FOUND');
  });

  void it('a live scale is drift: diff shows it, export writes it, and the export applies back with no change', async () => {
    await t.client.services.scale('web', 1);
    await healthy(1);
    const s = await status();
    assert.deepEqual(s.drift, [{ name: 'web', change: 'changed', fields: [{ field: 'replicas', from: 2, to: 1 }] }]);

    const diff = await cli(['manifest', 'diff', file('v2.toml', toml(2))]);
    assert.equal(diff.code, 0, diff.stderr);
    assert.equal(diff.stdout, '~ web: replicas 1 → 2\nleft alone (ad hoc, not in a manifest): adhoc\n');
    const dj = JSON.parse((await cli(['manifest', 'diff', join(dir, 'v2.toml'), '--json'])).stdout) as { changes: unknown[] };
    assert.deepEqual(dj.changes, [{ name: 'web', change: 'changed', fields: [{ field: 'replicas', from: 1, to: 2 }] }]);

    const out = join(dir, 'exported.toml');
    const exported = await cli(['manifest', 'export', '--file', out]);
    assert.equal(exported.code, 0, exported.stderr);
    const text = readFileSync(out, 'utf8');
    assert.match(text, /^# exported from version 1 \(signed by SHA256:/);
    assert.match(text, /replicas = 1\n/);
    assert.match(text, /memory = "128m"/);
    assert.doesNotMatch(text, /adhoc/);
    assert.match((await cli(['manifest', 'export', '--all'])).stdout, /\[services\.adhoc\.disconnect\]\nstop_after = "45s"\n/);
    assert.deepEqual((JSON.parse((await cli(['manifest', 'diff', out, '--json'])).stdout) as { changes: unknown[] }).changes, []);

    const back = await cli(['apply', '--file', out, '--version', '5']);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /applied version 5.*\nno change\n/);
    const s3 = await status();
    assert.deepEqual(s3.drift, []);
    assert.equal(s3.current?.version, 5);
    assert.equal((await t.client.services.get('web')).replicas, 1);
    assert.match((await cli(['manifest', 'status'])).stdout, /version 5, signed by SHA256:/);
  });
});

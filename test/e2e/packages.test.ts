/**
 * Packages: `realm package create` makes the same bytes from the same directory; `realm package
 * deploy` of a python http.server service with static, config, work and state mounts, reached
 * through the gateway; an upgrade to v2 serves the new static content while the state volume keeps
 * its data (seeded once), work starts empty and static stays read-only; bad packages are refused
 * with PACKAGE_INVALID naming the key, leaving nothing behind. In a signed manifest (`realm apply`):
 * a service from a package (the file uploaded by apply, its sha256 signed) runs with its mounts;
 * a package that is not the signed one is refused before anything changes; a new manifest version
 * with another package (named by the sha256 of one already on the node) upgrades it, its state
 * kept; drift, diff and export show the package by digest.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RealmError, apps, type ServiceInfo } from '@realm/sdk';
import { type CliResult, realm as realmCli } from '../helpers/cli.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { HANDLER_WAT, httpComponent } from '../helpers/http-component.js';
import { wasmSkipReason } from '../helpers/wasm.js';
import { until } from '../helpers/until.js';
import { loadKeyFile } from '../../src/signing/key-file.js';
import { signPayload } from '../../src/signing/keys.js';
import { manifestOf } from '../../src/services/manifest-spec.js';
import { parseManifestToml } from '../../src/services/manifest-toml.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping package tests: ${skip}`);

/** The service: static files from /srv/site, a counter in /srv/state, probes of /srv/work and of writes to static. */
const SERVER = `import http.server, json, os
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory='/srv/site', **k)
    def reply(self, body):
        b = body.encode()
        self.send_response(200)
        self.send_header('content-length', str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path == '/count':
            n = int(open('/srv/state/count').read()) + 1
            with open('/srv/state/count', 'w') as f:
                f.write(str(n))
            return self.reply(str(n))
        if self.path == '/probe':
            res = {'work': sorted(os.listdir('/srv/work'))}
            open('/srv/work/used', 'w').write('x')
            for k, p in (('static', '/srv/site/hack.txt'), ('config', '/srv/config/hack.txt')):
                try:
                    open(p, 'w').write('x')
                    res[k] = 'written'
                except OSError as e:
                    res[k] = e.errno
            return self.reply(json.dumps(res))
        return super().do_GET()
http.server.ThreadingHTTPServer(('127.0.0.1', 8000), H).serve_forever()
`;

const MANIFEST = (version: string): string => `name = "site"
version = "${version}"
description = "static files and a counter"

[service]
image = "host"
command = "exec /usr/bin/python3 /srv/config/server.py"
port = 8000
memory = "256m"
restart = { delay = "200ms" }
health = { path = "/index.html", interval = "1s" }
disconnect = { stopAfter = "30s" }

[[mounts]]
kind = "static"
path = "/srv/site"
source = "site"

[[mounts]]
kind = "config"
path = "/srv/config"
source = "config"

[[mounts]]
kind = "work"
path = "/srv/work"

[[mounts]]
kind = "state"
name = "data"
path = "/srv/state"
source = "seed"
`;

/** A package directory of `version`: its index.html says which, its seed counter starts at `seed`; `server`: its config/server.py. */
function packageDir(root: string, version: string, seed: string, server = SERVER): string {
  const dir = join(root, version);
  mkdirSync(join(dir, 'site', 'css'), { recursive: true });
  mkdirSync(join(dir, 'config'), { recursive: true });
  mkdirSync(join(dir, 'seed'), { recursive: true });
  mkdirSync(join(dir, 'unrelated'), { recursive: true });
  writeFileSync(join(dir, 'realm-package.toml'), MANIFEST(version));
  writeFileSync(join(dir, 'site', 'index.html'), `<h1>site ${version}</h1>\n`);
  writeFileSync(join(dir, 'site', 'css', 'main.css'), 'h1 { color: teal }\n');
  writeFileSync(join(dir, 'config', 'server.py'), server);
  writeFileSync(join(dir, 'seed', 'count'), seed);
  writeFileSync(join(dir, 'unrelated', 'big.bin'), 'not packed: the manifest does not name it');
  return dir;
}

void describe('packages', { skip }, () => {
  let t: TestDaemon;
  let gw = '';
  let root = '';
  const cli = (args: string[]): Promise<CliResult> => realmCli(args, { url: t.url });
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0' });
    gw = t.daemon.gatewayUrl ?? '';
    root = mkdtempSync(join(tmpdir(), 'realm-pkg-'));
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
    rmSync(root, { recursive: true, force: true });
  });

  /** The service once its replicas all run `version` and are healthy (old ones gone). */
  const serving = (version: string, name = 'site'): Promise<ServiceInfo> =>
    until(`${name} ${version} serving`, async () => {
      const s = await t.client.services.get(name);
      return s.package?.version === version &&
        s.healthy === 1 &&
        s.replicaList.length === 1 &&
        s.replicaList.every((r) => r.generation === s.generation)
        ? s
        : undefined;
    });
  const get = async (path: string, name = 'site'): Promise<string> => {
    const res = await fetch(`${gw}/${name}${path}`);
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return res.text();
  };

  void it('create is deterministic: the same directory gives the same bytes, whatever the mtimes', async () => {
    const dir = packageDir(root, '1.0.0', '100');
    const a = await cli(['package', 'create', dir, '--out', join(root, 'a.realm')]);
    assert.equal(a.code, 0, a.stderr);
    writeFileSync(join(dir, 'site', 'index.html'), readFileSync(join(dir, 'site', 'index.html'))); // a new mtime
    const b = await cli(['package', 'create', dir, '--out', join(root, 'b.realm')]);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(readFileSync(join(root, 'a.realm')), readFileSync(join(root, 'b.realm')));
    assert.match(a.stdout, /a\.realm sha256:[0-9a-f]{64} \d+ bytes/);
    const inspected = await cli(['package', 'inspect', join(root, 'a.realm'), '--json']);
    assert.equal(inspected.code, 0, inspected.stderr);
    const info = JSON.parse(inspected.stdout) as { manifest: { name: string; version: string }; entries: { path: string }[] };
    assert.equal(info.manifest.version, '1.0.0');
    const paths = info.entries.map((e) => e.path);
    assert.ok(paths.includes('site/css/main.css'), paths.join(' '));
    assert.ok(!paths.some((p) => p.startsWith('unrelated')), 'only what the manifest names is packed');
  });

  void it('deploys v1: static served through the gateway, state seeded and written, work and static as they should be', async () => {
    const out = await cli(['package', 'deploy', join(root, 'a.realm')]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /site: site 1\.0\.0 \(sha256:[0-9a-f]{12}\) deployed; seeded svc\.site\.data/);
    const s = await serving('1.0.0');
    assert.equal(s.package?.name, 'site');
    assert.match(s.package?.digest ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(
      s.package?.mounts.map((m) => m.kind),
      ['static', 'config', 'work', 'state'],
    );
    assert.equal(s.package?.mounts[3]?.volume, 'svc.site.data');
    assert.equal(await get('/index.html'), '<h1>site 1.0.0</h1>\n');
    assert.equal(await get('/css/main.css'), 'h1 { color: teal }\n');
    assert.equal(await get('/count'), '101');
    assert.equal(await get('/count'), '102');
    const probe = JSON.parse(await get('/probe')) as { work: string[]; static: unknown; config: unknown };
    assert.deepEqual(probe.work, []);
    assert.equal(probe.static, 30, 'static is read-only (EROFS)');
    assert.equal(probe.config, 30, 'config is read-only (EROFS)');
    assert.deepEqual((JSON.parse(await get('/probe')) as { work: string[] }).work, ['used']);
  });

  void it('deploys v2: new static content, state kept (not seeded again), work emptied', async () => {
    const dir = packageDir(root, '2.0.0', '0');
    const made = await cli(['package', 'create', dir, '--out', join(root, 'v2.realm')]);
    assert.equal(made.code, 0, made.stderr);
    const d = await t.client.packages.deploy(join(root, 'v2.realm'));
    assert.equal(d.kind, 'process');
    assert.deepEqual(d.seeded, []);
    assert.equal(d.package.version, '2.0.0');
    await serving('2.0.0');
    assert.equal(await get('/index.html'), '<h1>site 2.0.0</h1>\n');
    assert.equal(await get('/count'), '103', 'the state volume kept its data and was not seeded again');
    const probe = JSON.parse(await get('/probe')) as { work: string[]; static: unknown };
    assert.deepEqual(probe.work, [], 'the new replica got an empty work directory');
    assert.equal(probe.static, 30);
    const shown = await t.client.services.get('site');
    assert.equal(shown.package?.digest, d.package.digest);
    assert.equal(shown.disconnect.stopAfterMs, 30_000, "the manifest's disconnect is the service's");
    // Static trees are stored once per content: v1's went once no replica mounted it (at this deploy's sweep or the next).
    const again = await t.client.packages.deploy(join(root, 'v2.realm'));
    assert.equal(again.package.mounts[0]?.tree, d.package.mounts[0]?.tree);
    await serving('2.0.0');
    const wanted = d.package.mounts.flatMap((m) => (m.tree ? [m.tree.slice('sha256:'.length)] : []));
    await until(
      'old trees swept',
      async () => {
        await t.client.packages.deploy(join(root, 'v2.realm'));
        const now = readdirSync(join(t.dataDir, 'packages', 'trees')).sort();
        return now.join() === [...wanted].sort().join() ? now : undefined;
      },
      5_000,
    );
  });

  void it("a failed upgrade rolls back to the old package's static and config mounts, state kept", async () => {
    const before = await serving('2.0.0');
    // v3's server exits at once: its replica never gets healthy, so its rollout rolls back.
    const dir = packageDir(root, '3.0.0', '0', 'raise SystemExit(3)\n');
    assert.equal((await cli(['package', 'create', dir, '--out', join(root, 'v3.realm')])).code, 0);
    const d = await t.client.packages.deploy(join(root, 'v3.realm'));
    assert.equal(d.service?.generation, before.generation + 1);
    const back = await until('the rollback', async () => {
      const s = await t.client.services.get('site');
      return s.generation === before.generation && s.rollout === null ? s : undefined;
    });
    assert.match(back.lastError ?? '', /rolled back/);
    assert.equal(back.package?.version, '2.0.0', "the rolled-back generation's package is desired again");
    assert.deepEqual(back.package?.mounts, before.package?.mounts);
    const h = await t.client.services.history('site');
    assert.deepEqual(
      h.slice(-2).map((g) => [g.package?.version, g.outcome]),
      [
        ['2.0.0', 'rolled-out'],
        ['3.0.0', 'rolled-back'],
      ],
    );
    // New replicas (a restart replaces them all) mount v2's trees again; the state volume is the same.
    const restarted = await t.client.services.restart('site');
    await until('the restart rolled out', async () => {
      const s = await t.client.services.get('site');
      return s.generation === restarted.generation && s.rollout === null && s.healthy === 1 ? s : undefined;
    });
    assert.equal((await t.client.services.get('site')).package?.version, '2.0.0');
    assert.equal(await get('/index.html'), '<h1>site 2.0.0</h1>\n');
    assert.equal(await get('/count'), '104', 'the state volume kept its data across the rollback');
  });

  void it('refuses bad packages with PACKAGE_INVALID naming the key, leaving nothing behind', async () => {
    const bad = async (manifest: string, key: RegExp, extra?: (dir: string) => void): Promise<void> => {
      const dir = mkdtempSync(join(root, 'bad-'));
      mkdirSync(join(dir, 'site'));
      writeFileSync(join(dir, 'site', 'a'), 'a');
      writeFileSync(join(dir, 'realm-package.toml'), manifest);
      extra?.(dir);
      // The CLI checks before packing …
      const made = await cli(['package', 'create', dir, '--out', join(dir, 'x.realm')]);
      assert.notEqual(made.code, 0);
      assert.match(made.stderr, key);
      assert.match(made.stderr, /\[PACKAGE_INVALID\]/);
    };
    const head = 'name = "bad"\nversion = "1"\n[service]\nimage = "host"\ncommand = "true"\nport = 8000\n';
    await bad(`${head}[[mounts]]\nkind = "magic"\npath = "/srv/x"\nsource = "site"\n`, /line 8: mounts\[0\]\.kind/);
    await bad(`${head}[[mounts]]\nkind = "static"\npath = "/srv/../etc"\nsource = "site"\n`, /mounts\[0\]\.path/);
    await bad(`${head}[[mounts]]\nkind = "static"\npath = "/proc/x"\nsource = "site"\n`, /mounts\[0\]\.path/);
    await bad(`${head}[[mounts]]\nkind = "static"\npath = "/srv/x"\nsource = "../site"\n`, /mounts\[0\]\.source/);
    await bad(`${head}[[mounts]]\nkind = "static"\npath = "/srv/x"\nsource = "nothere"\n`, /mounts\[0\]\.source: nothere/);
    await bad(`${head}[[mounts]]\nkind = "static"\npath = "/srv/x"\n`, /mounts\[0\]\.source: a static mount needs/);
    await bad(`${head}colour = "red"\n`, /unknown key colour in service/);
    await bad(`name = "bad"\n[service]\nimage = "host"\n`, /version/);
    // … and the daemon checks what it is sent: a package made by hand with an unknown kind.
    const { pack } = await import('tar-stream');
    const p = pack();
    p.entry({ name: 'realm-package.toml' }, `${head}[[mounts]]\nkind = "magic"\npath = "/srv/x"\n`);
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    const before = readdirSync(join(t.dataDir, 'volumes')).sort();
    await assert.rejects(
      t.client.packages.deploy(Buffer.concat(chunks)),
      (e: unknown) => e instanceof RealmError && e.code === 'PACKAGE_INVALID' && /mounts\[0\]\.kind/.test(e.message),
    );
    await assert.rejects(t.client.services.get('bad'), (e: unknown) => e instanceof RealmError && e.code === 'SERVICE_NOT_FOUND');
    assert.deepEqual(readdirSync(join(t.dataDir, 'volumes')).sort(), before);
    const staging = join(t.dataDir, 'packages', 'staging');
    assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], []);
  });

  void it('deploys a component package as a gateway app', async (c) => {
    const why = await wasmSkipReason();
    if (why) return c.skip(why);
    const dir = join(root, 'component');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin', 'hello.wasm'), await httpComponent(HANDLER_WAT));
    writeFileSync(
      join(dir, 'realm-package.toml'),
      'name = "hello"\nversion = "0.1.0"\n[service]\ncomponent = "bin/hello.wasm"\n',
    );
    const made = await cli(['package', 'create', dir, '--out', join(root, 'hello.realm')]);
    assert.equal(made.code, 0, made.stderr);
    const d = await t.client.packages.deploy(join(root, 'hello.realm'), { name: 'hello-pkg' });
    assert.equal(d.kind, 'wasm');
    assert.equal(d.service, null);
    const r = await fetch(`${gw}/hello-pkg/x`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'hello from a component: /x');
    assert.equal((await apps.get('hello-pkg', t.client)).size, (await httpComponent(HANDLER_WAT)).length);
    await apps.remove('hello-pkg', t.client);
  });

  void it('rm leaves nothing but the state volume', async () => {
    assert.equal((await cli(['svc', 'rm', 'site'])).code, 0);
    assert.deepEqual(await leftovers(t), []);
    assert.deepEqual(readdirSync(join(t.dataDir, 'packages', 'work')), []);
    assert.ok(await t.daemon.engine.volumes.record('svc.site.data'), 'the state volume outlives the service');
  });

  // Signed manifests with packaged services (the packages a.realm 1.0.0 and v2.realm 2.0.0 made above).
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const mcli = (args: string[]): Promise<CliResult> => realmCli(args, { url: t.url, env: { REALM_CONFIG: join(root, 'cfg') } });
  const toml = (name: string, text: string): string => {
    writeFileSync(join(root, name), text);
    return join(root, name);
  };
  let started = 0;

  void it('a manifest service from a package: realm apply uploads it and signs its sha256; mounts as with package deploy', async () => {
    started = Date.now();
    assert.equal((await mcli(['key', 'init'])).code, 0);
    const r = await mcli(['apply', '--file', toml('m1.toml', '[services.msite]\npackage = "a.realm"\n'), '--version', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied version 1.*\n\+ msite\n$/);
    const s = await serving('1.0.0', 'msite');
    assert.equal(s.replicas, 1);
    assert.deepEqual(
      s.package?.mounts.map((m) => [m.kind, m.volume]),
      [
        ['static', undefined],
        ['config', undefined],
        ['work', undefined],
        ['state', 'svc.msite.data'],
      ],
    );
    assert.equal(await get('/index.html', 'msite'), '<h1>site 1.0.0</h1>\n');
    assert.equal(await get('/count', 'msite'), '101', 'its own state volume, seeded from the package');
    assert.equal((JSON.parse(await get('/probe', 'msite')) as { static: unknown }).static, 30, 'static is read-only');
    const a = sha(readFileSync(join(root, 'a.realm')));
    const st = await t.client.manifest.status();
    assert.deepEqual(st.services, { msite: { package_sha256: a, replicas: 1 } });
    assert.deepEqual(st.drift, []);
    const out = await mcli(['manifest', 'export']);
    assert.match(out.stdout, new RegExp(`\\[services\\.msite\\]\\npackage_sha256 = "${a}"\\nreplicas = 1\\n`));
  });

  void it('refuses a package that is not the one signed, and a file that is not its package_sha256 — nothing changed', async () => {
    const dir = packageDir(root, '4.0.0', '0');
    assert.equal((await cli(['package', 'create', dir, '--out', join(root, 'v4.realm')])).code, 0);
    const good = readFileSync(join(root, 'v4.realm'));
    const tampered = Buffer.from(good);
    tampered[tampered.length >> 1] ^= 1;
    // The node gets a tampered copy; the manifest, with a service before it, is signed for the real one.
    await t.client.blobs.put(tampered, { pin: false });
    const key = loadKeyFile(join(root, 'cfg', 'owner.key'));
    const extra = parseManifestToml('[services.extra]\nimage = "host"\ncommand = "exec sleep 60"\nport = 8000\n').services;
    const m = manifestOf({ ...extra, msite: { package_sha256: sha(good), replicas: 1 } }, 2);
    await assert.rejects(
      t.client.manifest.apply({ manifest: m, signature: signPayload(key.privateKey, m), publicKey: key.publicKey, version: 2 }),
      (e: unknown) =>
        e instanceof RealmError &&
        e.code === 'MANIFEST_DIGEST_MISMATCH' &&
        e.message.includes(`services.msite.package_sha256: this node has no package sha256:${sha(good)}`),
    );
    // A component package is a gateway app, not a service: refused, saying where it goes.
    if (existsSync(join(root, 'hello.realm'))) {
      const { digest } = await t.client.blobs.put(readFileSync(join(root, 'hello.realm')), { pin: false });
      const c = manifestOf({ hello: { package_sha256: digest.slice('sha256:'.length), replicas: 1 } }, 2);
      await assert.rejects(
        t.client.manifest.apply({ manifest: c, signature: signPayload(key.privateKey, c), publicKey: key.publicKey, version: 2 }),
        (e: unknown) =>
          e instanceof RealmError && e.code === 'PACKAGE_INVALID' && /\[apps\.hello\] with file = "hello\.wasm"/.test(e.message),
      );
    }
    const wrong = await mcli([
      'apply',
      '--file',
      toml('wrong.toml', `[services.msite]\npackage = "v4.realm"\npackage_sha256 = "${sha(tampered)}"\n`),
      '--version',
      '2',
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /services\.msite: .*v4\.realm is sha256:.*\[MANIFEST_DIGEST_MISMATCH\]/);
    const st = await t.client.manifest.status();
    assert.equal(st.current?.version, 1);
    assert.deepEqual(Object.keys(st.services), ['msite']);
    assert.deepEqual(Object.keys(st.unmanaged), [], 'the service signed before the package was not started');
    assert.equal((await t.client.services.get('msite')).package?.version, '1.0.0');
    assert.equal(await get('/index.html', 'msite'), '<h1>site 1.0.0</h1>\n');
  });

  void it('v2 names a package on the node by sha256: upgraded with its state kept; a live scale is drift, applied back', async () => {
    const v2 = readFileSync(join(root, 'v2.realm'));
    await t.client.blobs.put(v2, { pin: false }); // on the node already (realm blob put)
    const m2 = toml('m2.toml', `[services.msite]\npackage_sha256 = "${sha(v2)}"\n`);
    const a = sha(readFileSync(join(root, 'a.realm')));
    const diff = await mcli(['manifest', 'diff', m2]);
    assert.equal(diff.stdout, `~ msite: package_sha256 ${a} → ${sha(v2)}\n`);
    const r = await mcli(['apply', '--file', m2, '--version', '2']);
    assert.equal(r.code, 0, r.stderr);
    await serving('2.0.0', 'msite');
    assert.equal(await get('/index.html', 'msite'), '<h1>site 2.0.0</h1>\n');
    assert.equal(await get('/count', 'msite'), '102', 'the state volume kept its data and was not seeded again');
    assert.equal((await mcli(['svc', 'scale', 'msite', '0'])).code, 0);
    assert.deepEqual((await t.client.manifest.status()).drift, [
      { name: 'msite', change: 'changed', fields: [{ field: 'replicas', from: 1, to: 0 }] },
    ]);
    const { generation } = await t.client.services.get('msite');
    const back = await mcli(['apply', '--file', m2, '--version', '3']);
    assert.match(back.stdout, /\n~ msite: replicas 0 → 1\n$/);
    assert.equal(
      (await serving('2.0.0', 'msite')).generation,
      generation,
      'a replica count alone is a scale, not a new generation',
    );
    const gone = await mcli(['apply', '--file', toml('m4.toml', '[services]\n'), '--version', '4']);
    assert.match(gone.stdout, /\n- msite\n$/);
    assert.deepEqual(await leftovers(t), []);
    assert.ok(await t.daemon.engine.volumes.record('svc.msite.data'), 'the state volume outlives the service');
    console.log(`# packages in signed manifests: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});

/**
 * Packages without a daemon: the manifest's checks (each naming its key), a deterministic
 * `.realm` from a directory, and a package read back with its entries checked.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { createPackage, scanPackage } from '../../src/packages/archive.js';
import { parseManifest } from '../../src/packages/manifest.js';
import { stateVolume } from '../../src/packages/deploy.js';
import { RealmError } from '../../src/util/errors.js';

const HEAD = 'name = "site"\nversion = "1.0"\n[service]\nimage = "host"\ncommand = "true"\nport = 8000\n';

const refused = (text: string, key: RegExp): void =>
  assert.throws(
    () => parseManifest(text),
    (e: unknown) => e instanceof RealmError && e.code === 'PACKAGE_INVALID' && key.test(e.message),
  );

void describe('package manifest', () => {
  void it('takes a full manifest with defaults', () => {
    const m = parseManifest(
      `${HEAD}[[mounts]]\nkind = "static"\npath = "/srv/site"\nsource = "site/"\n[[mounts]]\nkind = "state"\npath = "/data"\n[[mounts]]\nkind = "work"\npath = "/scratch"\n`,
    );
    assert.equal(m.mounts[0]?.source, 'site');
    assert.deepEqual(
      m.mounts.map((x) => x.kind),
      ['static', 'state', 'work'],
    );
    assert.equal(parseManifest(`name = "w"\nversion = "2"\n[service]\ncomponent = "app.wasm"\n`).service.component, 'app.wasm');
    assert.equal(parseManifest(`${HEAD}disconnect = { stopAfter = "30s" }\n`).service.disconnect?.stopAfter, 30_000);
  });

  void it('refuses each mistake naming its key', () => {
    const mount = (body: string): string => `${HEAD}[[mounts]]\n${body}\n`;
    refused(mount('kind = "magic"\npath = "/x"'), /line 8: mounts\[0\]\.kind: a mount kind is one of/);
    refused(mount('kind = "static"\npath = "/srv/../etc"\nsource = "s"'), /mounts\[0\]\.path/);
    refused(mount('kind = "static"\npath = "srv"\nsource = "s"'), /mounts\[0\]\.path/);
    refused(mount('kind = "static"\npath = "/etc/x"\nsource = "s"'), /mounts\[0\]\.path: a mount path may not be/);
    refused(mount('kind = "static"\npath = "/home/user"\nsource = "s"'), /mounts\[0\]\.path/);
    refused(mount('kind = "static"\npath = "/x"\nsource = "/abs"'), /mounts\[0\]\.source/);
    refused(mount('kind = "static"\npath = "/x"\nsource = "a/../../b"'), /mounts\[0\]\.source/);
    refused(mount('kind = "config"\npath = "/x"'), /mounts\[0\]\.source: a config mount needs/);
    refused(mount('kind = "work"\npath = "/x"\nsource = "s"'), /mounts\[0\]\.source: a work mount starts empty/);
    refused(mount('kind = "state"\npath = "/x"\nwhat = 1'), /line 10: unknown key what in mounts\[0\]/);
    refused(
      `${HEAD}[[mounts]]\nkind = "work"\npath = "/a"\n[[mounts]]\nkind = "work"\npath = "/a/b"\n`,
      /mounts\[1\]\.path: mount paths \/a and \/a\/b overlap/,
    );
    refused(`name = "x"\nversion = "1"\n[service]\nimage = "host"\n`, /service\.command: the service needs command/);
    refused(
      `name = "x"\nversion = "1"\n[service]\ncomponent = "a.wasm"\nport = 1\n`,
      /service\.port: a component service takes no port/,
    );
    refused(`name = "Bad"\nversion = "1"\n[service]\ncomponent = "a.wasm"\n`, /name:/);
    refused(`${HEAD}disconnect = { stopAfter = "1s" }\n`, /line 7: service\.disconnect\.stopAfter/);
    refused(`${HEAD}disconnect = { stop = "30s" }\n`, /service\.disconnect\.stopAfter: missing: write a duration \(e\.g\. 10s\)/);
    refused(`${HEAD}disconnect = { stopAfter = "30s", stop = 1 }\n`, /unknown key stop in service\.disconnect/);
    refused(
      `name = "x"\nversion = "1"\n[service]\ncomponent = "a.wasm"\ndisconnect = { stopAfter = "30s" }\n`,
      /service\.disconnect: a component service takes no disconnect/,
    );
    refused('name = ', /not valid TOML/);
  });

  void it('names state volumes within the volume name limit', () => {
    assert.equal(stateVolume('site', 'data'), 'svc.site.data');
    const long = stateVolume('a'.repeat(63), 'b'.repeat(32));
    assert.ok(long.length <= 63 && /^svc\.[a-z0-9-]+\.[a-z0-9_-]+$/.test(long), long);
    assert.notEqual(long, stateVolume('a'.repeat(62), 'b'.repeat(32)));
  });
});

void describe('package archive', () => {
  const root = mkdtempSync(join(tmpdir(), 'realm-pkg-unit-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  const dir = (name: string): string => {
    const d = join(root, name);
    mkdirSync(join(d, 'site', 'sub'), { recursive: true });
    writeFileSync(join(d, 'realm-package.toml'), `${HEAD}[[mounts]]\nkind = "static"\npath = "/srv/site"\nsource = "site"\n`);
    writeFileSync(join(d, 'site', 'index.html'), 'hi\n');
    writeFileSync(join(d, 'site', 'sub', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    writeFileSync(join(d, 'left-out.txt'), 'not named by the manifest');
    return d;
  };

  void it('gives the same bytes for the same content, whatever the mtimes and the order files were made in', async () => {
    const a = await createPackage(dir('a'));
    const d = dir('b');
    utimesSync(join(d, 'site', 'index.html'), 1_000_000, 1_000_000);
    const b = await createPackage(d);
    assert.deepEqual(a.bytes, b.bytes);
    assert.equal(a.digest, b.digest);
    const s = await scanPackage(a.bytes);
    assert.deepEqual([...s.entries.keys()], ['realm-package.toml', 'site', 'site/index.html', 'site/sub', 'site/sub/run.sh']);
    assert.equal(s.digest, a.digest);
    // Plain tar, too (gzip is optional).
    assert.equal((await scanPackage(gunzipSync(a.bytes))).manifest.name, 'site');
  });

  void it('refuses a link in the directory, a missing asset, and what is not a package', async () => {
    const d = dir('link');
    symlinkSync('/etc', join(d, 'site', 'etc'));
    await assert.rejects(createPackage(d), /site\/etc in .* is a symbolic link/);
    const m = dir('missing');
    rmSync(join(m, 'site'), { recursive: true });
    await assert.rejects(createPackage(m), /mounts\[0\]\.source: site is not in/);
    await assert.rejects(
      scanPackage(Buffer.from('not a tar at all, not at all, no')),
      (e: unknown) => e instanceof RealmError && e.code === 'PACKAGE_INVALID',
    );
  });
});

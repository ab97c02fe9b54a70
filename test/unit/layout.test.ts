import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildEtc } from '../../src/drivers/shared/etc.js';

/** Every file under `dir` (relative paths), symlinks not followed. */
function files(dir: string, rel = ''): string[] {
  return readdirSync(join(dir, rel)).flatMap((name) => {
    const r = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, r));
    return st.isDirectory() ? files(dir, r) : [r];
  });
}

void test("the host image's /etc copy keeps the host's modification times (Python's cached bytecode stays valid)", () => {
  const runtime = mkdtempSync(join(tmpdir(), 'realm-test-etc-'));
  try {
    const etc = buildEtc(runtime);
    // Generated files (passwd, group, hosts, the resolv.conf mount point) are realm's own.
    const copied = files(etc).filter(
      (f) => existsSync(join('/etc', f)) && !['passwd', 'group', 'hosts', 'resolv.conf'].includes(f),
    );
    assert.ok(copied.length > 0, 'nothing of the host /etc was copied');
    for (const f of copied) {
      const host = lstatSync(join('/etc', f));
      const copy = lstatSync(join(etc, f));
      if (host.isSymbolicLink()) continue; // a link's own time does not matter; its target's does
      assert.equal(Math.floor(copy.mtimeMs / 1000), Math.floor(host.mtimeMs / 1000), `${f}: mtime changed in the copy`);
    }
    // What Python checks: the source mtime and size recorded in the .pyc of a module whose source
    // is a link into /etc (Debian's sitecustomize), against the file the sandbox sees.
    const pyc = readdirSync('/usr/lib')
      .filter((d) => /^python3\.\d+$/.test(d))
      .map((d) => ({
        src: join(etc, d, 'sitecustomize.py'),
        pyc: join('/usr/lib', d, '__pycache__', `sitecustomize.cpython-${d.slice(6).replace('.', '')}.pyc`),
      }))
      .find((p) => existsSync(p.src) && existsSync(p.pyc));
    if (!pyc) {
      console.log('# no Debian sitecustomize with cached bytecode on this host: the bytecode check is skipped');
      return;
    }
    const header = readFileSync(pyc.pyc).subarray(0, 16);
    const st = lstatSync(pyc.src);
    assert.equal(header.readUInt32LE(4), 0, 'expected a timestamp-based .pyc');
    assert.equal(
      header.readUInt32LE(8),
      Math.floor(st.mtimeMs / 1000),
      `${pyc.pyc} does not match the sandbox's ${pyc.src}: Python would recompile it on every start`,
    );
    assert.equal(header.readUInt32LE(12), st.size);
  } finally {
    rmSync(runtime, { recursive: true, force: true });
  }
});

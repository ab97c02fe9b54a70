/** Conformance cases: images other than `host` (a plain root filesystem directory). */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConformanceCase } from './context.js';

const BUSYBOX = '/bin/busybox';

/** A root filesystem of one static busybox and its applet links, in the allowed directory `under`. */
function makeRootfs(under: string): string {
  const root = mkdtempSync(join(under, 'rootfs-'));
  chmodSync(root, 0o755); // the sandbox's host uid must be able to read its image
  for (const d of ['bin', 'etc', 'usr']) mkdirSync(join(root, d));
  copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'echo', 'cat', 'ls', 'touch', 'id']) symlinkSync('busybox', join(root, 'bin', applet));
  writeFileSync(join(root, 'etc', 'os-release'), 'NAME=tiny\n');
  return root;
}

export const imageCases: ConformanceCase[] = [
  {
    name: 'a root filesystem directory is an image: its files, read-only, nothing of the host',
    needs: ['nativePrograms'],
    skip: existsSync(BUSYBOX)
      ? {}
      : Object.fromEntries(
          (['namespace', 'gvisor', 'microvm'] as const).map((d) => [
            d,
            `${BUSYBOX} is missing (npm run setup installs busybox-static)`,
          ]),
        ),
    async run(ctx) {
      const root = makeRootfs(ctx.imageDir);
      try {
        const sb = await ctx.sandbox({ image: root });
        const r = await sb.exec([
          '/bin/sh',
          '-c',
          'cat /etc/os-release; ls /usr; touch /bin/x 2>&1; echo hi > ~/f && cat ~/f; id -u',
        ]);
        assert.match(r.stdout, /NAME=tiny/);
        // gVisor (runsc 20221219) checks permissions before read-only-ness: uid 1000 writing into the
        // read-only image gets EACCES there, not EROFS. Either way nothing is written (checked below).
        assert.match(r.stdout, ctx.driver === 'gvisor' ? /Read-only file system|Permission denied/ : /Read-only file system/);
        assert.match(r.stdout, /^hi$/m);
        assert.match(r.stdout, /^1000$/m);
        assert.doesNotMatch(r.stdout, /python|bin\b.*lib/);
        const py = await sb.exec(['/usr/bin/python3', '-c', 'print(1)']);
        assert.equal(py.exitCode, 127, 'the host /usr is not in a directory image');
        await sb.destroy();
        assert.ok(!existsSync(join(root, 'bin', 'x')) && !existsSync(join(root, 'home')), 'the image directory is unchanged');
        // An image the sandbox user cannot read is refused up front, with what to do.
        chmodSync(root, 0o700);
        await assert.rejects(
          ctx.sandbox({ image: root }),
          (e) => (e as { code?: string }).code === 'IMAGE_NOT_FOUND' && /o\+rx/.test((e as Error).message),
        );
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  },
];

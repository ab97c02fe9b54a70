/** The files API end to end: bytes in and out, listings, errors with codes, tar in and out, no escapes. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pack } from 'tar-stream';
import { ConflictError, FileError, FileNotFoundError, Sandbox } from '@realm/sdk';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping files API tests: ${skip}`);

type Entry = {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo';
  content?: string;
  linkname?: string;
  mode?: number;
};

async function tarOf(entries: Entry[]): Promise<Uint8Array> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') p.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.content ?? '');
    else p.entry({ name: e.name, type, ...(e.linkname ? { linkname: e.linkname } : {}) });
  }
  p.finalize();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

const code = (e: unknown): string | undefined => (e as { code?: string }).code;

void describe('files API', { skip }, () => {
  let t: TestDaemon;
  let sb: Sandbox;
  before(async () => {
    t = await startTestDaemon();
    sb = await Sandbox.create({ disk: '16m' }, t.client);
  });
  after(async () => {
    try {
      await sb.destroy();
      assert.deepEqual(await leftovers(t), []);
    } finally {
      await t.close();
      removeTestDirs(t);
    }
  });

  void it('writes and reads bytes exactly; paths are absolute or under /home/user', async () => {
    const all = new Uint8Array(256).map((_, i) => i);
    await sb.files.write('bin/all.dat', all, { parents: true });
    assert.deepEqual(await sb.files.read('/home/user/bin/all.dat'), all);
    await sb.files.write('/tmp/run.sh', '#!/bin/sh\necho ran\n', { mode: 0o755 });
    assert.equal((await sb.exec('/tmp/run.sh')).stdout, 'ran\n');
    assert.equal(await sb.files.readText('/tmp/run.sh'), '#!/bin/sh\necho ran\n');
    const st = await sb.files.stat('/tmp/run.sh');
    assert.deepEqual([st.type, st.mode, st.size, st.name], ['file', '0755', 19, 'run.sh']);
    // What the program sees is what the API sees, and the other way round.
    await sb.exec('echo from-inside > ~/inside.txt');
    assert.equal(await sb.files.readText('inside.txt'), 'from-inside\n');
  });

  void it('lists, makes directories, moves and removes', async () => {
    await sb.files.mkdir('proj/src', { parents: true });
    await sb.files.write('proj/src/a.py', 'print(1)');
    await sb.files.mkdir('proj/empty');
    await sb.exec('ln -s src/a.py ~/proj/link');
    const names = (await sb.files.list('proj')).map((e) => `${e.name}:${e.type}${e.target ? `->${e.target}` : ''}`);
    assert.deepEqual(names, ['empty:dir', 'link:link->src/a.py', 'src:dir']);
    await sb.files.move('proj/src/a.py', 'proj/b.py');
    assert.equal(await sb.files.readText('proj/b.py'), 'print(1)');
    await assert.rejects(sb.files.remove('proj'), (e) => code(e) === 'FILE_EXISTS');
    await sb.files.remove('proj', { recursive: true });
    await assert.rejects(sb.files.stat('proj'), FileNotFoundError);
  });

  void it('errors carry codes: not found, wrong kind, not allowed, no space, not running', async () => {
    await assert.rejects(
      sb.files.read('nope.txt'),
      (e) => e instanceof FileNotFoundError && /nope\.txt/.test((e as Error).message),
    );
    await assert.rejects(sb.files.read('/tmp'), (e) => e instanceof FileError && code(e) === 'FILE_INVALID');
    await assert.rejects(sb.files.write('/usr/bin/evil', 'x'), (e) => code(e) === 'FILE_FORBIDDEN');
    await assert.rejects(sb.files.write('/etc/passwd', 'x'), (e) => code(e) === 'FILE_FORBIDDEN');
    await assert.rejects(sb.files.write('big.bin', new Uint8Array(20 * 1024 * 1024)), (e) => code(e) === 'FILE_NO_SPACE');
    await sb.files.remove('big.bin').catch(() => undefined);
    await assert.rejects(sb.files.read(''), (e) => code(e) === 'INVALID_REQUEST');
    const other = await Sandbox.create({}, t.client);
    await other.stop();
    await assert.rejects(other.files.read('x'), ConflictError);
    await other.destroy();
  });

  void it('links planted inside lead nowhere outside the sandbox', async () => {
    // A link to the host's data dir, and to /etc: the API resolves both in the sandbox's root.
    await sb.exec(`ln -sfn ${t.dataDir} ~/hostdata; ln -sfn /etc ~/etc-link; ln -sfn /proc/1/root ~/pid1root`);
    await assert.rejects(sb.files.list('hostdata'), FileNotFoundError);
    await assert.rejects(sb.files.read('hostdata/state.db'), FileNotFoundError);
    assert.doesNotMatch(await sb.files.readText('etc-link/passwd'), /^root:x:0:0:root:\/root:\/bin\/(bash|sh)$/m);
    assert.match(await sb.files.readText('etc-link/passwd'), /sandbox user/);
    await assert.rejects(sb.files.read('/etc/shadow'), FileNotFoundError);
    // /proc/1 is the sandbox's own init: its root is the sandbox's root, not the host's.
    const rootNames = (await sb.files.list('pid1root')).map((e) => e.name);
    assert.ok(rootNames.includes('home') && !rootNames.includes('root') && !rootNames.includes('boot'), rootNames.join(' '));
    // Removing a link removes the link, not what it points to.
    await sb.files.remove('etc-link', { recursive: true });
    assert.match(await sb.files.readText('/etc/passwd'), /sandbox user/);
  });

  void it('tar upload and download round-trip', async () => {
    const tar = await tarOf([
      { name: 'app/', type: 'directory' },
      { name: 'app/main.py', content: 'print("hi")\n', mode: 0o755 },
      { name: 'app/lib/util.py', content: 'x = 1\n' },
      { name: 'app/current', type: 'symlink', linkname: 'main.py' },
    ]);
    await sb.files.upload('/home/user/up', tar);
    assert.equal(
      (await sb.exec('python3 up/app/main.py; readlink up/app/current; stat -c %a up/app/main.py')).stdout,
      'hi\nmain.py\n755\n',
    );
    const back = Buffer.from(await sb.files.download('up/app'));
    const text = back.toString('latin1');
    for (const name of ['app/main.py', 'app/lib/util.py', 'app/current']) assert.ok(text.includes(name), name);
    await sb.files.upload('/home/user/again', new Uint8Array(back));
    assert.equal(await sb.files.readText('again/app/lib/util.py'), 'x = 1\n');
  });

  void it('bad tars are refused whole: .., absolute paths, links out, hard links, devices, garbage', async () => {
    const bad: Entry[][] = [
      [
        { name: 'ok.txt', content: 'fine' },
        { name: '../escape.txt', content: 'x' },
      ],
      [
        { name: 'ok.txt', content: 'fine' },
        { name: '/abs.txt', content: 'x' },
      ],
      [
        { name: 'ok.txt', content: 'fine' },
        { name: 'a/../../b', content: 'x' },
      ],
      [
        { name: 'ok.txt', content: 'fine' },
        { name: 'out', type: 'symlink', linkname: '../../etc' },
      ],
      [
        { name: 'ok.txt', content: 'fine' },
        { name: 'abs', type: 'symlink', linkname: '/etc/passwd' },
      ],
      [
        { name: 'ok.txt', content: 'fine' },
        { name: 'hard', type: 'link', linkname: 'ok.txt' },
      ],
      [
        { name: 'ok.txt', content: 'fine' },
        { name: 'pipe', type: 'fifo' },
      ],
    ];
    for (const entries of bad) {
      await assert.rejects(
        sb.files.upload('/home/user/bad', await tarOf(entries)),
        (e) => code(e) === 'FILE_INVALID',
        JSON.stringify(entries[1]),
      );
      await assert.rejects(sb.files.stat('/home/user/bad'), FileNotFoundError, 'a refused tar wrote something');
    }
    const good = await tarOf([{ name: 'f.txt', content: 'data' }]);
    for (const garbage of [new Uint8Array(1024).fill(7), good.subarray(0, 700), new TextEncoder().encode('not a tar at all')]) {
      await assert.rejects(sb.files.upload('/home/user/bad', garbage), (e) => code(e) === 'FILE_INVALID');
    }
    await assert.rejects(sb.files.stat('/home/user/bad'), FileNotFoundError);
  });
});

/** `realm blob`: put, get, ls, rm, pin, unpin, gc — the daemon's content-addressed blob store. */
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';
import { formatSize } from '../../util/units.js';

/** Progress on a terminal only, for uploads big enough to wait for (redrawn a few times a second). */
function progress(enabled: boolean): { update: (sent: number, total: number | undefined) => void; end: () => void } {
  const tty = enabled && process.stderr.isTTY;
  let last = 0;
  return {
    update(sent, total) {
      if (!tty || (total !== undefined && total < 8 * 1024 * 1024)) return;
      const now = Date.now();
      if (now - last < 200 && sent !== total) return;
      last = now;
      const pct = total ? ` (${Math.floor((sent / total) * 100)}%)` : '';
      process.stderr.write(`\r\x1b[Kuploading ${formatSize(sent)}${total ? ` / ${formatSize(total)}` : ''}${pct}`);
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

export function register(program: Command): void {
  const blob = program.command('blob').description('the blob store (job inputs and artifacts): put, get, ls, rm, pin, unpin, gc');

  blob
    .command('put')
    .description('upload a file (resumable, in chunks) and print its sha256 digest; pinned unless --no-pin')
    .argument('<file>', 'the file, or - for stdin')
    .option('--no-pin', 'leave it unpinned: collected after the grace period unless a job references it')
    .option('--json', 'print JSON')
    .action(
      action(async (file: string, f: { pin: boolean; json?: boolean }) => {
        const bar = progress(!f.json);
        const source = file === '-' ? Readable.toWeb(process.stdin) : file;
        const info = await (
          await client()
        ).blobs.put(source as string | ReadableStream<Uint8Array>, { pin: f.pin, onProgress: bar.update });
        bar.end();
        if (f.json) printJson(info);
        else process.stdout.write(`${info.digest}\n`);
      }),
    );

  blob
    .command('get')
    .description('download a blob (its digest checked) to a file, or - for stdout')
    .argument('<digest>', 'sha256:<hex> (or the hex alone)')
    .argument('<out>', 'where to write it, or - for stdout')
    .action(
      action(async (digest: string, out: string) => {
        const c = await client();
        if (out !== '-') {
          await c.blobs.download(digest, out);
          return;
        }
        // To stdout the bytes go as they come; the daemon breaks the stream of a corrupt blob before its end.
        const body = await c.blobs.get(digest);
        for await (const chunk of Readable.fromWeb(body)) {
          if (!process.stdout.write(chunk as Buffer)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
        }
      }),
    );

  blob
    .command('ls')
    .description(
      'list your blobs (root: all) in the store of the node asked, with sizes, pins and references (in a cluster each node has its own)',
    )
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await (await client()).blobs.ls();
        if (f.json) return printJson(list);
        printTable(
          ['DIGEST', 'SIZE', 'PINNED', 'REFS', 'CREATED', 'EXPIRES'],
          list.map((b) => [
            b.corrupt ? `${b.digest} (corrupt)` : b.digest,
            formatSize(b.size),
            b.pinned ? 'yes' : 'no',
            b.refs,
            ago(b.createdAt),
            b.expiresAt ? ago(b.expiresAt) : '-',
          ]),
        );
      }),
    );

  blob
    .command('rm')
    .description('drop your blobs (refused while a job of yours references one)')
    .argument('<digests...>', 'sha256:<hex> each')
    .action(
      action(async (digests: string[]) => {
        const c = await client();
        for (const d of digests) {
          await c.blobs.rm(d);
          process.stdout.write(`${d}\n`);
        }
      }),
    );

  for (const [name, what] of [
    ['pin', 'pin a blob: GC never takes it'],
    ['unpin', 'unpin a blob: GC takes it after the grace period unless it is referenced'],
  ] as const) {
    blob
      .command(name)
      .description(what)
      .argument('<digests...>', 'sha256:<hex> each')
      .option('--json', 'print JSON')
      .action(
        action(async (digests: string[], f: { json?: boolean }) => {
          const c = await client();
          const out = [];
          for (const d of digests) out.push(await (name === 'pin' ? c.blobs.pin(d) : c.blobs.unpin(d)));
          if (f.json) printJson(out);
          else for (const b of out) process.stdout.write(`${b.digest}\n`);
        }),
      );
  }

  blob
    .command('gc')
    .description('collect unpinned, unreferenced blobs past the grace period now (root)')
    .option('--grace <duration>', "collect what has been unpinned this long (e.g. 0s, 10m); default: the daemon's")
    .option('--json', 'print JSON')
    .action(
      action(async (f: { grace?: string; json?: boolean }) => {
        const r = await (await client()).blobs.gc(f.grace !== undefined ? { grace: f.grace } : {});
        if (f.json) printJson(r);
        else
          process.stdout.write(
            `removed ${r.blobs} blobs (${formatSize(r.bytes)}), ${r.uploads} expired uploads, ${r.quarantined} quarantined files\n`,
          );
      }),
    );
}

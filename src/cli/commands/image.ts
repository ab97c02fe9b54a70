/** `realm image`: import, export, pull, ls, inspect, rm, prune. */
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { ImageProgress } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';
import { registerBuild } from './image-build.js';

/** 1536 → `1.5 KiB`. */
export function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Progress on stderr: one line per layer, redrawn in place on a terminal. */
function progressPrinter(quiet: boolean): (p: ImageProgress) => void {
  const tty = process.stderr.isTTY;
  const seen = new Map<string, string>();
  return (p) => {
    if (quiet) return;
    if (p.type === 'status') {
      if (!tty) return;
      process.stderr.write(`\r\x1b[K${p.message}`);
      return;
    }
    const line = `layer ${p.index + 1}/${p.count} ${p.digest.slice(7, 19)} ${p.phase === 'exists' ? 'already stored' : `${p.phase} ${human(p.bytes)}${p.phase === 'download' ? ` / ${human(p.total)}` : ''}`}`;
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
    else if (seen.get(p.digest) !== p.phase) process.stderr.write(`${line}\n`);
    seen.set(p.digest, p.phase);
  };
}

function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

export function register(program: Command): void {
  const img = program.command('image').description('images: build, import, export, pull, list, inspect, remove, prune');
  registerBuild(img);

  img
    .command('ls')
    .description('list images with their sizes')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await (await client()).images.list();
        if (f.json) return printJson(list);
        printTable(
          ['NAME', 'DIGEST', 'SIZE', 'UNPACKED', 'LAYERS', 'SOURCE', 'CREATED'],
          list.map((i) => [
            i.names.join(', '),
            i.digest.replace(/^sha256:/, '').slice(0, 12),
            human(i.size),
            human(i.unpackedSize),
            i.layers,
            i.source,
            ago(i.createdAt),
          ]),
        );
      }),
    );

  img
    .command('inspect')
    .description("an image's manifest, config and unpacked location (JSON)")
    .argument('<name>', 'NAME[:TAG] or sha256:…')
    .option('--json', 'print JSON (the default)')
    .action(action(async (name: string) => printJson(await (await client()).images.inspect(name))));

  img
    .command('rm')
    .description('remove image names (refused while a sandbox uses one)')
    .argument('<names...>', 'NAME[:TAG] or sha256:…')
    .option('--json', 'print JSON')
    .action(
      action(async (names: string[], f: { json?: boolean }) => {
        const c = await client();
        const out: string[] = [];
        for (const n of names) out.push(...(await c.images.remove(n)).removed);
        if (f.json) printJson({ removed: out });
        else for (const n of out) process.stdout.write(`${n}\n`);
      }),
    );

  img
    .command('prune')
    .description('remove blobs and unpacked roots no image or sandbox uses')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const r = await (await client()).images.prune();
        if (f.json) printJson(r);
        else process.stdout.write(`removed ${r.blobs} blobs (${human(r.bytes)}) and ${r.unpacked} unpacked images\n`);
      }),
    );

  img
    .command('import')
    .description("import an OCI archive, a docker save tarball (gzip'd or not) or an OCI image layout directory")
    .argument('<file>', 'the tarball, a layout directory, or - for stdin')
    .option('--name <name>', 'NAME[:TAG] for the image (needed when the archive names none)')
    .option('--json', 'print JSON')
    .action(
      action(async (file: string, f: { name?: string; json?: boolean }) => {
        const st = file === '-' ? null : statSync(file);
        const total = st?.isFile() ? st.size : 0;
        let sent = 0;
        // A layout directory travels as a tar of itself: an OCI archive.
        const { packDir } = await import('../../images/pack.js');
        const src =
          st === null
            ? process.stdin
            : st.isDirectory()
              ? Readable.from(packDir(file) as AsyncIterable<Buffer>)
              : createReadStream(file);
        // Count what is sent on its way to the request body (a 'data' listener would start the stream early).
        const counted = src.pipe(
          new Transform({
            transform(c: Buffer, _e, cb) {
              sent += c.length;
              if (process.stderr.isTTY && !f.json)
                process.stderr.write(`\r\x1b[Kuploading ${human(sent)}${total ? ` / ${human(total)}` : ''}`);
              cb(null, c);
            },
          }),
        );
        const images = await (await client()).images.import(Readable.toWeb(counted), f.name ? { name: f.name } : {});
        endProgress();
        if (f.json) printJson(images);
        else for (const i of images) process.stdout.write(`${i.names.join(', ')} ${i.digest}\n`);
      }),
    );

  img
    .command('export')
    .description('export an image as an OCI archive')
    .argument('<name>', 'NAME[:TAG] or sha256:…')
    .argument('<file>', 'where to write the tar, or - for stdout')
    .action(
      action(async (name: string, file: string) => {
        const body = await (await client()).images.export(name);
        const out: Writable = file === '-' ? process.stdout : createWriteStream(file);
        await pipeline(Readable.fromWeb(body), out);
      }),
    );

  img
    .command('pull')
    .description('pull REGISTRY/NAME[:TAG] from an OCI registry (REALM_REGISTRY_USERNAME/PASSWORD for credentials)')
    .argument('<ref>', 'e.g. 127.0.0.1:5000/tools/busybox:1')
    .option('--insecure', 'allow plain http to a registry that is not on loopback')
    .option('--username <user>', 'registry user (else REALM_REGISTRY_USERNAME on the daemon)')
    .option('--json', 'print JSON')
    .action(
      action(async (ref: string, f: { insecure?: boolean; username?: string; json?: boolean }) => {
        const password = process.env.REALM_REGISTRY_PASSWORD;
        const r = await (
          await client()
        ).images.pull(ref, {
          ...(f.insecure ? { insecure: true } : {}),
          ...(f.username ? { username: f.username, password: password ?? '' } : {}),
          onProgress: progressPrinter(f.json === true),
        });
        endProgress();
        if (f.json) printJson(r);
        else process.stdout.write(`${r.names.join(', ')} ${r.digest}\n`);
      }),
    );
}

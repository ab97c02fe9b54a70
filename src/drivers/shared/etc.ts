/**
 * The /etc every `host`-image sandbox sees (namespace, gvisor, microvm) and the user it names.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/** The user programs run as inside every sandbox. */
export const SANDBOX_USER = { uid: 1000, gid: 1000, name: 'user', home: '/home/user' } as const;

/** /etc entries of the host that carry no secrets and that runtimes expect. */
export const HOST_ETC = [
  'alternatives',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'ssl',
  'ca-certificates',
  'ca-certificates.conf',
  'localtime',
  'timezone',
  'nsswitch.conf',
  'mime.types',
  'protocols',
  'services',
  'gai.conf',
  'host.conf',
  'python3',
  'python3.11',
  'perl',
  'bash.bashrc',
  'profile',
  'inputrc',
  'magic',
  'magic.mime',
  'debian_version',
  'os-release',
  'login.defs',
  'environment',
];

/**
 * Build the /etc every `host`-image sandbox sees: copies of the harmless host entries (symlinks
 * kept as symlinks, /etc/ssl/private left out) plus generated passwd, group and hosts. One bind
 * of this directory replaces dozens of single-file binds, each of which costs bwrap a re-read of
 * the mount table. The directory is named by its content, so a changed host /etc gives a new one
 * while running sandboxes keep theirs. The name is computed from the host's files first, so a
 * daemon start whose /etc is unchanged reuses the directory instead of copying again (hundreds
 * of symlinks under /etc/alternatives make the copy take about half a second).
 *
 * Copies keep their modification times: Python trusts the bytecode cached under /usr for a source
 * file only while the source's mtime matches, and Debian's /usr/lib/python3.X/sitecustomize.py
 * is a link to /etc/python3.X/sitecustomize.py. A fresh mtime made every python start in a
 * sandbox recompile it, about 2 ms of CPU per run (a sixth of a `print(1)`).
 */
export function buildEtc(runtimeDir: string): string {
  const generated = generatedEtc();
  // v2: mtimes are part of the copy (and of its name), so copies made without them are not reused.
  const hash = createHash('sha256').update('v2\0');
  const skip = (src: string): boolean => src.startsWith('/etc/ssl/private');
  const walk = (path: string, rel: string): void => {
    if (skip(path)) return;
    const st = lstatSync(path);
    hash.update(`${rel}\0`);
    if (st.isSymbolicLink()) hash.update(`l${readlinkSync(path)}\0`);
    else if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name), `${rel}/${name}`);
    else hash.update(readFileSync(path)).update(`\0${st.mode}\0${st.mtimeMs}\0`);
  };
  for (const e of HOST_ETC) if (existsSync(`/etc/${e}`)) walk(`/etc/${e}`, e);
  for (const [name, text] of Object.entries(generated)) hash.update(`g${name}\0${text}\0`);
  const final = join(runtimeDir, `etc-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(final)) return final;
  const tmp = join(runtimeDir, `etc.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o755 });
  for (const e of HOST_ETC) {
    if (!existsSync(`/etc/${e}`)) continue;
    cpSync(`/etc/${e}`, join(tmp, e), {
      recursive: true,
      verbatimSymlinks: true,
      preserveTimestamps: true,
      filter: (src) => !skip(src),
    });
  }
  for (const [name, text] of Object.entries(generated)) writeFileSync(join(tmp, name), text, { mode: 0o644 });
  chmodSync(tmp, 0o755);
  try {
    renameSync(tmp, final);
  } catch (e) {
    // Another daemon sharing this runtime dir made the same directory first.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(final)) throw e;
  }
  return final;
}

/** The generated /etc files every sandbox sees, by name. */
function generatedEtc(): Record<string, string> {
  const { uid, gid, name, home } = SANDBOX_USER;
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${name}:x:${uid}:${gid}:sandbox user:${home}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\n${name}:x:${gid}:\nnogroup:x:65534:\n`,
    hosts: '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    // Mount point for the host's resolv.conf when a sandbox has network.
    'resolv.conf': '',
  };
}

/** A minimal bubblewrap sandbox for unit tests: a new user namespace as uid/gid 1000, the host's /usr read-only, /proc. */
import { existsSync } from 'node:fs';

/** bwrap's arguments up to the test's own binds (append them, then `--` and the command). */
export function minimalBwrapArgs(): string[] {
  const links = ['bin', 'lib', 'lib64', 'sbin']
    .filter((l) => existsSync(`/usr/${l}`))
    .flatMap((l) => ['--symlink', `usr/${l}`, `/${l}`]);
  return ['--unshare-user', '--uid', '1000', '--gid', '1000', '--ro-bind', '/usr', '/usr', ...links, '--proc', '/proc'];
}

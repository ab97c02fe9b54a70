/**
 * Which host directories may be a sandbox's root filesystem: only those inside a directory the
 * operator allowed (`realm serve --image-dir DIR`), never `/` and never one that holds the data
 * dir or lies inside it (the daemon's state, other sandboxes' homes and proxy sockets). Checked on
 * the real paths (symlinks resolved) when the daemon starts and again at every use, so a link
 * swapped in later leads nowhere.
 *
 * @example
 * const dirs = new ImageDirs(['/srv/rootfs'], '/var/lib/realm');
 * dirs.resolve('/srv/rootfs/alpine'); // '/srv/rootfs/alpine'
 * dirs.resolve('/');                  // throws IMAGE_NOT_ALLOWED
 */
import { realpathSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { RealmError } from '../util/errors.js';

/** `path` is `dir` or below it (both absolute and normalized). */
const within = (path: string, dir: string): boolean => path === dir || dir === '/' || path.startsWith(`${dir}/`);

function real(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** At daemon start, before anything is opened: throws when one of `dirs` cannot hold images. */
export function checkImageDirs(dirs: string[], dataDir: string): void {
  void new ImageDirs(dirs, dataDir);
}

export class ImageDirs {
  /** The operator's directories as given (their real paths are looked up at each use). */
  private readonly dirs: string[];

  /** Refuses (at daemon start) a directory that is missing, `/`, or overlaps the data dir. */
  constructor(
    dirs: string[],
    private readonly dataDir: string,
  ) {
    this.dirs = dirs.map((d) => resolvePath(d));
    for (const d of this.dirs) {
      const why = this.unfit(d);
      if (why)
        throw new RealmError('INVALID_REQUEST', `--image-dir ${d}: ${why}; name a directory that holds only root filesystems`);
    }
  }

  /** Why `dir` (an allowed directory) cannot hold images now, or undefined when it can. */
  private unfit(dir: string): string | undefined {
    const r = real(dir);
    if (!r) return 'no such directory';
    if (r === '/') return "that is the host's root";
    const data = real(this.dataDir) ?? resolvePath(this.dataDir);
    if (within(data, r)) return `it holds the data dir ${this.dataDir}`;
    if (within(r, data)) return `it is inside the data dir ${this.dataDir}`;
    return undefined;
  }

  /**
   * The real path of `image` (an absolute path), which the driver mounts. Refused with
   * IMAGE_NOT_ALLOWED outside the allowed directories (before looking at the path, so a refusal
   * says nothing of what exists there), IMAGE_NOT_FOUND when it does not exist.
   */
  resolve(image: string): string {
    const given = resolvePath(image);
    const refuse = (): never => {
      throw new RealmError(
        'IMAGE_NOT_ALLOWED',
        `image "${image}" is a host directory outside those the operator allows: root filesystem directories must be inside a directory given to \`realm serve --image-dir DIR\` (never / or the data dir); or use "host" or an image of \`realm image ls\``,
      );
    };
    const allowed = this.dirs.filter((d) => !this.unfit(d)).map((d) => ({ given: d, real: real(d) ?? d }));
    if (/(^|\/)\.\.(\/|$)/.test(image) || !allowed.some((d) => within(given, d.given) || within(given, d.real))) refuse();
    const r = real(given);
    if (!r) throw new RealmError('IMAGE_NOT_FOUND', `image "${image}" not found: no such directory`);
    // A link inside an allowed directory may point anywhere: the real path must be inside too.
    if (r === '/' || !allowed.some((d) => within(r, d.real))) refuse();
    return r;
  }
}

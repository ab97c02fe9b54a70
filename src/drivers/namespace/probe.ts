/** What this host can do for the namespace driver, each missing piece with its reason. */
import { existsSync, readFileSync } from 'node:fs';
import type { DriverProbe } from '../driver.js';
import { runCommand } from '../../util/run-command.js';
import { probeCgroups } from '../shared/cgroups.js';
import { BWRAP, FS_TOOL, HELPER, INIT } from '../shared/helper.js';

export async function probeNamespace(probeUid: number): Promise<DriverProbe> {
  const details: DriverProbe['details'] = {};
  const missing: string[] = [];

  const isRoot = process.getuid?.() === 0;
  details.root = isRoot;
  if (!isRoot) missing.push('the daemon must run as root to manage cgroups and mounts (run `sudo realm serve`)');

  const cg = probeCgroups();
  details.cgroup = cg.ok ? `v${cg.manager.version}` : 'unavailable';
  if (cg.ok) details.cgroupControllers = cg.manager.describe();
  else missing.push(cg.reason);

  const status = safeRead('/proc/self/status');
  details.seccomp = /^Seccomp:/m.test(status);
  if (!details.seccomp) missing.push('the kernel has no seccomp support (CONFIG_SECCOMP_FILTER)');

  details.bwrap = existsSync(BWRAP) ? BWRAP : 'missing';
  if (!existsSync(BWRAP)) missing.push('bubblewrap is not installed (apt-get install bubblewrap)');
  details.helper = existsSync(HELPER) && existsSync(INIT) && existsSync(FS_TOOL);
  if (!details.helper) missing.push(`native helpers are not built (${HELPER}); run npm run build`);

  details.slirp4netns =
    existsSync('/usr/bin/slirp4netns') || existsSync('/usr/local/bin/slirp4netns')
      ? 'installed (network all)'
      : 'missing: network "all" unavailable (apt-get install slirp4netns)';
  const maxUserNs = safeRead('/proc/sys/user/max_user_namespaces').trim();
  details.maxUserNamespaces = maxUserNs || 'unknown';
  if (existsSync(BWRAP) && missing.length === 0) {
    // The real test: can an unprivileged user build a sandbox with every namespace we use?
    const r = await runCommand(
      BWRAP,
      [
        '--unshare-user',
        '--unshare-pid',
        '--unshare-net',
        '--unshare-ipc',
        '--unshare-uts',
        '--disable-userns',
        '--ro-bind',
        '/usr',
        '/usr',
        '--symlink',
        'usr/lib64',
        '/lib64',
        '--symlink',
        'usr/lib',
        '/lib',
        '--proc',
        '/proc',
        '--dev',
        '/dev',
        '/usr/bin/true',
      ],
      { uid: probeUid, gid: probeUid, env: {}, timeoutMs: 10_000 },
    ).catch((e: Error) => ({ code: -1, stderr: e.message }));
    details.userNamespaces = r.code === 0;
    if (r.code !== 0)
      missing.push(
        `unprivileged user namespaces do not work here: ${r.stderr.trim()} (check sysctl user.max_user_namespaces and kernel.unprivileged_userns_clone)`,
      );
  }
  return {
    name: 'namespace',
    available: missing.length === 0,
    ...(missing.length ? { reason: missing.join('; ') } : {}),
    details,
  };
}

function safeRead(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

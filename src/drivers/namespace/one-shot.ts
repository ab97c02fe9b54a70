/**
 * The namespace driver's one-shot sandboxes: built ahead (for warm pools) with realm-init as
 * PID 1 waiting on one socket, then given one program whose life is the sandbox's.
 *
 * realm-helper's own builder (native/launch.c) makes the sandbox where the kernel allows, else
 * bubblewrap with the same layout. The socket carries the builder's errors, "ready", the request
 * (files, environment, command, stdin) and the program's output and end (run-channel.ts).
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverSandboxSpec, ExitInfo, PreparedRun, ProgramAhead } from '../driver.js';
import type { Forkserver, StdioSpec } from '../shared/forkserver.js';
import { startSlirp } from '../shared/slirp.js';
import { readAll, signalName } from '../shared/util.js';
import { RealmError } from '../../util/errors.js';
import type { CgroupManager } from '../shared/cgroups.js';
import { type CgroupStats, type StatsReader, changedLimits } from '../shared/cgroups/types.js';
import { checkRelativePath } from '../shared/files.js';
import { BWRAP } from '../shared/helper.js';
import { type Runtime, bwrapArgs, launchArgs } from './layout.js';
import { RunChannel, record } from './run-channel.js';

/** How long a finished one-shot sandbox may take to end on its own before it is killed. */
const RELEASE_WAIT_MS = 250;

export interface OneShotHost {
  cg: CgroupManager;
  rt: Runtime;
  forks: Forkserver;
  cgroupRoot: string;
  /** The group every sandbox uid carries (the spec says the uid). */
  sandboxGroup: number;
  /** Build with realm-helper's own builder (else bubblewrap). */
  native: boolean;
  /** Where bubblewrap finds the seccomp program (an fd the helper opens). */
  seccompFd: number;
}

export async function prepareOneShot(h: OneShotHost, spec: DriverSandboxSpec, ahead?: ProgramAhead): Promise<PreparedRun> {
  if (ahead?.lateFile !== undefined && (!/^[^/]+$/.test(ahead.lateFile) || /^\.\.?$/.test(ahead.lateFile)))
    throw new Error(`a late main file is a name in the home directory, not ${JSON.stringify(ahead.lateFile)}`);
  const rel = `${h.cgroupRoot}/${spec.id}`;
  const limits = { memoryBytes: spec.limits.memoryBytes, pids: spec.limits.pids, cpus: spec.limits.cpus };
  const native = h.native && spec.mounts.length === 0 && !spec.proxy;
  // realm's builder makes the cgroups itself and reports the figures; the fork server removes
  // them once the sandbox is gone. Under bubblewrap the daemon does both.
  const plan = native ? h.cg.plan(rel, limits) : undefined;
  const cg = plan ? h.cg.open(rel) : h.cg.create(rel);
  if (!plan) cg.setLimits(limits);
  const command = ['/.realm/init', 'serve', '3'];
  // fd 4: the builder's report of PID 1's pid, wanted only to attach slirp4netns for `all`.
  const infoFd = spec.network === 'all' ? { infoFd: 4 } : {};
  const args = plan
    ? launchArgs(spec, h.rt, { cgroup: plan, statsFd: 3, group: h.sandboxGroup, keepFds: [3], command, ...infoFd })
    : [
        'spawn',
        ...cg.procsFiles().flatMap((f) => ['--cgroup', f]),
        '--uid',
        String(spec.uid),
        '--gid',
        String(spec.uid),
        '--groups',
        String(h.sandboxGroup),
        '--fd',
        `${h.seccompFd}=${h.rt.seccompPath}`,
        '--keep-fd',
        '3',
        '--keep-fd',
        '4',
        '--',
        BWRAP,
        ...bwrapArgs(spec, h.rt, { home: { tmpfsBytes: spec.limits.diskBytes }, seccompFd: h.seccompFd, command, ...infoFd }),
      ];
  // The builder's stderr is the socket too: its error, if any, is what comes instead of "ready".
  const stdio: StdioSpec[] = ['ignore', 'ignore', { dup: 3 }, 'pipe', spec.network === 'all' ? 'pipe' : 'ignore'];
  let child;
  try {
    // Its socket is read when the run starts (see below).
    child = await h.forks.spawn(args, stdio, plan ? { cleanup: plan.dirs } : {});
  } catch (e) {
    cg.remove();
    throw e;
  }
  const socket = child.stdio[3] as NonNullable<(typeof child.stdio)[number]>;
  const chan = new RunChannel();
  socket.on('data', (d: Buffer) => {
    if (chan.feed(d)) return;
    // A slow reader of the output: the program waits on its pipe rather than the daemon buffering.
    socket.pause();
    void chan.drained().then(() => socket.resume());
  });
  socket.once('close', () => chan.close());
  socket.on('error', () => undefined); // the sandbox died: its exit says why
  // A program started ahead starts once the sandbox is ready (PID 1 reads this after "ready"),
  // with the sandbox's waiting limits; the run's are set before anything of the run reaches it.
  // One whose main file comes late takes its request whole, as a program started with it does.
  const lateFile = ahead?.lateFile;
  const late = lateFile !== undefined;
  if (ahead) socket.write(Buffer.concat([...commandRecords(ahead), ...(late ? record('L', lateFile) : record('P', ''))]));
  let exited = false;
  const gone = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
      exited = true;
      resolve({ code, signal });
    });
  });
  // A sandbox with network `all` is ready once its NAT is attached, which needs PID 1's pid:
  // wait for it. Others are handed out at once: their socket is read when the run starts (its
  // "ready" then comes with the program's output, no turn of the event loop of its own), and a
  // builder that fails ends the sandbox (alive() is false) or the run (SANDBOX_START_FAILED).
  try {
    if (spec.network === 'all') {
      socket.resume();
      const failed = gone.then(async () => {
        await chan.whenEnded();
        throw new Error(`one-shot sandbox did not start: ${chan.text.trim() || 'its builder failed'}`);
      });
      await Promise.race([chan.whenReady(), failed]);
      failed.catch(() => undefined);
      const text = await readAll(child.stdio[4] as Readable);
      const pid = (JSON.parse(text) as { 'child-pid'?: number })['child-pid'];
      if (!pid) throw new Error('the builder reported no child pid');
      await startSlirp(`/proc/${pid}/ns/net`, cg.procsFiles());
    }
  } catch (e) {
    socket.destroy();
    await cg.kill().catch(() => undefined);
    cg.remove();
    throw e;
  }
  // The figures' files, opened once the sandbox is built (its cgroups are then there) and read
  // at the program's end without opening any; closed with the sandbox (release, discard).
  let statFiles: StatsReader | undefined;
  let statsDone = false;
  const closeStats = (): void => {
    statsDone = true;
    statFiles?.close();
    statFiles = undefined;
  };
  const discard = async (): Promise<void> => {
    closeStats();
    socket.destroy();
    await cg.kill();
    cg.remove();
  };
  // Once the builder has exited the sandbox is empty (PID 1's end takes every process of its
  // namespace with it): the fork server has removed its cgroups (realm's builder), or they go
  // now without a search for processes to kill (bubblewrap).
  const release = async (): Promise<void> => {
    closeStats();
    const ended = await Promise.race([gone.then(() => true), sleep(RELEASE_WAIT_MS).then(() => false)]);
    if (ended && plan && !child.cleanupBusy) return;
    if (!ended || !cg.tryRemove()) await discard();
  };
  return {
    id: spec.id,
    alive: () => !exited,
    discard,
    // A program started ahead streams its stdin (it is already running); any other takes it whole.
    takesInput: !ahead || late,
    start: (files, exec, input) => {
      for (const f of files) checkRelativePath(f.path);
      if (ahead && commandRecords(ahead).join('\0') !== commandRecords(exec).join('\0'))
        throw new Error('a one-shot sandbox prepared with a program ahead runs that program only');
      const changed = changedLimits(limits, { memoryBytes: exec.memoryBytes, pids: exec.pids, cpus: exec.cpus });
      // The run's own limits go on before its program starts (the request starts it). realm's
      // builder makes the cgroups itself: until it says "ready" they may not be there yet.
      const limited =
        changed.memoryBytes || changed.pids || changed.cpus
          ? plan
            ? chan.whenReady().then(() => cg.setLimits(changed))
            : Promise.resolve(cg.setLimits(changed))
          : undefined;
      limited?.catch(() => socket.destroy()); // the sandbox went away: its run ends as it ended
      const records = [
        ...files.flatMap((f) => [...record('F', f.path), ...record('D', f.content)]),
        ...(ahead ? [] : commandRecords(exec)),
      ];
      // In order, after the limits (reactions to one promise run in the order they were added);
      // at once when there are none to set.
      const write = (data: Buffer, done?: () => void): void => {
        if (!limited) socket.write(data, () => done?.());
        else
          void limited.then(
            () => socket.write(data, () => done?.()),
            () => done?.(),
          );
      };
      const send = (data: Buffer): void => {
        if (!limited) socket.end(data);
        else
          void limited.then(
            () => socket.end(data),
            () => undefined,
          );
      };
      let stdin;
      if (ahead && !late) {
        // The program runs: its files go now, its stdin as it comes.
        write(Buffer.concat(records));
        stdin = exec.stdin ? chan.streamWriter(write, send) : null;
        if (!stdin) send(Buffer.concat(record('X', '')));
      } else {
        // The request goes whole: now, with its stdin when that came with it, else when stdin ends.
        stdin = exec.stdin ? chan.requestWriter(send, records) : null;
        if (!stdin) send(Buffer.concat([...records, ...(input ? record('I', input) : []), ...record('X', '')]));
      }
      // What follows is done while the program starts.
      if (plan)
        void chan.whenReady().then(() => {
          if (!statsDone) statFiles = cg.openStats();
        });
      socket.resume();
      // A limit (output, time) kills the whole sandbox, builder too: no figures are reported then, and
      // the cgroup may be gone by the time they are read; what it counted up to the kill is kept.
      let atKill: CgroupStats | undefined;
      const exit = chan.whenEnded().then(async (end): Promise<ExitInfo> => {
        if (!chan.ready) {
          const b = await gone;
          throw new RealmError(
            'SANDBOX_START_FAILED',
            `the run's sandbox could not start: ${chan.text.trim() || `its builder ended (${b.signal ?? `exit ${b.code}`})`}`,
          );
        }
        // PID 1 refused the request (a file it could not write): the program never started.
        const refused = end ? undefined : /^error cannot write (.*)$/m.exec(chan.text)?.[1];
        if (refused !== undefined) {
          throw new RealmError(
            'INVALID_REQUEST',
            `the run's files could not be written (${refused}): give each file a path of its own, none under another file's, within the run's disk`,
          );
        }
        // Without a reported end the whole sandbox was killed (a limit): the builder's end is what we have.
        const builder = end ? undefined : await gone;
        // The program has ended: its cgroup's counters are final but for PID 1's last steps. They
        // are read now rather than waiting for realm's builder to report them once PID 1 is gone
        // (~0.2 ms: PID 1's exit); a cgroup already removed (no CPU counted) leaves that report.
        // Its own exit, the namespaces' teardown, is release()'s to wait for, after the answer.
        const early = plan && end && !chan.stats ? (statFiles?.read() ?? cg.stats()) : undefined;
        if (plan && !(early && early.cpuNs > 0)) await chan.whenFigures();
        const st =
          early && early.cpuNs > 0
            ? early
            : chan.stats && chan.stats.cpu >= 0
              ? { cpuNs: chan.stats.cpu * plan!.cpuNsPerUnit, memoryPeakBytes: chan.stats.peak, oomKills: chan.stats.oom }
              : latest(cg.stats(), atKill);
        const figures = {
          oomKilled: st.oomKills > 0,
          cpuMs: Math.round(st.cpuNs / 1e6),
          memoryBytes: Math.max(0, st.memoryPeakBytes),
        };
        if (end)
          return {
            exitCode: end.kind === 'exit' ? end.n : null,
            signal: end.kind === 'signal' ? signalName(end.n) : null,
            ...figures,
          };
        return { exitCode: builder?.code ?? null, signal: builder?.signal ?? null, ...figures };
      });
      return {
        stdin,
        stdout: chan.stdout,
        stderr: chan.stderr,
        signal: (sig) => void child.kill(sig),
        kill: async () => {
          atKill = cg.stats();
          await cg.kill();
          atKill = latest(cg.stats(), atKill);
        },
        wait: () => exit,
        memoryStall: () => ({ limitBytes: exec.memoryBytes ?? limits.memoryBytes, ...cg.refaults() }),
        release,
      };
    },
  };
}

/** The later of two readings of the same counters (each only grows; a removed cgroup reads 0). */
function latest(a: CgroupStats, b: CgroupStats | undefined): CgroupStats {
  if (!b) return a;
  return {
    cpuNs: Math.max(a.cpuNs, b.cpuNs),
    memoryPeakBytes: Math.max(a.memoryPeakBytes, b.memoryPeakBytes),
    oomKills: Math.max(a.oomKills, b.oomKills),
  };
}

/** A command's records: its environment, then its arguments. */
function commandRecords(c: ProgramAhead): Buffer[] {
  return [...Object.entries(c.env).flatMap(([k, v]) => record('E', `${k}=${v}`)), ...c.argv.flatMap((a) => record('A', a))];
}

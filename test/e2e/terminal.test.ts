/**
 * Interactive exec on a real pseudo-terminal: through the SDK (typing, resizing, Ctrl-C) and
 * `realm sandbox shell` driven in tmux like a person would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Interactive, Sandbox } from '@realm/sdk';
import { REALM_BIN } from '../helpers/cli.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { TMUX, terminal } from '../helpers/tmux.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping terminal tests: ${skip}`);
if (!TMUX) console.log('# skipping the tmux case: tmux is not installed (npm run setup installs it)');

/** Wait until the terminal's output (so far) matches. */
async function until(out: () => string, re: RegExp, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (re.test(out())) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never saw ${what}; output was:\n${out()}`);
}

void describe('terminal', { skip }, () => {
  let t: TestDaemon;
  let sb: Sandbox;
  before(async () => {
    t = await startTestDaemon();
    sb = await Sandbox.create({}, t.client);
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

  void it('a terminal: echo, window size and its changes, Ctrl-C, exit code', async () => {
    const term: Interactive = await sb.attach(['/bin/bash', '--norc', '-i'], { rows: 30, cols: 100 });
    let out = '';
    term.onData((_s, d) => (out += d));
    term.write('tty; stty size\n');
    await until(() => out, /\/dev\/pts\/\d+[\s\S]*30 100/, 'the tty and its size');
    term.resize(40, 120);
    term.write('stty size\n');
    await until(() => out, /40 120/, 'the new size');
    term.write('sleep 100\n');
    await new Promise((r) => setTimeout(r, 200));
    term.write('\x03'); // Ctrl-C reaches the program as SIGINT through the terminal
    term.write('echo after-interrupt $?\n');
    await until(() => out, /after-interrupt 130/, 'the interrupted sleep');
    term.write('exit 7\n');
    assert.deepEqual(await term.exited, { exitCode: 7, signal: null });
  });

  void it('without a terminal: stdout and stderr apart, stdin to the end', async () => {
    const p = await sb.attach(['/bin/sh', '-c', 'cat; echo err >&2'], { tty: false });
    let out = '';
    let err = '';
    p.onData((s, d) => (s === 'stdout' ? (out += d) : (err += d)));
    p.write('line\n');
    p.eof();
    assert.equal((await p.exited).exitCode, 0);
    assert.equal(out, 'line\n');
    assert.equal(err, 'err\n');
  });

  void it('realm sandbox shell in tmux: type, see the echo, exit', { skip: TMUX ? false : 'tmux is not installed' }, async () => {
    const term = terminal(
      'realm-test',
      `REALM_URL=${t.url} REALM_TOKEN=${t.token} ${REALM_BIN} sandbox shell ${sb.id}; echo shell-exited-$?; sleep 30`,
      { cols: 100, rows: 30 },
      0,
    );
    try {
      await term.until(/\$ ?$/m, 'a prompt');
      term.keys('echo hello-$((6*7)) && whoami', 'Enter');
      await term.until(/hello-42\s+user/, 'the command output');
      term.keys('exit 3', 'Enter');
      await term.until(/shell-exited-3/, 'the shell to exit with its code');
    } finally {
      term.close();
    }
  });
});

/** A real ssh-agent holding one fresh key, for agent-forwarding tests. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestAgent {
  socket: string;
  stop(): void;
}

/** Start an agent and add an ed25519 key whose comment is `comment`. */
export async function startAgent(comment: string): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'realm-agent-'));
  const socket = join(dir, 'agent.sock');
  const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', join(dir, 'key')]);
  execFileSync('ssh-add', ['-q', join(dir, 'key')], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
  return {
    socket,
    stop: () => {
      agent.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

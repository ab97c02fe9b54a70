/**
 * Rolling updates of a process service and routing by Host: a good update replaces the replicas
 * one at a time with every request answered meanwhile; a bad one (a command that exits, one that
 * never gets healthy) rolls back with the old replicas serving throughout; `svc history` lists
 * them all; `NAME.realm.localhost` reaches the service as `/NAME/` does, with the same visibility.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { ServiceGeneration, ServiceInfo, ServicePushOptions } from '@realm/sdk';
import { realm as realmCli } from '../helpers/cli.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { until as untilWithin } from '../helpers/until.js';

/** A rollout takes a while: every wait here is up to a minute. */
const until = <T>(what: string, check: () => Promise<T | undefined>): Promise<T> => untilWithin(what, check, 60_000);

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping service rollout tests: ${skip}`);

/** A replica of version V: writes it and a 32 MiB file, marks itself healthy (/ok), serves its home. */
const serve = (v: string): string =>
  `echo ${v} > version.txt && head -c 33554432 /dev/zero > big.bin && touch ok && exec /usr/bin/python3 -m http.server 8000`;
const BIG = 32 * 1024 * 1024;

/** A GET through the gateway with the headers given (Host among them). */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A GET read slowly (a pause after each chunk), so the response is under way for a while; the bytes that came. */
function slowGet(url: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve) => {
    const req = httpRequest(url, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, bytes }));
    });
    req.on('error', () => resolve({ status: 0, bytes: 0 }));
    req.end();
  });
}

void describe('service rollouts', { skip }, () => {
  let t: TestDaemon;
  let gw = '';
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0' });
    gw = t.daemon.gatewayUrl ?? '';
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  const base: ServicePushOptions = {
    name: 'rl',
    image: 'host',
    command: serve('v1'),
    port: 8000,
    replicas: 2,
    health: { path: '/ok', interval: '200ms', threshold: 2 },
    restart: { delay: '200ms' },
  };
  const settled = (name: string, generation: number, n: number): Promise<ServiceInfo> =>
    until(`generation ${generation} of ${name} settled with ${n} healthy replicas`, async () => {
      const s = await t.client.services.get(name);
      return s.generation === generation &&
        s.rollout === null &&
        s.healthy === n &&
        s.replicaList.length === n &&
        s.replicaList.every((r) => r.generation === generation)
        ? s
        : undefined;
    });

  /**
   * Ask the gateway for /rl/version.txt in a loop (two clients at once) while `during` runs, and
   * watch how many replicas the service has; returns every answer's status and body.
   */
  async function traffic(during: () => Promise<void>): Promise<{ answers: { status: number; body: string }[]; most: number }> {
    const answers: { status: number; body: string }[] = [];
    let most = 0;
    let done = false;
    const client = async (): Promise<void> => {
      while (!done) answers.push(await get(gw, '/rl/version.txt').catch((e: unknown) => ({ status: 0, body: String(e) })));
    };
    // Long downloads too: a replica that goes must first finish the responses it is giving.
    const downloader = async (): Promise<void> => {
      while (!done) {
        const r = await slowGet(`${gw}/rl/big.bin`);
        if (r.status !== 200 || r.bytes !== BIG)
          answers.push({ status: 0, body: `big.bin: status ${r.status}, ${r.bytes} bytes` });
      }
    };
    const watch = async (): Promise<void> => {
      while (!done) {
        most = Math.max(most, (await t.client.services.get('rl')).replicaList.length);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const loops = [client(), client(), downloader(), watch()];
    try {
      await during();
    } finally {
      done = true;
      await Promise.all(loops);
    }
    return { answers, most };
  }

  void it('a good update replaces the replicas one at a time, every request answered meanwhile', async () => {
    const first = await t.client.services.push(base);
    assert.equal(first.generation, 1);
    await settled('rl', 1, 2);
    const { answers, most } = await traffic(async () => {
      const pushed = await t.client.services.push({ ...base, command: serve('v2') });
      assert.equal(pushed.generation, 2);
      assert.deepEqual(pushed.rollout?.from, 1);
      await settled('rl', 2, 2);
    });
    const failed = answers.filter((a) => a.status !== 200);
    assert.deepEqual(failed, [], 'no request failed during the rollout');
    assert.ok(answers.some((a) => a.body.trim() === 'v1') && answers.some((a) => a.body.trim() === 'v2'));
    assert.ok(most <= 3, `at most one replica more than wanted (saw ${most})`);
    assert.equal((await get(gw, '/rl/version.txt')).body.trim(), 'v2');
    const logs: string[] = [];
    for await (const chunk of t.client.services.logs('rl')) logs.push(chunk);
    assert.match(logs.join(''), /generation 2 rolled out/);
    // Every replica of generation 1 is gone, sandbox and all.
    await until('the old sandboxes gone', async () =>
      (await t.daemon.engine.listSandboxes()).filter((s) => s.labels['realm.service'] === 'rl').length === 2 ? true : undefined,
    );
  });

  void it('an update whose command exits rolls back; the old replicas serve throughout', async () => {
    const before = await settled('rl', 2, 2);
    const { answers } = await traffic(async () => {
      const pushed = await t.client.services.push({ ...base, command: 'echo v3 > version.txt; exit 3' });
      assert.equal(pushed.generation, 3);
      await until('the rollback', async () => {
        const s = await t.client.services.get('rl');
        return s.generation === 2 && s.rollout === null ? s : undefined;
      });
      await settled('rl', 2, 2);
    });
    assert.deepEqual(
      answers.filter((a) => a.status !== 200 || a.body.trim() !== 'v2'),
      [],
    );
    const after = await t.client.services.get('rl');
    assert.match(after.lastError ?? '', /generation 3 rolled back to 2: replica rl-[0-9a-f]+ exited \(exit code 3\)/);
    // The old replicas were kept, not replaced.
    assert.deepEqual(after.replicaList.map((r) => r.sandbox).sort(), before.replicaList.map((r) => r.sandbox).sort());
  });

  void it('an update that never gets healthy rolls back at its deadline', async () => {
    const { answers } = await traffic(async () => {
      // It listens, but /ok is missing: its health check never passes.
      const pushed = await t.client.services.push({
        ...base,
        command: 'echo v4 > version.txt && exec /usr/bin/python3 -m http.server 8000',
        update: { healthyDeadline: '2s' },
      });
      assert.equal(pushed.generation, 4);
      assert.equal(pushed.update.healthyDeadlineMs, 2000);
      await until('the rollback', async () => {
        const s = await t.client.services.get('rl');
        return s.generation === 2 && s.rollout === null ? s : undefined;
      });
      await settled('rl', 2, 2);
    });
    assert.deepEqual(
      answers.filter((a) => a.status !== 200 || a.body.trim() !== 'v2'),
      [],
    );
    assert.match((await t.client.services.get('rl')).lastError ?? '', /generation 4 rolled back to 2: .*not healthy within 2s/);
  });

  void it('history lists every generation and how it ended (SDK, API, CLI)', async () => {
    const h: ServiceGeneration[] = await t.client.services.history('rl');
    assert.deepEqual(
      h.map((g) => [g.generation, g.cause, g.outcome]),
      [
        [1, 'push', 'rolled-out'],
        [2, 'push', 'rolled-out'],
        [3, 'push', 'rolled-back'],
        [4, 'push', 'rolled-back'],
      ],
    );
    assert.match(h[2]?.reason ?? '', /exited \(exit code 3\)/);
    assert.match(h[3]?.reason ?? '', /not healthy within 2s/);
    assert.equal(h[0]?.digest === h[1]?.digest, false);
    assert.match(h[0]?.digest ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.ok(h.every((g) => g.by && g.finishedAt !== null));
    // A restart is a new generation of the same spec: numbered past the rolled-back ones.
    const restarted = await t.client.services.restart('rl');
    assert.equal(restarted.generation, 5);
    await settled('rl', 5, 2);
    const after = await t.client.services.history('rl');
    assert.deepEqual(after.at(-1) && [after.at(-1)?.cause, after.at(-1)?.outcome], ['restart', 'rolled-out']);
    assert.equal(after.at(-1)?.digest, h[1]?.digest);
    const cli = await realmCli(['svc', 'history', 'rl'], { url: t.url });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /GENERATION\s+DIGEST/);
    assert.match(cli.stdout, /\n\s*3\s+sha256:[0-9a-f]+\s+.*push\s+rolled-back\s+replica rl-[0-9a-f]+ exited/);
    const json = JSON.parse((await realmCli(['svc', 'history', 'rl', '--json'], { url: t.url })).stdout) as ServiceGeneration[];
    assert.equal(json.length, 5);
  });

  void it('a scale made during a rollout is kept by its rollback', async () => {
    await settled('rl', 5, 2);
    const pushed = await t.client.services.push({
      ...base,
      command: 'echo v6 > version.txt && exec /usr/bin/python3 -m http.server 8000',
      update: { healthyDeadline: '3s' },
    });
    assert.equal(pushed.generation, 6);
    const scaled = await t.client.services.scale('rl', 3);
    assert.equal(scaled.replicas, 3);
    assert.equal(scaled.rollout?.from, 5, 'scaled while generation 6 rolls out');
    const back = await until('the rollback', async () => {
      const s = await t.client.services.get('rl');
      return s.generation === 5 && s.rollout === null ? s : undefined;
    });
    assert.equal(back.replicas, 3, "generation 5's spec came back with the count set during the rollout");
    await settled('rl', 5, 3);
    assert.equal((await get(gw, '/rl/version.txt')).body.trim(), 'v2');
  });

  void it('routes NAME.realm.localhost to the service, with the visibility its path has', async () => {
    const port = new URL(gw).port;
    const host = `rl.realm.localhost:${port}`;
    const byHost = await get(gw, '/version.txt', { host });
    assert.equal(byHost.status, 200);
    assert.equal(byHost.body.trim(), 'v2');
    // A local service: no page elsewhere may drive it, by Host or by path alike.
    const origin = { origin: 'http://evil.example' };
    assert.equal((await get(gw, '/version.txt', { host, ...origin })).status, 403);
    assert.equal((await get(gw, '/rl/version.txt', origin)).status, 403);
    // A public one: any page.
    await t.client.services.push({ ...base, name: 'pub', replicas: 1, visibility: 'public' });
    await settled('pub', 1, 1);
    assert.equal((await get(gw, '/version.txt', { host: `pub.realm.localhost:${port}`, ...origin })).status, 200);
    // No such service; and a preview URL's form is never a service's.
    const none = await get(gw, '/', { host: `nope.realm.localhost:${port}` });
    assert.equal(none.status, 404);
    assert.equal((await get(gw, '/', { host: `8000-rl.realm.localhost:${port}` })).status, 401);
    await t.client.services.remove('pub');
  });

  void it('leaves nothing behind', async () => {
    await t.client.services.remove('rl');
    assert.deepEqual(
      (await t.daemon.engine.listSandboxes()).map((s) => s.labels),
      [],
    );
    assert.deepEqual(await leftovers(t), []);
  });
});

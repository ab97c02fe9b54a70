/**
 * The dashboard's first load: a signed-in browser (Debian's chromium, headless, an empty cache
 * each round) opens /ui/ on loopback; measured are the JavaScript it fetched (compressed, as sent)
 * until the Overview is interactive (its tables shown and the event stream open), and that time
 * by the page's own clock from the start of the navigation. Targets (issue 20): ≤ 300 KB
 * compressed JavaScript, ≤ 1 s to interactive. Also printed: each chunk's gzip size in dist/web
 * (the terminal's xterm.js loads only with a sandbox's terminal tab).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { tokens } from '@realm/sdk';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { fmt, measureWithDaemon, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'ui-load';
const CHROMIUM = process.env.REALM_CHROMIUM ?? '/usr/bin/chromium';

export async function main(opts: { n?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 7;
  console.log(`== ${BENCH}: first load of /ui (signed in, empty cache) in headless chromium on loopback; n=${n}`);
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium (or set REALM_CHROMIUM)`);
  const assets = join(PACKAGE_ROOT, 'dist', 'web', 'assets');
  for (const f of readdirSync(assets).filter((f) => f.endsWith('.js')))
    console.log(`  ${f}: ${fmt(gzipSync(readFileSync(join(assets, f)), { level: 9 }).length / 1000, 1)} KB gzip`);
  return measureWithDaemon({ warm: 0 }, async (t) => {
    const token = (await tokens.create('bench', t.client)).token;
    const res = await fetch(`${t.url}/v1/ui/session`, {
      method: 'POST',
      headers: { 'x-realm-ui': '1', 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    const cookie = /^realm_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
    if (!cookie) throw new Error(`no session cookie: ${res.status} ${await res.text()}`);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    const kb: number[] = [];
    const ms: number[] = [];
    try {
      for (let i = 0; i < n + 1; i++) {
        const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
        await context.addCookies([{ name: 'realm_session', value: cookie, url: t.url, httpOnly: true, sameSite: 'Strict' }]);
        const page = await context.newPage();
        await page.goto(`${t.url}/ui/`);
        await page.getByRole('table', { name: 'Recent runs' }).waitFor();
        await page.locator('.live.on').waitFor();
        const m = await page.evaluate<{ ms: number; bytes: number }>(`(() => ({
          ms: performance.now(),
          bytes: performance.getEntriesByType('resource').filter((e) => /\\.js(\\?|$)/.test(e.name)).reduce((n, e) => n + e.encodedBodySize, 0),
        }))()`);
        await context.close();
        if (i === 0) continue; // warm-up: the browser's own start
        kb.push(m.bytes / 1000);
        ms.push(m.ms);
      }
    } finally {
      await browser.close();
    }
    const size = summarize(kb);
    const time = summarize(ms);
    console.log(
      `  JS compressed: ${fmt(size.p50, 1)} KB; time to interactive p50 ${fmt(time.p50, 0)} ms, p90 ${fmt(time.p90, 0)} ms, max ${fmt(time.max, 0)} ms`,
    );
    return [
      { bench: BENCH, name: 'first-load JS, compressed', value: size.p50, limit: 300, op: '<=', unit: ' KB' },
      { bench: BENCH, name: 'time to interactive p50', value: time.p50, limit: 1000, op: '<=', unit: ' ms' },
    ];
  });
}

runIfMain(import.meta.url, main);

/**
 * The dashboard in a real browser: Debian's chromium, driven by playwright-core (which downloads
 * no browser), against a daemon started here. Signs in with a token, sees a run appear on the
 * Overview without a reload, creates a sandbox, types `echo hi` in its terminal and sees `hi`,
 * uploads a file and sees it listed, downloads a background process's output, signs out. Screenshots of the pages go to
 * .realm-test/screenshots/; the first load's compressed JavaScript and the time to interactive
 * are printed (figures, not assertions). One browser, one daemon; both are gone at the end.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { tokens } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { until } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SHOTS = join(ROOT, '.realm-test', 'screenshots');
const CHROMIUM = process.env.REALM_CHROMIUM ?? '/usr/bin/chromium';

const skip =
  (existsSync(CHROMIUM) ? undefined : `no chromium at ${CHROMIUM} (apt-get install chromium, or set REALM_CHROMIUM)`) ??
  (existsSync(join(ROOT, 'dist/web/index.html')) ? undefined : 'the dashboard is not built (scripts/build.sh)') ??
  (await testDriverSkipReason());
if (skip) console.log(`# skipping the browser test: ${skip}`);

/** The JavaScript this page loaded so far: files and their compressed (as sent) bytes. */
async function scriptBytes(page: Page): Promise<{ files: number; encoded: number; decoded: number }> {
  // Evaluated in the page (a string: this file is compiled without the DOM's types).
  return page.evaluate<{ files: number; encoded: number; decoded: number }>(`(() => {
    const js = performance.getEntriesByType('resource').filter((e) => /\\.js(\\?|$)/.test(e.name));
    return {
      files: js.length,
      encoded: js.reduce((n, e) => n + e.encodedBodySize, 0),
      decoded: js.reduce((n, e) => n + e.decodedBodySize, 0),
    };
  })()`);
}

/** The terminal's screen as lines of text (xterm's DOM renderer). */
async function terminalLines(page: Page): Promise<string[]> {
  return page.evaluate<string[]>(
    `Array.from(document.querySelectorAll('.xterm-rows > div')).map((row) => (row.textContent || '').replace(/\\s+$/, ''))`,
  );
}

void describe('dashboard in a browser', { skip }, () => {
  let t: TestDaemon;
  let browser: Browser;
  let page: Page;
  let token = '';
  let sandboxId = '';

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    t = await startTestDaemon({ warm: 0 });
    token = (await tokens.create('browser-test', t.client)).token;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // As root, chromium runs only without its own sandbox (the page here is the dashboard's).
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    page = await context.newPage();
  });
  after(async () => {
    await browser?.close();
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it('asks for a token, and shows nothing before', async () => {
    const start = Date.now();
    await page.goto(`${t.url}/`);
    const field = page.getByLabel('Token');
    await field.waitFor();
    const interactive = Date.now() - start;
    // The page's own clock: from the start of the navigation (the redirect included) to the form being there.
    const inPage = Math.round(await page.evaluate<number>('performance.now()'));
    assert.equal(new URL(page.url()).pathname, '/ui/');
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).count(), 0);
    const js = await scriptBytes(page);
    console.log(
      `# first load of /ui (login): ${js.files} JS files, ${(js.encoded / 1024).toFixed(1)} KiB compressed (${(js.decoded / 1024).toFixed(1)} KiB), interactive in ${inPage} ms by the page's clock (${interactive} ms as the test saw it)`,
    );
    await shot('login');
    await field.fill('rlm_000000000000_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    assert.match((await page.getByRole('alert').textContent()) ?? '', /not valid/);
  });

  void it('signs in with a token; a run posted meanwhile appears on the Overview without a reload', async () => {
    const start = Date.now();
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const runs = page.getByRole('table', { name: 'Recent runs' });
    await runs.waitFor();
    await page.locator('.live.on').waitFor();
    const ready = Date.now() - start;
    const js = await scriptBytes(page);
    console.log(
      `# /ui Overview after sign-in: ${js.files} JS files in all, ${(js.encoded / 1024).toFixed(1)} KiB compressed, interactive ${ready} ms after submit`,
    );
    const names = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
    assert.deepEqual(names.slice(1), [
      'Overview',
      'Sandboxes',
      'Playground',
      'Jobs',
      'Services',
      'Images',
      'Volumes',
      'Workspaces',
      'Tokens',
      'Nodes',
    ]);
    const res = await fetch(`${t.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ language: 'bash', code: 'echo from-the-api' }),
    });
    assert.equal(res.status, 200);
    await runs.getByRole('cell', { name: 'bash' }).waitFor();
    await runs.getByText('ok', { exact: true }).waitFor();
    await shot('overview');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot('overview-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  void it('creates a sandbox, and its terminal runs `echo hi`', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sandboxes' }).click();
    await page.getByRole('heading', { name: 'Sandboxes' }).waitFor();
    await page.getByRole('button', { name: 'New sandbox' }).click();
    await page.getByLabel('Labels').fill('made-by=browser-test');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL(/\/ui\/sandboxes\/[^/]+$/);
    sandboxId = decodeURIComponent(new URL(page.url()).pathname.split('/').at(-1) ?? '');
    await page.getByRole('tabpanel').getByText('running', { exact: true }).first().waitFor();
    await page
      .getByText('of 1 core(s)')
      .or(page.getByText(/of [\d.]+ core\(s\)/))
      .first()
      .waitFor();
    await shot('sandbox');
    await page.getByRole('tab', { name: 'Terminal' }).click();
    await page.getByRole('status').getByText('Connected').waitFor();
    await page.locator('.xterm').click();
    // The prompt first: keys typed before the shell reads would reach it all the same, but the screen stays tidy.
    // (Polled from here: the page's CSP forbids the eval that waitForFunction would use.)
    await until(async () => (await terminalLines(page)).some((l) => l.trim() !== ''), 'a prompt on the terminal');
    await page.keyboard.type('echo hi\n');
    let lines: string[] = [];
    await until(
      async () => (lines = await terminalLines(page)).some((l) => l.trim() === 'hi'),
      'a line "hi" on the terminal',
    ).catch((e: Error) => assert.fail(`${e.message}:\n${lines.join('\n')}`));
    await shot('terminal');
  });

  void it('uploads a file and lists it; lists background processes', async () => {
    await page.getByRole('tab', { name: 'Files' }).click();
    const files = page.getByRole('table', { name: 'Files in /home/user' });
    await files.waitFor();
    await page
      .getByLabel('Upload files')
      .setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('hello from the browser\n') });
    await files.getByRole('button', { name: 'hello.txt', exact: true }).click();
    await page.getByText('hello from the browser').waitFor();
    await shot('files');
    await page.getByRole('tab', { name: 'Processes' }).click();
    await page.getByLabel('Command').fill('echo in-the-background');
    await page.getByRole('button', { name: 'Start in background' }).click();
    await page
      .getByLabel(/^Output of process/)
      .getByText('in-the-background')
      .waitFor();
    await shot('processes');
    // Its output as a file: all the daemon keeps, not only what the view shows.
    const [file] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download output' }).click(),
    ]);
    assert.match(file.suggestedFilename(), /-process-.+\.log$/);
    const saved = await file.path();
    assert.equal(readFileSync(saved, 'utf8'), 'in-the-background\n');
  });

  void it('lists, filters and destroys sandboxes in bulk; signs out', async () => {
    await page.getByRole('link', { name: '← All sandboxes' }).click();
    const table = page.getByRole('table', { name: 'Sandboxes' });
    await table.getByText(sandboxId).waitFor();
    await page.getByRole('combobox', { name: 'Driver' }).selectOption('wasm');
    await page.getByText('No sandbox matches these filters.').waitFor();
    await page.getByRole('combobox', { name: 'Driver' }).selectOption('');
    await shot('sandboxes');
    await table.getByRole('checkbox', { name: `Select ${sandboxId}` }).check();
    await page.getByRole('button', { name: 'Destroy 1 selected' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Destroy 1 selected' }).click();
    await page.getByText('No sandboxes.', { exact: false }).waitFor();
    assert.deepEqual(await t.daemon.engine.listSandboxes(), []);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Token').waitFor();
    const after = await fetch(`${t.url}/v1/ui/session`, { headers: { 'x-realm-ui': '1' } });
    assert.equal(after.status, 401);
  });
});

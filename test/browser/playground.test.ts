/**
 * The dashboard's Playground, Tokens and Jobs pages in a real browser (headless chromium) against
 * a daemon that wants a token: sign in, type python in the code editor and run it with stdin, see
 * its streamed output, verdict and snippet; reload and find the program again (its link); create
 * a token and see it listed once with its secret, its age ticking; follow a job's log; screenshot each page.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { tokens } from '@realm/sdk';
import { namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { browserSkipReason, launchBrowser, open, screenshot, signIn, until } from './helpers.js';

const PROGRAM = 'import sys; print("hello " + input()); print("to err", file=sys.stderr)';

/** Whether a Playground link holds this code and stdin (deflated, base64url: web/src/pages/playground/share.ts). */
function linkHolds(url: string, code: string, stdin: string): boolean {
  const q = new URLSearchParams(new URL(url).hash.slice(1));
  const unpack = (v: string | null): string | undefined =>
    v === null ? undefined : inflateRawSync(Buffer.from(v, 'base64url')).toString('utf8');
  return unpack(q.get('z')) === code && unpack(q.get('stdin')) === stdin;
}

const skip = browserSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# skipping playground browser tests: ${skip}`);

void describe('dashboard: playground, tokens, jobs and the admin pages', { skip }, () => {
  let t: TestDaemon | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    t = await startTestDaemon({ warm: 1 });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(20_000);
    // A stored token made with the admin token acts as root (the admin token itself works too).
    await signIn(page, t.url, (await tokens.create('browser-test', t.client)).token);
  });
  after(async () => {
    await browser?.close();
    if (t) {
      await t.close();
      removeTestDirs(t);
    }
  });

  void it('runs python typed in the editor: streamed output, verdict, snippet, and a link that opens it again', async () => {
    await open(page, 'Playground');
    await page.waitForSelector('.code-editor[data-ready] .cm-content');
    await page.selectOption('#pg-language', 'python');
    await page.click('.cm-content');
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.type(PROGRAM);
    await page.fill('#pg-stdin', 'realm');
    await page.keyboard.press('Control+Enter');

    await page.waitForSelector('[data-verdict]');
    assert.equal(await page.getAttribute('[data-verdict]', 'data-verdict'), 'ok');
    const output = await page.textContent('#pg-output');
    assert.match(output ?? '', /hello realm/);
    assert.equal(await page.textContent('#pg-output .pg-stderr'), 'to err\n');
    const snippet = await page.textContent('#pg-snippet');
    assert.match(snippet ?? '', /runStream\(/);
    assert.match(snippet ?? '', /"stdin": "realm"/);
    await page.click('#pg-tab-curl');
    assert.match((await page.textContent('#pg-snippet')) ?? '', /curl -sN http:\/\/127\.0\.0\.1:\d+\/v1\/runs\/stream/);
    await screenshot(page, 'playground');

    // The address holds the program: opened afresh, the editor shows it again.
    // (Polled from here: the page's CSP forbids the eval that waitForFunction would use.)
    // The link is written 300 ms after the last change: wait for the one holding the whole
    // program and its stdin (a loaded machine can pause the typing long enough for a link of
    // part of it to be written first).
    await until(() => Promise.resolve(linkHolds(page.url(), PROGRAM, 'realm')), 'the whole program and its stdin in the address');
    await page.reload();
    await page.waitForSelector('.code-editor[data-ready] .cm-content');
    assert.match((await page.textContent('.cm-content')) ?? '', /print\("hello " \+ input\(\)\)/);
    assert.equal(await page.inputValue('#pg-stdin'), 'realm');
  });

  void it('creates a token, shows its secret once, and lists it', async () => {
    await open(page, 'Tokens');
    await page.fill('#token-name', 'browser-made');
    await page.click('form:has(#token-name) button[type=submit]');
    const secret = (await page.textContent('#token-secret')) ?? '';
    assert.match(secret, /^rlm_[0-9a-f]{12}_/);
    await page.waitForSelector('table[aria-label="Tokens"] >> text=browser-made');
    const listed = await tokens.list(t?.client);
    assert.ok(listed.some((k) => k.name === 'browser-made' && secret.startsWith(`rlm_${k.id}_`)));
    await screenshot(page, 'tokens');
    // Its age ticks by itself ("3 s ago", then "4 s ago"): no reload, no new data.
    const age = page
      .getByRole('table', { name: 'Tokens' })
      .getByRole('row')
      .filter({ hasText: 'browser-made' })
      .getByRole('cell')
      .nth(3);
    const first = await age.textContent();
    assert.match(first ?? '', /^\d+ s ago$/);
    await until(async () => (await age.textContent()) !== first, "the token's age to tick");
    assert.match((await age.textContent()) ?? '', /^\d+ s ago$/);
  });

  void it('submits a TOML job with an attached file, follows its log to the end and offers its artifact', async () => {
    await open(page, 'Jobs');
    await page.click('button:has-text("Submit a job")');
    await page.waitForSelector('#job-spec[data-ready] .cm-content');
    await page.click('#job-spec .cm-content');
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(
      'name = "greet"\ntype = "batch"\n[run]\ncommand = "cat in/data.txt > out.txt; cat out.txt"\n[[artifacts]]\npath = "out.txt"\nname = "out"\n',
    );
    // The file picker inside the drop zone: the same path as a drop (a blob upload, then a cas: input).
    await page.setInputFiles('#job-files', {
      name: 'data.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('hi from an attachment\n'),
    });
    await page.fill('input[aria-label="Destination of data.txt"]', 'in/data.txt');
    await page.waitForSelector('table[aria-label="Attachments"] code:has-text("sha256:")');
    await page.click('form[aria-label="Submit a job"] button[type=submit]');
    await page.waitForSelector('pre[aria-label^="Log of run 1"] >> text=hi from an attachment');
    await page.waitForSelector('table[aria-label="Artifacts"] >> text=out');
    const run = await t?.client.jobs.run('greet');
    assert.equal(run?.inputs[0]?.dest, 'in/data.txt');
    await screenshot(page, 'jobs');
  });

  void it('shows the services, images, volumes, workspaces and nodes pages', async () => {
    for (const [name, ready] of [
      ['Services', 'table[aria-label="Services"]'],
      ['Images', 'table[aria-label="Languages"] >> text=python'],
      ['Volumes', 'table[aria-label="Volumes"]'],
      ['Workspaces', 'table[aria-label="Workspaces"]'],
      ['Nodes', 'table[aria-label="Drivers"] >> text=namespace'],
    ] as const) {
      await open(page, name);
      await page.waitForSelector(ready);
      assert.equal(await page.locator('[role=alert]').count(), 0, `${name} shows an error`);
      await screenshot(page, name.toLowerCase());
    }
  });
});

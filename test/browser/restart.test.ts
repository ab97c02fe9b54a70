/**
 * The dashboard across a daemon restart, in a real browser: the session outlives it (kept hashed
 * in the state store), and the page catches up with what happened while its event stream was
 * down. Event ids begin again at 1 in the new life, so a resume from the last id seen would skip
 * the new life's first events: the stream names the daemon's life (X-Realm-Boot) and the page,
 * seeing another, reloads its lists and replays the new life's events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { Sandbox, tokens } from '@realm/sdk';
import { namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { browserSkipReason, launchBrowser, open, screenshot, signIn } from './helpers.js';

const skip = browserSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# skipping the restart browser test: ${skip}`);

const noise = (t: TestDaemon, n: number): void => {
  for (let i = 0; i < n; i++) t.daemon.engine.events.emit({ type: 'test.noise', owner: 'uid:0', data: { i } });
};

void describe('dashboard across a daemon restart', { skip }, () => {
  let t: TestDaemon | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    t = await startTestDaemon({ warm: 0 });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(30_000);
    await signIn(page, t.url, (await tokens.create('restart-test', t.client)).token);
  });
  after(async () => {
    await browser?.close();
    if (t) {
      await t.close();
      removeTestDirs(t);
    }
  });

  void it('stays signed in, and shows a sandbox made while its stream was down without a reload', async () => {
    assert.ok(t);
    // The page has seen the old life's events (the Overview lists them) before it goes down.
    await open(page, 'Overview');
    await page.locator('.live.on').waitFor();
    noise(t, 10);
    await page.getByText('test.noise').first().waitFor({ state: 'attached' });
    await open(page, 'Sandboxes');
    const table = page.getByRole('table', { name: 'Sandboxes' });
    await page.getByText('No sandboxes.', { exact: false }).waitFor();
    const port = new URL(t.url).port;
    // The page's stream stays down until the new life has more events than the old one had:
    // a resume by id alone would start past the sandbox's creation.
    await page.route('**/v1/events*', (route) => route.abort());
    await t.close({ keepSandboxes: true });
    t = await startTestDaemon({ warm: 0, dataDir: t.dataDir, cgroupRoot: t.cgroupRoot, listen: `127.0.0.1:${port}` });
    await page.locator('.live:not(.on)').waitFor();
    const sb = await Sandbox.create({ labels: { made: 'while-down' } }, t.client);
    noise(t, 30);
    await page.unroute('**/v1/events*');
    await page.locator('.live.on').waitFor();
    await table.getByText(sb.id).waitFor();
    // Signed in all along: the navigation is there, no login form.
    assert.equal(await page.getByLabel('Token').count(), 0);
    await screenshot(page, 'after-restart');
  });
});

/**
 * The Services page in a real browser: a process service pushed through the API is listed; on its
 * page, Scale (2 replicas) and Restart (every replica replaced, confirmed in a dialog) act on the
 * daemon, and the page follows both on the event stream, without a reload.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { tokens } from '@realm/sdk';
import { namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { browserSkipReason, launchBrowser, open, screenshot, signIn, until } from './helpers.js';

const skip = browserSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# skipping the services browser test: ${skip}`);

/** A replica that serves its home over HTTP (healthy once it listens). */
const COMMAND = 'touch ok && exec /usr/bin/python3 -m http.server 8000';

void describe('dashboard: services', { skip }, () => {
  let t: TestDaemon | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0' });
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(30_000);
    await signIn(page, t.url, (await tokens.create('services-test', t.client)).token);
  });
  after(async () => {
    await browser?.close();
    if (t) {
      await t.client.services.remove('web').catch(() => undefined);
      await t.close();
      removeTestDirs(t);
    }
  });

  void it('scales a service to 2 replicas and restarts it from its page', async () => {
    assert.ok(t);
    const client = t.client;
    await client.services.push({ name: 'web', image: 'host', command: COMMAND, port: 8000, replicas: 1, memory: '256m' });
    await open(page, 'Services');
    await page.getByRole('table', { name: 'Services' }).getByRole('link', { name: 'web' }).click();
    await page.getByRole('heading', { name: 'Service web' }).waitFor();
    await page.getByText(/1 healthy · 1 running · 1 desired/).waitFor();

    await page.locator('#svc-replicas').fill('2');
    await page.getByRole('button', { name: 'Scale' }).click();
    await page.getByText(/2 healthy · 2 running · 2 desired/).waitFor();
    const replicas = page.getByRole('table', { name: 'Replicas' }).locator('tbody tr');
    await until(async () => (await replicas.count()) === 2, 'two rows of replicas');
    const before = await client.services.get('web');
    assert.equal(before.replicas, 2);
    await screenshot(page, 'service');

    await page.getByRole('button', { name: 'Restart', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Restart' }).click();
    await page.getByText(new RegExp(`generation ${before.generation + 1}\\b`)).waitFor();
    await page.getByText(/2 healthy · 2 running · 2 desired/).waitFor();
    const old = new Set(before.replicaList.map((r) => r.sandbox));
    await until(async () => {
      const s = await client.services.get('web');
      return s.healthy === 2 && s.replicaList.length === 2 && s.replicaList.every((r) => !old.has(r.sandbox));
    }, 'every replica replaced');
    // The page shows the new replicas (no row of an old one left), without a reload.
    await until(async () => {
      const text = (await page.getByRole('table', { name: 'Replicas' }).textContent()) ?? '';
      return (await replicas.count()) === 2 && [...old].every((id) => !text.includes(id));
    }, 'the new replicas on the page');
  });
});

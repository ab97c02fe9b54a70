/**
 * Accessibility of the dashboard, audited by axe-core (not by hand) in a real browser: every page
 * (the sign-in form, Overview, Sandboxes and a sandbox's detail with each of its tabs, Playground,
 * Jobs, Services, Images, Volumes, Workspaces, Tokens, Nodes) in the light and the dark theme;
 * any violation of impact serious or critical under WCAG 2.0/2.1 A and AA fails the test. Then
 * the keyboard alone: the skip link and the main navigation (Tab, Enter), and a confirmation
 * dialog (Enter opens it, Escape closes it, focus comes back to the button that opened it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { Sandbox, run, tokens } from '@realm/sdk';
import { namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { audit, describeViolations } from './axe.js';
import { browserSkipReason, launchBrowser, open, signIn, until } from './helpers.js';

const skip = browserSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# skipping the accessibility browser tests: ${skip}`);

/** Each page and what shows once it has loaded its data. */
const PAGES: [name: string, ready: string][] = [
  ['Overview', 'table[aria-label="Recent runs"] >> text=bash'],
  ['Sandboxes', 'table[aria-label="Sandboxes"] >> text=a11y'],
  ['Playground', '.code-editor[data-ready] .cm-content'],
  ['Jobs', 'table[aria-label="Jobs"]'],
  ['Services', 'table[aria-label="Services"]'],
  ['Images', 'table[aria-label="Languages"] >> text=python'],
  ['Volumes', 'table[aria-label="Volumes"] >> text=a11y-vol'],
  ['Workspaces', 'table[aria-label="Workspaces"]'],
  ['Tokens', 'table[aria-label="Tokens"] >> text=a11y-test'],
  ['Nodes', 'table[aria-label="Drivers"] >> text=namespace'],
];

/** The theme the page shows (`data-theme` on <html>). */
const themeOf = (page: Page): Promise<string> => page.evaluate<string>('document.documentElement.dataset.theme || ""');

void describe('dashboard accessibility', { skip }, () => {
  let t: TestDaemon | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let token = '';
  let sandboxId = '';
  const failures: string[] = [];

  const check = async (where: string): Promise<void> => {
    const found = await audit(page);
    if (found.length) failures.push(describeViolations(where, found));
  };

  before(async () => {
    t = await startTestDaemon({ warm: 0 });
    token = (await tokens.create('a11y-test', t.client)).token;
    // Something on each list: a run, a sandbox with a file and a process, a volume.
    await run({ language: 'bash', code: 'echo audited' }, t.client);
    const sb = await Sandbox.create({ labels: { purpose: 'a11y' }, volumes: [{ volume: 'a11y-vol', path: '/data' }] }, t.client);
    sandboxId = sb.id;
    await sb.files.write('/home/user/note.txt', 'hello\n');
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(20_000);
  });
  after(async () => {
    await browser?.close();
    if (t) {
      await t.close();
      removeTestDirs(t);
    }
  });

  void it('finds no serious or critical violation on any page, in either theme', async () => {
    assert.ok(t);
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto(`${t.url}/ui/`);
      await page.getByLabel('Token').waitFor();
      await until(async () => (await themeOf(page)) === scheme, `the ${scheme} theme`);
      await check(`sign-in (${scheme})`);
      // A failed attempt shows an alert: audited too.
      await page.getByLabel('Token').fill('rlm_000000000000_wrong');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').waitFor();
      await check(`sign-in with an error (${scheme})`);
      await signIn(page, t.url, token);
      for (const [name, ready] of PAGES) {
        await open(page, name);
        await page.waitForSelector(ready);
        await check(`${name} (${scheme})`);
      }
      for (const tab of ['', 'terminal', 'files', 'processes']) {
        await page.goto(`${t.url}/ui/sandboxes/${encodeURIComponent(sandboxId)}${tab ? `/${tab}` : ''}`);
        await page.getByRole('tabpanel').waitFor();
        if (tab === '') await page.getByRole('tabpanel').getByText('running', { exact: true }).first().waitFor();
        if (tab === 'terminal') await page.getByRole('status').getByText('Connected').waitFor();
        if (tab === 'files') await page.getByRole('table', { name: 'Files in /home/user' }).getByText('note.txt').waitFor();
        if (tab === 'processes') await page.getByLabel('Command').waitFor();
        await check(`sandbox detail ${tab || 'overview'} (${scheme})`);
      }
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Token').waitFor();
    }
    assert.deepEqual(failures, [], `axe found violations:\n${failures.join('\n')}`);
  });

  void it('the audit is live: a button without a name and grey-on-grey text planted in the page are found', async () => {
    await page.evaluate(`(() => {
      const b = document.createElement('button'); b.innerHTML = '<svg width="8" height="8"></svg>'; document.body.append(b);
      const p = document.createElement('p'); p.textContent = 'hard to read'; p.style.cssText = 'color:#777;background:#888'; document.body.append(p);
    })()`);
    const ids = (await audit(page)).map((v) => v.id).sort();
    assert.deepEqual(ids, ['button-name', 'color-contrast']);
    await page.reload();
  });

  void it('works with the keyboard alone: skip link, navigation, and a dialog that gives focus back', async () => {
    assert.ok(t);
    await signIn(page, t.url, token);
    await page.goto(`${t.url}/ui/`);
    await page.locator('nav[aria-label="Main"]').waitFor();
    // The first Tab reaches the skip link; Enter on it moves focus to the content.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<string>('document.activeElement.textContent.trim()'), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate<string>('document.activeElement.id'), 'main');
    // Back to the navigation: Tab moves through the brand, then the pages in order; Enter opens one.
    await page.goto(`${t.url}/ui/`);
    await page.locator('nav[aria-label="Main"]').waitFor();
    const focused = (): Promise<string> => page.evaluate<string>('(document.activeElement.textContent || "").trim()');
    let steps = 0;
    while ((await focused()) !== 'Volumes') {
      await page.keyboard.press('Tab');
      assert.ok(++steps < 20, 'Tab never reached the link "Volumes" in the navigation');
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Volumes' }).waitFor();
    assert.equal(
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Volumes' }).getAttribute('aria-current'),
      'page',
    );
    // A confirmation dialog: Destroy on the sandbox's page, reached by Tab, opened with Enter.
    await page.goto(`${t.url}/ui/sandboxes/${encodeURIComponent(sandboxId)}`);
    const destroy = page.getByRole('button', { name: 'Destroy', exact: true });
    await destroy.waitFor();
    steps = 0;
    while ((await focused()) !== 'Destroy') {
      await page.keyboard.press('Tab');
      assert.ok(++steps < 60, 'Tab never reached the button "Destroy"');
    }
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    // Focus is in the dialog, on the harmless choice.
    assert.equal(await focused(), 'Cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await focused(), 'Destroy', 'focus went back to the button that opened the dialog');
    assert.equal((await Sandbox.get(sandboxId, t.client)).info.status, 'running');
    // Opened again and answered with Tab + Enter: the sandbox goes.
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await focused(), 'Destroy');
    await page.keyboard.press('Enter');
    await until(async () => (await t!.daemon.engine.listSandboxes()).length === 0, 'the sandbox destroyed');
  });
});

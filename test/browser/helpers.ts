/**
 * Browser tests: Debian's chromium (/usr/bin/chromium, or REALM_CHROMIUM) driven by
 * playwright-core, headless — no browser download. A test skips, saying why, when chromium or
 * the built dashboard (dist/web) is absent.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';

export const CHROMIUM = process.env.REALM_CHROMIUM ?? '/usr/bin/chromium';
/** Where the tests leave a screenshot of each page they visit. */
export const SCREENSHOT_DIR = join('.realm-test', 'screenshots');

/** Why a browser test cannot run here (printed as the skip reason), or undefined. */
export function browserSkipReason(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no chromium at ${CHROMIUM} (apt-get install chromium, or set REALM_CHROMIUM)`;
  if (!existsSync(join('dist', 'web', 'index.html'))) return 'the dashboard is not built (bash scripts/build.sh)';
  return undefined;
}

/** Headless chromium. As root it runs without its own sandbox (chromium refuses otherwise); it loads only the test daemon's pages. */
export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
}

/** Open the dashboard of the daemon at `url` and sign in with `token`; resolves once the navigation shows. */
export async function signIn(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/ui/`);
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('nav[aria-label="Main"]');
}

/** Go to a page by its link in the navigation (as a user would: no reload). */
export async function open(page: Page, name: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
}

/** Save a full-page screenshot as SCREENSHOT_DIR/NAME.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/** Wait until `check` holds (checked every 100 ms, for 20 s at most). */
export async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`no ${what} within 20 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

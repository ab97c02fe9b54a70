/**
 * Accessibility audits with axe-core, in the page under test. axe is injected by the test only
 * (never part of the dashboard's bundle) through page.evaluate: playwright evaluates over the
 * DevTools protocol, which the page's CSP (script-src 'self') does not govern, so the audit
 * needs no bypassCSP and sees the page exactly as users get it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The WCAG rule sets the audit holds the dashboard to. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

export interface Violation {
  id: string;
  impact: string;
  help: string;
  nodes: { target: string; summary: string }[];
}

/** Run axe on the page as it is; returns the violations of impact serious or critical. */
export async function audit(page: Page): Promise<Violation[]> {
  if (!(await page.evaluate<boolean>('typeof window.axe === "object"'))) await page.evaluate(AXE_SOURCE);
  // A string, evaluated in the page (this file is compiled without the DOM's types).
  const found = await page.evaluate<Violation[]>(`(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ${JSON.stringify(AXE_TAGS)} }, resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: (n.failureSummary || '').replace(/\\s+/g, ' ') })),
      }));
  })()`);
  return found;
}

/** The violations as lines a failing test prints. */
export function describeViolations(where: string, vs: Violation[]): string {
  return vs
    .map(
      (v) =>
        `${where}: ${v.id} (${v.impact}) ${v.help}\n${v.nodes
          .slice(0, 5)
          .map((n) => `    ${n.target}: ${n.summary}`)
          .join('\n')}`,
    )
    .join('\n');
}

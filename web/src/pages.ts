/**
 * The pages, in navigation order. Each is one file in pages/, loaded when first visited (its own
 * chunk: the terminal's xterm.js, say, loads with the Sandboxes page only). A page is at
 * `/ui/<slug>` and gets everything after it as `rest` (`/ui/sandboxes/abc/files` → rest "abc/files").
 */
import type { FunctionComponent } from 'preact';
import { lazy } from 'preact-iso';

export const BASE = '/ui';

export interface PageProps {
  /** The path after the page's own, without the leading slash ('' on the page itself). */
  rest: string;
}

export interface Page {
  name: string;
  /** '' for the Overview (at /ui/). */
  slug: string;
  component: FunctionComponent<PageProps>;
}

export const PAGES: Page[] = [
  { name: 'Overview', slug: '', component: lazy(() => import('./pages/Overview')) },
  { name: 'Sandboxes', slug: 'sandboxes', component: lazy(() => import('./pages/Sandboxes')) },
  { name: 'Playground', slug: 'playground', component: lazy(() => import('./pages/Playground')) },
  { name: 'Jobs', slug: 'jobs', component: lazy(() => import('./pages/Jobs')) },
  { name: 'Services', slug: 'services', component: lazy(() => import('./pages/Services')) },
  { name: 'Images', slug: 'images', component: lazy(() => import('./pages/Images')) },
  { name: 'Volumes', slug: 'volumes', component: lazy(() => import('./pages/Volumes')) },
  { name: 'Workspaces', slug: 'workspaces', component: lazy(() => import('./pages/Workspaces')) },
  { name: 'Tokens', slug: 'tokens', component: lazy(() => import('./pages/Tokens')) },
  { name: 'Nodes', slug: 'nodes', component: lazy(() => import('./pages/Nodes')) },
];

/** The URL of a page (and a path below it): `href('sandboxes', id)` → /ui/sandboxes/<id>. */
export function href(slug: string, ...below: string[]): string {
  const tail = below.map(encodeURIComponent).join('/');
  return `${BASE}/${slug}${slug && tail ? '/' : ''}${tail}`;
}

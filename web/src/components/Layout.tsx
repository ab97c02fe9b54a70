/** The frame of every page: navigation, who is signed in, the live indicator, the theme toggle. */
import type { ComponentChildren, JSX } from 'preact';
import { useLocation } from 'preact-iso';
import { logout, me } from '../api';
import { live } from '../events';
import { PAGES, href } from '../pages';
import { theme, toggleTheme } from '../theme';

function current(path: string, slug: string): boolean {
  const own = href(slug).replace(/\/$/, '');
  return slug === '' ? path === own : path === own || path.startsWith(`${own}/`);
}

export function Layout(props: { children: ComponentChildren }): JSX.Element {
  const { path } = useLocation();
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <nav class="sidebar" aria-label="Main">
        <a class="brand" href={href('')}>
          realm
        </a>
        <ul>
          {PAGES.map((p) => (
            <li key={p.slug}>
              <a href={href(p.slug)} aria-current={current(path, p.slug) ? 'page' : undefined}>
                {p.name}
              </a>
            </li>
          ))}
        </ul>
        <div class="sidebar-foot">
          <span
            class={`live ${live.value ? 'on' : ''}`}
            title={live.value ? 'Live: following the event stream' : 'Reconnecting…'}
          >
            <span aria-hidden="true">●</span> {live.value ? 'live' : 'offline'}
          </span>
          <button
            type="button"
            class="ghost"
            onClick={toggleTheme}
            aria-label={`Switch to ${theme.value === 'dark' ? 'light' : 'dark'} theme`}
          >
            {theme.value === 'dark' ? '☀' : '☾'}
          </button>
        </div>
        <div class="sidebar-foot">
          <span class="muted who" title={me.value?.principal}>
            {me.value?.admin ? 'admin' : me.value?.principal}
          </span>
          <button type="button" class="ghost" onClick={() => void logout()}>
            Sign out
          </button>
        </div>
      </nav>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
    </div>
  );
}

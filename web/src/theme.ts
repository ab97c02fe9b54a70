/**
 * Dark and light: the system's choice (prefers-color-scheme) until the user picks one with the
 * toggle, which is kept in localStorage. The CSS reads `data-theme` on <html> when it is set.
 */
import { signal } from '@preact/signals';

export type Theme = 'light' | 'dark';
const KEY = 'realm.theme';

function stored(): Theme | null {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : null;
  } catch {
    return null;
  }
}

const system = (): Theme => (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');

/** The theme in effect. */
export const theme = signal<Theme>(stored() ?? system());

function apply(t: Theme): void {
  document.documentElement.dataset.theme = t;
}

export function initTheme(): void {
  apply(theme.value);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    if (stored() === null) {
      theme.value = system();
      apply(theme.value);
    }
  });
}

export function toggleTheme(): void {
  theme.value = theme.value === 'dark' ? 'light' : 'dark';
  apply(theme.value);
  try {
    localStorage.setItem(KEY, theme.value);
  } catch {
    // private mode: the choice lasts this page only
  }
}

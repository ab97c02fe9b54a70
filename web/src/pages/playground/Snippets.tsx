/** The last run as code: SDK and curl, in tabs, each with a Copy button. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { RunBody } from './run';
import { CopyButton } from '../../components/CopyButton';
import { curlSnippet, sdkSnippet } from './snippet';

const TABS = [
  { id: 'sdk', label: 'SDK (TypeScript)', make: sdkSnippet },
  { id: 'curl', label: 'curl', make: curlSnippet },
] as const;

export function Snippets(props: { body: RunBody }): JSX.Element {
  const [tab, setTab] = useState<(typeof TABS)[number]['id']>('sdk');
  const current = TABS.find((t) => t.id === tab) ?? TABS[0];
  const text = current.make(props.body, location.origin);

  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  const onKey = (e: KeyboardEvent): void => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const i = TABS.findIndex((t) => t.id === tab);
    const next = TABS[(i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length] ?? TABS[0];
    setTab(next.id);
    document.getElementById(`pg-tab-${next.id}`)?.focus();
  };

  return (
    <section class="pg-snippets" aria-label="What ran, as code">
      <div class="row pg-snippet-head">
        <div role="tablist" aria-label="Snippet language" onKeyDown={onKey}>
          {TABS.map((t) => (
            <button
              key={t.id}
              id={`pg-tab-${t.id}`}
              type="button"
              role="tab"
              aria-selected={t.id === tab}
              aria-controls="pg-snippet"
              tabIndex={t.id === tab ? 0 : -1}
              onClick={() => setTab(t.id)}
            >
              {t.label}
            </button>
          ))}
        </div>
        <CopyButton text={text} selectId="pg-snippet" />
      </div>
      <pre class="log" id="pg-snippet" role="tabpanel" aria-labelledby={`pg-tab-${tab}`} tabIndex={0}>
        {text}
      </pre>
    </section>
  );
}

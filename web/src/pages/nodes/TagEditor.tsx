/** A node's tags as chips: root removes one with its × and adds one with the field (Enter). */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';

export function TagEditor(props: {
  node: string;
  tags: string[];
  editable: boolean;
  onChange: (change: { add?: string[]; remove?: string[] }) => Promise<void>;
}): JSX.Element {
  const [text, setText] = useState('');
  return (
    <span class="tags">
      {props.tags.map((t) => (
        <span key={t} class="tag">
          {t}
          {props.editable && (
            <button
              type="button"
              aria-label={`Remove tag ${t} from ${props.node}`}
              onClick={() => void props.onChange({ remove: [t] })}
            >
              ×
            </button>
          )}
        </span>
      ))}
      {props.editable && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const add = text.split(/[\s,]+/).filter(Boolean);
            if (add.length) void props.onChange({ add }).then(() => setText(''));
          }}
        >
          <input
            aria-label={`Add tags to ${props.node}`}
            placeholder="+ tag"
            size={8}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
        </form>
      )}
      {!props.editable && props.tags.length === 0 && <span class="muted">none</span>}
    </span>
  );
}

/** Copy a text to the clipboard; where the browser refuses (plain http to another host), select it for Ctrl+C instead. */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export function CopyButton(props: {
  text: string;
  label?: string;
  /** The element holding the text, selected when copying fails. */ selectId?: string;
}): JSX.Element {
  const [note, setNote] = useState<string | undefined>(undefined);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(props.text);
      setNote('Copied');
    } catch {
      const el = props.selectId ? document.getElementById(props.selectId) : null;
      if (el) getSelection()?.selectAllChildren(el);
      setNote(el ? 'Selected: press Ctrl+C' : 'Copying is not allowed here');
    }
    clearTimeout(timer.current);
    timer.current = setTimeout(() => setNote(undefined), 2500);
  };
  return (
    <>
      <button type="button" onClick={() => void copy()}>
        {props.label ?? 'Copy'}
      </button>
      <span class="muted" aria-live="polite">
        {note}
      </span>
    </>
  );
}

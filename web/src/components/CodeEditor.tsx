/**
 * The code editor as a component: CodeMirror is imported when this mounts. Until it arrives (or
 * if it fails to load) a plain textarea holds the code, so the page is usable at once.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { EditorHandle } from './codemirror';
import './extras.css';

export function CodeEditor(props: {
  id: string;
  label: string;
  text: string;
  /**
   * Bump it when the text is replaced from outside (a link opened, a sample picked): only then
   * is `text` written into the editor. What the user types comes back through onChange, and
   * writing that back (a render behind the keyboard) would drop keystrokes.
   */
  revision?: number;
  language: string;
  onChange: (text: string) => void;
  /** Ctrl/Cmd-Enter. */
  onRun?: () => void;
  class?: string;
}): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<EditorHandle | null>(null);
  const [failed, setFailed] = useState(false);
  const [ready, setReady] = useState(false);
  // The latest props for callbacks made once, at creation.
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    let gone = false;
    import('./codemirror').then(
      (m) => {
        if (gone || !host.current) return;
        editor.current = m.createEditor({
          parent: host.current,
          text: latest.current.text,
          language: latest.current.language,
          label: latest.current.label,
          onChange: (t) => latest.current.onChange(t),
          onRun: () => latest.current.onRun?.(),
        });
        setReady(true);
      },
      () => setFailed(true),
    );
    return () => {
      gone = true;
      editor.current?.destroy();
      editor.current = null;
    };
  }, []);

  useEffect(() => editor.current?.setLanguage(props.language), [props.language, ready]);
  useEffect(() => editor.current?.setText(latest.current.text), [props.revision, ready]);

  return (
    <div class={`code-editor ${props.class ?? ''}`} id={props.id} data-ready={ready ? 'true' : undefined}>
      <div ref={host} class="code-editor-cm" hidden={!ready} />
      {!ready && (
        <textarea
          aria-label={props.label}
          spellcheck={false}
          value={props.text}
          onInput={(e) => props.onChange(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              props.onRun?.();
            }
          }}
          title={failed ? 'The code editor failed to load: a plain text box instead' : undefined}
        />
      )}
    </div>
  );
}

/**
 * The code editor (the Playground's, the job spec's): CodeMirror 6, in a chunk of its own that
 * CodeEditor imports only when it mounts (the first load of the dashboard stays small). Each
 * language's grammar is yet another chunk, loaded when that language is picked.
 */
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import {
  HighlightStyle,
  StreamLanguage,
  bracketMatching,
  indentOnInput,
  syntaxHighlighting,
  defaultHighlightStyle,
} from '@codemirror/language';
import { tags as t } from '@lezer/highlight';

/** A language's grammar, loaded on demand; unknown names get plain text. */
async function grammar(language: string): Promise<Extension> {
  switch (language) {
    case 'python':
      return (await import('@codemirror/lang-python')).python();
    case 'node':
      return (await import('@codemirror/lang-javascript')).javascript();
    case 'typescript':
      return (await import('@codemirror/lang-javascript')).javascript({ typescript: true });
    case 'c':
    case 'cpp':
    case 'c-wasm':
      return (await import('@codemirror/lang-cpp')).cpp();
    case 'rust':
      return (await import('@codemirror/lang-rust')).rust();
    case 'java':
      return (await import('@codemirror/lang-java')).java();
    case 'go':
      return (await import('@codemirror/lang-go')).go();
    case 'php':
      return (await import('@codemirror/lang-php')).php({ plain: false });
    case 'bash':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/shell')).shell);
    case 'ruby':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/ruby')).ruby);
    case 'lua':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/lua')).lua);
    case 'perl':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/perl')).perl);
    case 'toml':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/toml')).toml);
    default:
      return [];
  }
}

/** Token colors from the dashboard's CSS variables, so light and dark themes both read well. */
const darkAware = HighlightStyle.define([
  { tag: t.keyword, color: 'var(--cm-keyword)' },
  { tag: [t.string, t.special(t.string)], color: 'var(--cm-string)' },
  { tag: [t.number, t.bool, t.null], color: 'var(--cm-number)' },
  { tag: [t.comment, t.lineComment, t.blockComment], color: 'var(--muted)', fontStyle: 'italic' },
  { tag: [t.function(t.variableName), t.function(t.propertyName)], color: 'var(--cm-function)' },
  { tag: [t.typeName, t.className], color: 'var(--cm-type)' },
]);

const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--panel)', color: 'var(--text)', fontSize: '13px', height: '100%' },
  '.cm-content': { fontFamily: 'var(--mono)', caretColor: 'var(--text)' },
  '.cm-scroller': { fontFamily: 'var(--mono)', overflow: 'auto' },
  '.cm-gutters': { backgroundColor: 'var(--panel-2)', color: 'var(--muted)', border: 'none' },
  '.cm-activeLine': { backgroundColor: 'color-mix(in srgb, var(--accent) 7%, transparent)' },
  '.cm-activeLineGutter': { backgroundColor: 'color-mix(in srgb, var(--accent) 14%, transparent)' },
  '&.cm-focused .cm-cursor': { borderLeftColor: 'var(--text)' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground': {
    backgroundColor: 'color-mix(in srgb, var(--accent) 30%, transparent) !important',
  },
  '&.cm-focused': { outline: 'none' },
});

export interface EditorHandle {
  setLanguage(language: string): void;
  /** Replace the text (a shared link opened, a sample picked); does not call onChange. */
  setText(text: string): void;
  focus(): void;
  destroy(): void;
}

export function createEditor(opts: {
  parent: HTMLElement;
  text: string;
  language: string;
  /** Accessible name of the editing area. */
  label: string;
  onChange: (text: string) => void;
  /** Ctrl/Cmd-Enter. */
  onRun: () => void;
}): EditorHandle {
  const lang = new Compartment();
  let quiet = false;
  const view = new EditorView({
    parent: opts.parent,
    state: EditorState.create({
      doc: opts.text,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightActiveLine(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        syntaxHighlighting(darkAware),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        keymap.of([
          { key: 'Mod-Enter', run: () => (opts.onRun(), true) },
          // Tab indents; Escape then Tab leaves the editor (CodeMirror's documented escape hatch).
          indentWithTab,
          ...defaultKeymap,
          ...historyKeymap,
        ]),
        EditorView.contentAttributes.of({ 'aria-label': opts.label }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && !quiet) opts.onChange(u.state.doc.toString());
        }),
        theme,
        lang.of([]),
      ],
    }),
  });
  let wanted = '';
  const setLanguage = (language: string): void => {
    wanted = language;
    void grammar(language).then(
      (ext) => {
        if (wanted === language) view.dispatch({ effects: lang.reconfigure(ext) });
      },
      () => undefined, // a grammar that fails to load leaves plain text: editing still works
    );
  };
  setLanguage(opts.language);
  return {
    setLanguage,
    setText(text) {
      if (text === view.state.doc.toString()) return;
      quiet = true;
      try {
        view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
      } finally {
        quiet = false;
      }
    },
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}

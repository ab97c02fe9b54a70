/**
 * Playground: pick a language (with its version), write code in a real editor (CodeMirror,
 * loaded with this page), give stdin, arguments and limits, run with the output streamed, see the
 * verdict with time and memory, and copy the SDK or curl call that did exactly this run. The
 * state lives in the URL hash: the address is a link to the same program.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, messageOf } from '../api';
import { bytes, duration } from '../components/format';
import { CodeEditor } from '../components/CodeEditor';
import { Badge, ErrorBox, PageHeader, useLoad } from '../components/ui';
import type { PageProps } from '../pages';
import { Snippets } from './playground/Snippets';
import { type LanguageInfo, type RunBody, type RunResult, runStream } from './playground/run';
import { isSample, sample } from './playground/samples';
import { type PlaygroundState, decodeState, encodeState } from './playground/share';
import './playground/playground.css';

const DEFAULTS: PlaygroundState = {
  language: 'python',
  code: sample('python'),
  stdin: '',
  args: '',
  timeout: '10s',
  memory: '256m',
};

interface Chunk {
  stream: 'stdout' | 'stderr';
  data: string;
}

/** The request body for a state: only what was set, so the snippets show the same. */
function bodyOf(s: PlaygroundState, module: string | undefined): RunBody {
  const body: RunBody = { language: s.language };
  if (module !== undefined) body.files = [{ name: 'main.wasm', content: module, encoding: 'base64' }];
  else body.code = s.code;
  if (s.stdin) body.stdin = s.stdin;
  const args = s.args.split('\n').filter((a) => a !== '');
  if (args.length) body.args = args;
  if (s.timeout.trim()) body.timeout = s.timeout.trim();
  if (s.memory.trim()) body.memory = s.memory.trim();
  return body;
}

async function base64Of(file: File): Promise<string> {
  const b = new Uint8Array(await file.arrayBuffer());
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export default function Playground(_props: PageProps): JSX.Element {
  const langs = useLoad((signal) => get<{ languages: LanguageInfo[] }>('/v1/languages', undefined, signal));
  const [state, setState] = useState<PlaygroundState>(DEFAULTS);
  const [restored, setRestored] = useState(false);
  // Bumped when the code is replaced from outside the editor (see CodeEditor's revision).
  const [revision, setRevision] = useState(0);
  const [module, setModule] = useState<{ name: string; base64: string } | undefined>(undefined);
  const [output, setOutput] = useState<Chunk[]>([]);
  const [result, setResult] = useState<RunResult | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [ran, setRan] = useState<RunBody | undefined>(undefined);
  const running = useRef<AbortController | null>(null);
  const [busy, setBusy] = useState(false);
  const outRef = useRef<HTMLPreElement>(null);

  // Open what the link holds (and again when another link is pasted into this tab).
  useEffect(() => {
    const load = (): void => {
      void decodeState(location.hash).then((s) => {
        if (s) {
          setState({ ...DEFAULTS, code: '', ...s, ...(s.code === '' && s.language ? { code: sample(s.language) } : {}) });
          setRevision((r) => r + 1);
        }
        setRestored(true);
      });
    };
    load();
    window.addEventListener('hashchange', load);
    return () => {
      window.removeEventListener('hashchange', load);
      running.current?.abort();
    };
  }, []);

  // Keep the link current (replaceState: editing adds no history entries).
  useEffect(() => {
    if (!restored) return;
    const t = setTimeout(() => {
      void encodeState(state).then((h) => {
        if (`#${h}` !== location.hash) history.replaceState(history.state, '', `${location.pathname}${location.search}#${h}`);
      });
    }, 300);
    return () => clearTimeout(t);
  }, [state, restored]);

  useEffect(() => {
    const el = outRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [output]);

  const set = (patch: Partial<PlaygroundState>): void => setState((s) => ({ ...s, ...patch }));
  const pickLanguage = (language: string): void => {
    if (isSample(state.code)) {
      set({ language, code: sample(language) });
      setRevision((r) => r + 1);
    } else set({ language });
  };

  const languages = langs.data?.languages ?? [];
  const current = languages.find((l) => l.name === state.language);
  const wasm = state.language === 'wasm';

  const run = async (): Promise<void> => {
    if (running.current) return;
    if (wasm && !module) {
      setError(new Error('choose a .wasm module to run'));
      return;
    }
    const body = bodyOf(state, wasm ? module?.base64 : undefined);
    const ctl = new AbortController();
    running.current = ctl;
    setBusy(true);
    setOutput([]);
    setResult(undefined);
    setError(undefined);
    setRan(body);
    // Output arrives in many small events: gather them and paint once per frame.
    let pending: Chunk[] = [];
    let frame = 0;
    const flush = (): void => {
      frame = 0;
      const add = pending;
      pending = [];
      setOutput((o) => {
        const next = [...o];
        for (const c of add) {
          const last = next[next.length - 1];
          if (last && last.stream === c.stream) next[next.length - 1] = { stream: c.stream, data: last.data + c.data };
          else next.push(c);
        }
        return next;
      });
    };
    try {
      const r = await runStream(
        body,
        (stream, data) => {
          pending.push({ stream, data });
          frame ||= requestAnimationFrame(flush);
        },
        ctl.signal,
      );
      setResult(r);
    } catch (e) {
      if (!ctl.signal.aborted) setError(e);
    } finally {
      if (frame) cancelAnimationFrame(frame);
      flush();
      running.current = null;
      setBusy(false);
    }
  };
  const stop = (): void => {
    running.current?.abort();
    setError(new Error('stopped: closing the stream killed the program'));
  };

  return (
    <>
      <PageHeader title="Playground">
        {busy ? (
          <button type="button" class="danger" onClick={stop}>
            Stop
          </button>
        ) : (
          <button type="button" class="primary" onClick={() => void run()} title="Ctrl+Enter">
            Run
          </button>
        )}
      </PageHeader>
      {/* Ctrl/Cmd+Enter runs from any field of the page (the editor handles its own). */}
      <div
        class="pg"
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && !e.defaultPrevented) {
            e.preventDefault();
            void run();
          }
        }}
      >
        <section class="pg-input" aria-label="Program">
          <div class="row">
            <label for="pg-language">Language</label>
            <select id="pg-language" value={state.language} onChange={(e) => pickLanguage(e.currentTarget.value)}>
              {!current && <option value={state.language}>{state.language}</option>}
              {languages.map((l) => (
                <option key={l.name} value={l.name} disabled={!l.ready}>
                  {l.ready ? `${l.name} — ${l.version}` : `${l.name} (image ${l.image} not built)`}
                </option>
              ))}
            </select>
            {current && (
              <span class="muted" title={`image ${current.image}; aliases: ${current.aliases.join(', ') || 'none'}`}>
                {current.compiled ? 'compiled' : 'interpreted'} · {current.image}
              </span>
            )}
          </div>
          <ErrorBox error={langs.error} />
          {wasm ? (
            <div class="pg-wasm">
              <label for="pg-module">WebAssembly module (a WASI command: .wasm)</label>
              <input
                id="pg-module"
                type="file"
                accept=".wasm,application/wasm"
                onChange={(e) => {
                  const f = e.currentTarget.files?.[0];
                  if (!f) return setModule(undefined);
                  void base64Of(f).then((b) => setModule({ name: f.name, base64: b }));
                }}
              />
              {module && <span class="muted">{module.name}</span>}
            </div>
          ) : restored ? (
            <CodeEditor
              class="pg-editor"
              id="pg-code"
              label="Code"
              text={state.code}
              revision={revision}
              language={state.language}
              onChange={(code) => set({ code })}
              onRun={() => void run()}
            />
          ) : (
            // The link's program is being read (a few ms): no editor of the default one meanwhile,
            // which would flash and could be typed into before the program replaced it.
            <div class="pg-editor" aria-busy="true" />
          )}
          <div class="pg-fields">
            <div class="pg-field pg-wide">
              <label for="pg-stdin">Stdin</label>
              <textarea
                id="pg-stdin"
                rows={3}
                spellcheck={false}
                value={state.stdin}
                onInput={(e) => set({ stdin: e.currentTarget.value })}
              />
            </div>
            <div class="pg-field">
              <label for="pg-args">Arguments (one per line)</label>
              <textarea
                id="pg-args"
                rows={3}
                spellcheck={false}
                value={state.args}
                onInput={(e) => set({ args: e.currentTarget.value })}
              />
            </div>
            <div class="pg-field">
              <label for="pg-timeout">Timeout</label>
              <input
                id="pg-timeout"
                value={state.timeout}
                placeholder="10s"
                onInput={(e) => set({ timeout: e.currentTarget.value })}
              />
              <label for="pg-memory">Memory</label>
              <input
                id="pg-memory"
                value={state.memory}
                placeholder="256m"
                onInput={(e) => set({ memory: e.currentTarget.value })}
              />
            </div>
          </div>
        </section>
        <section class="pg-result" aria-label="Result">
          <div class="row pg-verdict" aria-live="polite">
            {busy && <span class="badge warn">running…</span>}
            {result && <Verdict result={result} />}
          </div>
          {error !== undefined && (
            <p class="error" role="alert">
              {messageOf(error)}
            </p>
          )}
          {result?.compile && result.compile.verdict !== 'ok' && (
            <details open>
              <summary>Compile output</summary>
              <pre class="log">{result.compile.stdout + result.compile.stderr}</pre>
            </details>
          )}
          <h2 class="pg-h">Output</h2>
          <pre class="log pg-output" id="pg-output" ref={outRef} aria-label="Output" tabIndex={0}>
            {output.map((c, i) => (
              <span key={i} class={c.stream === 'stderr' ? 'pg-stderr' : undefined}>
                {c.data}
              </span>
            ))}
            {!busy && !result && output.length === 0 && (
              <span class="muted">Run the program to see its output here (Ctrl+Enter).</span>
            )}
          </pre>
          {ran && <Snippets body={ran} />}
        </section>
      </div>
    </>
  );
}

function Verdict(props: { result: RunResult }): JSX.Element {
  const r = props.result;
  const exit = r.signal ? `signal ${r.signal}` : r.exitCode === null ? '' : `exit ${r.exitCode}`;
  return (
    <>
      <span data-verdict={r.verdict}>
        <Badge value={r.verdict} />
      </span>
      <span title="wall-clock time">time {duration(r.wallMs)}</span>
      <span title="cpu time">cpu {duration(r.cpuMs)}</span>
      <span title="peak memory">mem {bytes(r.memoryBytes)}</span>
      {exit && <span class="muted">{exit}</span>}
      {r.compile && <span class="muted">compile {duration(r.compile.wallMs)}</span>}
    </>
  );
}

/**
 * A terminal in the sandbox: xterm.js over the daemon's WebSocket (GET /v1/sandboxes/{id}/exec/ws,
 * JSON frames: start, stdin, resize; stdout, exit, error). The cookie goes with the upgrade,
 * which the daemon takes only from this origin. Closing the tab closes the socket, which ends
 * the shell.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal as XTerm } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { seg, wsUrl } from '../../api';

/** The shell the CLI's `realm sandbox shell` opens too: bash when there is one. */
const SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi'];

type Frame =
  | { type: 'stdout' | 'stderr'; data: string }
  | { type: 'exit'; exitCode: number | null; signal: string | null }
  | { type: 'error'; error: { code: string; message: string } };

export function Terminal(props: { id: string }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<'connecting' | 'open' | 'closed'>('connecting');
  const [session, setSession] = useState(0);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const term = new XTerm({
      cursorBlink: true,
      fontFamily: 'ui-monospace, Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: 13,
      theme: { background: '#0b0d10' },
      screenReaderMode: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    const ws = new WebSocket(wsUrl(`/v1/sandboxes/${seg(props.id)}/exec/ws`));
    const send = (m: unknown): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
    };
    ws.onopen = () => {
      setState('open');
      send({ type: 'start', command: SHELL, tty: true, rows: term.rows, cols: term.cols, env: { TERM: 'xterm-256color' } });
      term.focus();
    };
    ws.onmessage = (ev: MessageEvent<string>) => {
      const f = JSON.parse(ev.data) as Frame;
      if (f.type === 'stdout' || f.type === 'stderr') term.write(f.data);
      else if (f.type === 'exit')
        term.write(`\r\n[exited${f.exitCode === null ? '' : ` with ${f.exitCode}`}${f.signal ? ` by ${f.signal}` : ''}]\r\n`);
      else if (f.type === 'error') term.write(`\r\n[${f.error.code}: ${f.error.message}]\r\n`);
    };
    ws.onclose = () => setState('closed');
    const input = term.onData((data) => send({ type: 'stdin', data }));
    const resized = term.onResize(({ rows, cols }) => send({ type: 'resize', rows, cols }));
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(el);
    return () => {
      observer.disconnect();
      input.dispose();
      resized.dispose();
      ws.close();
      term.dispose();
    };
  }, [props.id, session]);
  return (
    <section aria-label="Terminal">
      <div class="row">
        <span class="muted" role="status">
          {state === 'open' ? 'Connected' : state === 'connecting' ? 'Connecting…' : 'Closed'}
        </span>
        {state === 'closed' && (
          <button type="button" onClick={() => setSession((n) => n + 1)}>
            Reconnect
          </button>
        )}
      </div>
      <div class="terminal" ref={box} data-testid="terminal" />
    </section>
  );
}

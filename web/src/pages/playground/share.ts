/**
 * The Playground's state in the URL hash, so a link opens the same program: language, code,
 * stdin, arguments and limits. The code is deflated and base64url-encoded (`z=`), which keeps
 * a screenful of code to a link of a few hundred characters; the hash never reaches the daemon.
 */

export interface PlaygroundState {
  language: string;
  code: string;
  stdin: string;
  /** Arguments, one per line. */
  args: string;
  timeout: string;
  memory: string;
}

function toBase64Url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64Url(text: string): Uint8Array {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function through(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

const pack = async (text: string): Promise<string> =>
  toBase64Url(await through(new TextEncoder().encode(text), new CompressionStream('deflate-raw')));

const unpack = async (text: string): Promise<string> =>
  new TextDecoder().decode(await through(fromBase64Url(text), new DecompressionStream('deflate-raw')));

/** The hash (without '#') for a state; empty fields are left out. */
export async function encodeState(s: PlaygroundState): Promise<string> {
  const q = new URLSearchParams();
  q.set('lang', s.language);
  if (s.code) q.set('z', await pack(s.code));
  if (s.stdin) q.set('stdin', await pack(s.stdin));
  if (s.args) q.set('args', s.args);
  if (s.timeout) q.set('timeout', s.timeout);
  if (s.memory) q.set('memory', s.memory);
  return q.toString();
}

/** The state a hash holds (fields it lacks are undefined); undefined for no or a broken hash. */
export async function decodeState(hash: string): Promise<Partial<PlaygroundState> | undefined> {
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  const language = q.get('lang');
  if (!language) return undefined;
  try {
    const out: Partial<PlaygroundState> = { language };
    const z = q.get('z');
    out.code = z ? await unpack(z) : (q.get('code') ?? '');
    const stdin = q.get('stdin');
    if (stdin) out.stdin = await unpack(stdin);
    for (const k of ['args', 'timeout', 'memory'] as const) {
      const v = q.get(k);
      if (v !== null) out[k] = v;
    }
    return out;
  } catch {
    return undefined;
  }
}

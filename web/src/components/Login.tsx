/** The login form: a token (`realm token create`, or the admin token) exchanged for the session cookie. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { login, messageOf } from '../api';

export function Login(): JSX.Element {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await login(token.trim());
      setToken('');
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="login-title">
        <h1 id="login-title">realm</h1>
        <p class="muted">
          Sign in with an API token: <code>realm token create ui</code> makes one.
        </p>
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          required
          autofocus
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          placeholder="rlm_…"
        />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy || !token.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

import { useState } from 'react';
import { useAuth } from '../auth';
import { ErrorMessage } from '../components/states';

export function SignIn() {
  const { signIn } = useAuth();
  const [key, setKeyValue] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main className="sign-in">
      <form
        className="card form"
        aria-labelledby="signin-title"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            await signIn(key);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1 id="signin-title">Attendance</h1>
        <p>Sign in with the API key your department admin gave you.</p>
        <div className="field">
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            type="password"
            autoComplete="current-password"
            spellCheck={false}
            value={key}
            onChange={(e) => setKeyValue(e.target.value)}
            required
            placeholder="att_…"
          />
          <small className="hint">Kept only in this browser tab until you sign out or close it.</small>
        </div>
        <ErrorMessage error={error} />
        <button type="submit" className="primary" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

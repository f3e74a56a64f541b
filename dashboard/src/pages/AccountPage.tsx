import { useState } from 'react';
import { ApiError } from '../api/client';
import { setSession } from '../api/session';
import { ErrorBox } from '../components/ErrorBox';
import { useServices, useSession } from '../services';

/** The signed-in user: who they are, and their password (changed here; the session goes on
 *  with the new token the gateway answers, every older token of theirs ends). */
export function AccountPage() {
  const { api } = useServices();
  const session = useSession();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [formError, setFormError] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  async function change() {
    setFormError(null);
    setError(null);
    setDone(false);
    if (!current) return setFormError('Give your current password.');
    if ([...next].length < 10) return setFormError('The new password needs at least 10 characters.');
    if (next !== again) return setFormError('The two new passwords differ.');
    if (next === current) return setFormError('The new password is the current one.');
    setBusy(true);
    try {
      setSession(await api.changePassword(current, next));
      setCurrent('');
      setNext('');
      setAgain('');
      setDone(true);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setBusy(false);
    }
  }

  if (!session) return null;
  return (
    <div className="page account">
      <div className="page-head">
        <h2>My account</h2>
      </div>
      <p data-testid="account-who">
        {session.user.displayName || session.user.username} <span className="muted">({session.user.username}, {session.user.role})</span>
      </p>
      <section className="card">
        <h3>Change password</h3>
        <ErrorBox error={error} />
        {done && (
          <p className="muted small" role="status" data-testid="account-changed">
            Password changed. Other sessions of yours (other browsers, devices) are signed out.
          </p>
        )}
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            void change();
          }}
          data-testid="password-form"
        >
          <label>
            Current password <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} data-testid="password-current" />
          </label>
          <label>
            New password <input type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} data-testid="password-new" />
          </label>
          <label>
            New password again <input type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} data-testid="password-again" />
          </label>
          <button type="submit" className="primary" disabled={busy} data-testid="password-save">
            Change password
          </button>
          {formError && <span className="error-text" role="alert" data-testid="password-form-error">{formError}</span>}
        </form>
      </section>
    </div>
  );
}

import { useState } from 'react';
import { ApiError } from '../api/client';
import type { Account, ApiKey, CreatedKey, Role } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { formatDateTime } from '../logic/format';
import { useResource, useServices, useSession } from '../services';

const ROLES: Role[] = ['operator', 'technician', 'manager', 'admin'];
const USERNAME = /^[A-Za-z0-9._@-]{2,64}$/;

/** Who may use the plant's MANTIS (admins): users with their roles, and the API keys of
 *  machines (PLC bridges, scripts). */
export function AccessPage() {
  return (
    <div className="page access">
      <div className="page-head">
        <h2>Access</h2>
      </div>
      <UsersSection />
      <KeysSection />
    </div>
  );
}

function UsersSection() {
  const { api } = useServices();
  const me = useSession()?.user.username;
  const users = useResource<Account[]>(() => api.users(), [api]);
  const [error, setError] = useState<ApiError | null>(null);
  const [draft, setDraft] = useState({ username: '', displayName: '', role: 'operator' as Role, password: '' });
  const [formError, setFormError] = useState<string | null>(null);
  const [resetFor, setResetFor] = useState<string | null>(null);
  const [resetTo, setResetTo] = useState('');
  const [resetError, setResetError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // A role chosen in a row's list, saved only when asked (arrowing through a list must not
  // save every role on the way).
  const [roles, setRoles] = useState<Record<string, Role>>({});

  async function run(action: () => Promise<unknown>, done?: string) {
    setError(null);
    setNotice(null);
    try {
      await action();
      if (done) setNotice(done);
      void users.reload();
      return true;
    } catch (e) {
      setError(e as ApiError);
      return false;
    }
  }

  async function create() {
    setFormError(null);
    const username = draft.username.trim();
    if (!USERNAME.test(username)) return setFormError('A username is 2 to 64 letters, digits, . _ - or @.');
    if ([...draft.password].length < 10) return setFormError('The password needs at least 10 characters.');
    const ok = await run(() => api.createUser({ ...draft, username, displayName: draft.displayName.trim() }), `User ${username} created.`);
    if (ok) setDraft({ username: '', displayName: '', role: 'operator', password: '' });
  }

  async function reset(username: string) {
    if ([...resetTo].length < 10) return setResetError('At least 10 characters.');
    setResetError(null);
    const ok = await run(() => api.updateUser(username, { password: resetTo }), `Password of ${username} set; their sessions are signed out.`);
    if (ok) {
      setResetFor(null);
      setResetTo('');
    }
  }

  return (
    <section data-testid="users">
      <h3>Users</h3>
      <ErrorBox error={users.error ?? error} />
      {notice && (
        <p className="muted small" role="status" data-testid="users-notice">
          {notice}
        </p>
      )}
      {users.data && (
        <table className="table" data-testid="users-table">
          <thead>
            <tr>
              <th>Username</th>
              <th>Name</th>
              <th>Role</th>
              <th>Since</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.data.map((u) => {
              const self = u.username === me;
              return (
                <tr key={u.username} className={u.disabled ? 'muted' : ''} data-testid="user-row" data-name={u.username}>
                  <td>{u.username}</td>
                  <td>{u.displayName}</td>
                  <td>
                    <select
                      value={roles[u.username] ?? u.role}
                      disabled={self}
                      title={self ? 'An admin cannot demote themselves' : undefined}
                      onChange={(e) => setRoles({ ...roles, [u.username]: e.target.value as Role })}
                      aria-label={`Role of ${u.username}`}
                      data-testid="user-role"
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                    {roles[u.username] !== undefined && roles[u.username] !== u.role && (
                      <>
                        {' '}
                        <button
                          type="button"
                          onClick={() => {
                            const role = roles[u.username];
                            void run(() => api.updateUser(u.username, { role }), `${u.username} is now ${role}.`).then((ok) => {
                              if (ok) setRoles(({ [u.username]: _, ...rest }) => rest);
                            });
                          }}
                          data-testid="user-role-save"
                        >
                          Save
                        </button>
                      </>
                    )}
                  </td>
                  <td>{formatDateTime(u.createdAt)}</td>
                  <td>{u.disabled ? 'disabled' : 'active'}</td>
                  <td>
                    {!self && (
                      <button type="button" onClick={() => void run(() => api.updateUser(u.username, { disabled: !u.disabled }))} aria-label={`${u.disabled ? 'Enable' : 'Disable'} ${u.username}`} data-testid="user-toggle">
                        {u.disabled ? 'Enable' : 'Disable'}
                      </button>
                    )}{' '}
                    {self ? (
                      // Setting one's own password here would end this session's token.
                      <a href="#/account" data-testid="user-own-account">
                        Change my password
                      </a>
                    ) : resetFor === u.username ? (
                      <form
                        style={{ display: 'inline' }}
                        onSubmit={(e) => {
                          e.preventDefault();
                          void reset(u.username);
                        }}
                      >
                        <input type="password" autoComplete="new-password" placeholder="new password" aria-label={`New password of ${u.username}`} value={resetTo} onChange={(e) => setResetTo(e.target.value)} data-testid="user-reset-password" />{' '}
                        <button type="submit" data-testid="user-reset-save">
                          Set
                        </button>{' '}
                        <button type="button" onClick={() => setResetFor(null)} data-testid="user-reset-cancel">
                          Cancel
                        </button>
                        {resetError && (
                          <span className="error-text small" data-testid="user-reset-error">
                            {' '}
                            {resetError}
                          </span>
                        )}
                      </form>
                    ) : (
                      <button type="button" onClick={() => { setResetFor(u.username); setResetTo(''); setResetError(null); }} aria-label={`Set the password of ${u.username}`} data-testid="user-reset">
                        Set password
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
        data-testid="user-form"
      >
        <label>
          Username <input value={draft.username} onChange={(e) => setDraft({ ...draft, username: e.target.value })} data-testid="user-name" />
        </label>
        <label>
          Name <input value={draft.displayName} onChange={(e) => setDraft({ ...draft, displayName: e.target.value })} data-testid="user-display" />
        </label>
        <label>
          Role{' '}
          <select value={draft.role} onChange={(e) => setDraft({ ...draft, role: e.target.value as Role })} data-testid="user-new-role">
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <label>
          Password <input type="password" autoComplete="new-password" value={draft.password} onChange={(e) => setDraft({ ...draft, password: e.target.value })} data-testid="user-password" />
        </label>
        <button type="submit" data-testid="user-save">
          Add user
        </button>
        {formError && <span className="error-text" role="alert" data-testid="user-form-error">{formError}</span>}
      </form>
    </section>
  );
}

function KeysSection() {
  const { api } = useServices();
  const keys = useResource<ApiKey[]>(() => api.apiKeys(), [api]);
  const [error, setError] = useState<ApiError | null>(null);
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('technician');
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [copied, setCopied] = useState<string | null>(null);

  async function copy(key: string) {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(key);
      setCopied('Copied.');
    } catch {
      // Plain HTTP (no clipboard API) or refused: select it for the user to copy by hand.
      const el = document.querySelector('[data-testid="key-secret"]');
      const selection = window.getSelection();
      if (el && selection) {
        const range = document.createRange();
        range.selectNodeContents(el);
        selection.removeAllRanges();
        selection.addRange(range);
      }
      setCopied('Selected: copy it with Ctrl+C.');
    }
  }

  async function create() {
    setFormError(null);
    setError(null);
    setCopied(null);
    if (!name.trim()) return setFormError('Say what the key is for (e.g. line-2 PLC bridge).');
    try {
      setCreated(await api.createApiKey(name.trim(), role));
      setName('');
      void keys.reload();
    } catch (e) {
      setError(e as ApiError);
    }
  }

  async function revoke(id: string) {
    setError(null);
    try {
      await api.revokeApiKey(id);
      void keys.reload();
    } catch (e) {
      setError(e as ApiError);
    }
  }

  return (
    <section data-testid="api-keys">
      <h3>API keys</h3>
      <p className="muted small">Machines send readings and read the plant with a key (header X-API-Key) instead of a login.</p>
      <ErrorBox error={keys.error ?? error} />
      {created && (
        <div className="card" data-testid="key-created">
          <p>
            The key of <strong>{created.name}</strong> — shown this once, copy it now:
          </p>
          <code className="secret" data-testid="key-secret">
            {created.key}
          </code>{' '}
          <button type="button" onClick={() => void copy(created.key)} data-testid="key-copy">
            Copy
          </button>{' '}
          {copied && (
            <span className="muted small" role="status" data-testid="key-copied">
              {copied}{' '}
            </span>
          )}
          <button type="button" onClick={() => setCreated(null)} data-testid="key-dismiss">
            Done
          </button>
        </div>
      )}
      {keys.data && keys.data.length > 0 && (
        <table className="table" data-testid="keys-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Prefix</th>
              <th>Role</th>
              <th>Created</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.data.map((k) => (
              <tr key={k.id} className={k.revokedAt ? 'muted' : ''} data-testid="key-row">
                <td>{k.name}</td>
                <td>
                  <code>{k.prefix}</code>
                </td>
                <td>{k.role}</td>
                <td>{formatDateTime(k.createdAt)}</td>
                <td>{k.revokedAt ? `revoked ${formatDateTime(k.revokedAt)}` : 'active'}</td>
                <td>
                  {!k.revokedAt && (
                    <button type="button" onClick={() => void revoke(k.id)} aria-label={`Revoke the key of ${k.name}`} data-testid="key-revoke">
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
        data-testid="key-form"
      >
        <label>
          For <input value={name} maxLength={100} placeholder="line-2 PLC bridge" onChange={(e) => setName(e.target.value)} data-testid="key-name" />
        </label>
        <label>
          Role{' '}
          <select value={role} onChange={(e) => setRole(e.target.value as Role)} data-testid="key-role">
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" data-testid="key-save">
          Create key
        </button>
        {formError && <span className="error-text" role="alert" data-testid="key-form-error">{formError}</span>}
      </form>
    </section>
  );
}

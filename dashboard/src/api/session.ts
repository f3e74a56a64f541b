// The logged-in session: token and user kept in sessionStorage (one browser tab), with a
// tiny subscription so React re-renders on login/logout.
import type { LoginResponse, User } from './types';

const KEY = 'mantis.session';

export interface Session {
  token: string;
  expiresAt: string;
  user: User;
}

type Listener = () => void;
const listeners = new Set<Listener>();
let cached: Session | null | undefined;

function storage(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

export function getSession(): Session | null {
  if (cached !== undefined) return cached;
  const raw = storage()?.getItem(KEY);
  if (!raw) return (cached = null);
  try {
    const s = JSON.parse(raw) as Session;
    cached = s && typeof s.token === 'string' && s.user ? s : null;
  } catch {
    cached = null;
  }
  return cached;
}

export function getToken(): string | null {
  return getSession()?.token ?? null;
}

export function setSession(login: LoginResponse): void {
  cached = { token: login.token, expiresAt: login.expiresAt, user: login.user };
  storage()?.setItem(KEY, JSON.stringify(cached));
  listeners.forEach((l) => l());
}

export function clearSession(): void {
  cached = null;
  storage()?.removeItem(KEY);
  listeners.forEach((l) => l());
}

export function subscribeSession(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/** Tests: forget the in-memory copy so the next read comes from sessionStorage. */
export function resetSessionCache(): void {
  cached = undefined;
}

import { createContext, useContext } from 'react';

export type Theme = 'light' | 'dark';
const THEME_KEY = 'mantis.theme';
const KIOSK_KEY = 'mantis.kiosk';

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}
function write(key: string, v: string | null): void {
  try {
    if (v === null) localStorage.removeItem(key);
    else localStorage.setItem(key, v);
  } catch {
    /* storage unavailable */
  }
}

export function loadTheme(): Theme {
  const t = read(THEME_KEY);
  if (t === 'light' || t === 'dark') return t;
  try {
    return globalThis.matchMedia?.('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  } catch {
    return 'light';
  }
}
export const saveTheme = (t: Theme) => write(THEME_KEY, t);
export const loadKiosk = () => read(KIOSK_KEY) === '1';
export const saveKiosk = (on: boolean) => write(KIOSK_KEY, on ? '1' : null);

/** The theme in force (kiosk forces dark); charts rebuild when it changes. */
export const ThemeContext = createContext<Theme>('light');
export const useTheme = () => useContext(ThemeContext);

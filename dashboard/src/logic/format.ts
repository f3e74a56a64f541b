// Formatting of KPIs, numbers and times.

const pad = (n: number) => String(n).padStart(2, '0');

/** hh:mm:ss in local time (the offline banner). */
export function formatClock(t: number | Date | null | undefined): string {
  if (t === null || t === undefined) return '--:--:--';
  const d = typeof t === 'number' ? new Date(t) : t;
  if (Number.isNaN(d.getTime())) return '--:--:--';
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** yyyy-mm-dd hh:mm in local time. */
export function formatDateTime(ts: string | null | undefined): string {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function formatPercent(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return `${(x * 100).toFixed(digits)} %`;
}

export function formatHours(h: number | null | undefined): string {
  if (h === null || h === undefined || !Number.isFinite(h)) return '—';
  if (h < 1) return `${Math.round(h * 60)} min`;
  if (h < 100) return `${h.toFixed(1)} h`;
  return `${Math.round(h)} h`;
}

export function formatNumber(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x.toFixed(digits);
}

/** "3 min ago" style relative age. */
export function formatAge(ts: string | null | undefined, now = Date.now()): string {
  if (!ts) return 'never';
  const t = Date.parse(ts);
  if (Number.isNaN(t)) return '—';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** RFC 3339 UTC with milliseconds, as the gateway writes them. */
export function toIso(t: number | Date): string {
  return (typeof t === 'number' ? new Date(t) : t).toISOString();
}

export type Period = '24h' | '7d' | '30d' | 'custom';

export const PERIOD_MS: Record<Exclude<Period, 'custom'>, number> = {
  '24h': 24 * 3600e3,
  '7d': 7 * 24 * 3600e3,
  '30d': 30 * 24 * 3600e3,
};

/** The [from, to] of a KPI period; custom takes `datetime-local` strings. */
export function periodRange(
  period: Period,
  now: number,
  custom?: { from: string; to: string },
): { from: string; to: string } | null {
  if (period !== 'custom') return { from: toIso(now - PERIOD_MS[period]), to: toIso(now) };
  if (!custom?.from || !custom?.to) return null;
  const f = new Date(custom.from).getTime();
  const t = new Date(custom.to).getTime();
  if (Number.isNaN(f) || Number.isNaN(t) || f >= t) return null;
  return { from: toIso(f), to: toIso(t) };
}

/** A Date as the value of an `<input type="datetime-local">` (local time). */
export function toLocalInput(t: number | string | null | undefined): string {
  if (t === null || t === undefined || t === '') return '';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The file name of a KPI CSV export. */
export function csvFileName(from: string, to: string): string {
  const day = (s: string) => s.slice(0, 10);
  return `mantis-kpis-${day(from)}_${day(to)}.csv`;
}

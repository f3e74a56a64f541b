import type { AssetHealth, Criticality, HealthStatus } from '../api/types';

/** CSS colour (a theme variable) for a health status. */
export function healthColor(status: HealthStatus | string): string {
  switch (status) {
    case 'OK':
      return 'var(--ok)';
    case 'WARNING':
      return 'var(--warn)';
    case 'CRITICAL':
      return 'var(--crit)';
    default:
      return 'var(--unknown)';
  }
}

export function healthClass(status: HealthStatus | string): string {
  return `status-${String(status || 'UNKNOWN').toLowerCase()}`;
}

export function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

/**
 * The anomaly bar: score as a fraction of a scale on which the threshold sits at 2/3, so
 * scores above the threshold are visible as overflow. Returns bar fill and threshold mark.
 */
export function anomalyBar(score: number, threshold: number): { fill: number; mark: number; over: boolean } {
  if (!(threshold > 0)) return { fill: clamp01(score), mark: 1, over: false };
  const scale = threshold * 1.5;
  return { fill: clamp01(score / scale), mark: 2 / 3, over: score > threshold };
}

/** The RUL bar: cycles against twice the threshold (threshold mark at 1/2); low is bad. */
export function rulBar(cycles: number, threshold: number): { fill: number; mark: number; below: boolean } {
  if (!(threshold > 0)) return { fill: 1, mark: 0, below: false };
  return { fill: clamp01(cycles / (threshold * 2)), mark: 0.5, below: cycles < threshold };
}

export interface OverviewFilter {
  line: string;
  criticality: Criticality | '';
  status: HealthStatus | '';
}

export const EMPTY_FILTER: OverviewFilter = { line: '', criticality: '', status: '' };

export function filterOverview(list: AssetHealth[], f: OverviewFilter): AssetHealth[] {
  return list.filter(
    (h) =>
      (!f.line || h.asset.line === f.line) &&
      (!f.criticality || h.asset.criticality === f.criticality) &&
      (!f.status || h.status === f.status),
  );
}

const STATUS_RANK: Record<string, number> = { CRITICAL: 0, WARNING: 1, UNKNOWN: 2, OK: 3 };

/** Worst first, then by line and code: what needs attention is at the top-left. */
export function sortOverview(list: AssetHealth[]): AssetHealth[] {
  return list
    .slice()
    .sort(
      (a, b) =>
        (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9) ||
        (a.asset.line ?? '').localeCompare(b.asset.line ?? '') ||
        a.asset.code.localeCompare(b.asset.code),
    );
}

export function countByStatus(list: AssetHealth[]): Record<HealthStatus, number> {
  const out: Record<HealthStatus, number> = { OK: 0, WARNING: 0, CRITICAL: 0, UNKNOWN: 0 };
  for (const h of list) out[h.status] = (out[h.status] ?? 0) + 1;
  return out;
}

export function uniqueLines(list: AssetHealth[]): string[] {
  return [...new Set(list.map((h) => h.asset.line).filter(Boolean))].sort();
}

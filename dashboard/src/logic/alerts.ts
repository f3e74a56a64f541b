import type { Alert, AlertState, Severity } from '../api/types';

export function isAcknowledged(a: Alert): boolean {
  return !!a.acknowledgedAt || !!a.acknowledgedBy;
}

export function matchesState(a: Alert, state: AlertState): boolean {
  if (state === 'all') return true;
  return state === 'acknowledged' ? isAcknowledged(a) : !isAcknowledged(a);
}

export function filterAlerts(list: Alert[], state: AlertState, assetId?: string): Alert[] {
  return list.filter((a) => matchesState(a, state) && (!assetId || a.assetId === assetId));
}

/**
 * A live alert into a newest-first list: a known id is replaced in place (e.g. acknowledged
 * elsewhere), a new one goes on top. The list is capped to `max` entries.
 */
export function prependAlert(list: Alert[], alert: Alert, max = 500): Alert[] {
  const i = list.findIndex((a) => a.id === alert.id);
  if (i >= 0) {
    // An older state (the alert as raised, arriving after a reload that showed it
    // acknowledged; an assignment overtaken by a later one) never replaces a newer.
    const listed = list[i].changedAt;
    if (listed && (!alert.changedAt || Date.parse(alert.changedAt) < Date.parse(listed))) return list;
    const next = list.slice();
    next[i] = { ...list[i], ...alert };
    return next;
  }
  return [alert, ...list].slice(0, max);
}

/**
 * `alert` (a change of one not listed) put where it belongs in `list` (newest raised first),
 * when it falls within the list: a full list (`max`) takes nothing older than its oldest.
 */
export function insertByRaise(list: Alert[], alert: Alert, max = 500): Alert[] {
  if (list.some((a) => a.id === alert.id)) return prependAlert(list, alert, max);
  const at = Date.parse(alert.createdAt);
  if (list.length >= max && !list.some((a) => Date.parse(a.createdAt) <= at)) return list;
  const i = list.findIndex((a) => Date.parse(a.createdAt) < at);
  const next = i < 0 ? [...list, alert] : [...list.slice(0, i), alert, ...list.slice(i)];
  return next.slice(0, max);
}

const SEVERITY_RANK: Record<Severity, number> = { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3 };

export function severityRank(s: Severity): number {
  return SEVERITY_RANK[s] ?? 9;
}

/**
 * Whether a newly arrived alert should beep and flash: a CRITICAL one, or one flagged for the
 * on-call technician (a CRITICAL asset's anomaly alert, or its overdue work order's), until
 * acknowledged.
 */
export function isAlarming(a: Alert): boolean {
  return (a.severity === 'CRITICAL' || a.notifyOnCall) && !isAcknowledged(a);
}

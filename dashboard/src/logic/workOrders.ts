import type { Part, Priority, WorkOrder, WorkOrderStatus } from '../api/types';
import { WORK_ORDER_STATUSES } from '../api/types';

/** Allowed moves (API.md): anything else is a 409. */
export const TRANSITIONS: Record<WorkOrderStatus, WorkOrderStatus[]> = {
  OPEN: ['SCHEDULED', 'IN_PROGRESS', 'CANCELLED'],
  SCHEDULED: ['IN_PROGRESS', 'CANCELLED', 'OPEN'],
  IN_PROGRESS: ['COMPLETED', 'SCHEDULED', 'CANCELLED'],
  COMPLETED: [],
  CANCELLED: [],
};

export function allowedTransitions(from: WorkOrderStatus): WorkOrderStatus[] {
  return TRANSITIONS[from] ?? [];
}

export function canTransition(from: WorkOrderStatus, to: WorkOrderStatus): boolean {
  return allowedTransitions(from).includes(to);
}

export function isActive(status: WorkOrderStatus): boolean {
  return status === 'OPEN' || status === 'SCHEDULED' || status === 'IN_PROGRESS';
}

const PRIORITY_RANK: Record<Priority, number> = { URGENT: 0, HIGH: 1, NORMAL: 2, LOW: 3 };

/** Board order inside a column: priority, then due date (earliest first), then code. */
export function compareWorkOrders(a: WorkOrder, b: WorkOrder): number {
  const p = (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9);
  if (p) return p;
  const da = a.dueBy ? Date.parse(a.dueBy) : Infinity;
  const db = b.dueBy ? Date.parse(b.dueBy) : Infinity;
  if (da !== db) return da < db ? -1 : 1;
  return a.code.localeCompare(b.code);
}

/**
 * The work orders in the five board columns, each sorted; `pinned` keeps an order in the column given (its form is open:
 * moved to another column, the card would be made anew and lose what was typed in it).
 */
export function groupByStatus(
  list: WorkOrder[],
  pinned: Partial<Record<string, WorkOrderStatus>> = {},
): Record<WorkOrderStatus, WorkOrder[]> {
  const out = Object.fromEntries(WORK_ORDER_STATUSES.map((s) => [s, [] as WorkOrder[]])) as Record<
    WorkOrderStatus,
    WorkOrder[]
  >;
  for (const wo of list) {
    const column = pinned[wo.id] ?? wo.status;
    (out[column] ?? (out[column] = [])).push(wo);
  }
  for (const s of WORK_ORDER_STATUSES) out[s].sort(compareWorkOrders);
  return out;
}

/** Inserts or replaces (by id) a work order, e.g. from a live message; an item older (by
 *  `updatedAt`) than the one listed does not replace it (a message that arrives after a newer
 *  read). */
export function upsertById<T extends { id: string; updatedAt?: string }>(list: T[], item: T): T[] {
  const i = list.findIndex((x) => x.id === item.id);
  if (i < 0) return [item, ...list];
  const listed = list[i].updatedAt;
  if (listed && item.updatedAt && Date.parse(item.updatedAt) < Date.parse(listed)) return list;
  const next = list.slice();
  next[i] = item;
  return next;
}

/** "PN-1 x2, PN-2" ⇄ parts. One part per comma or line; quantity after `x` or `*`, default 1. */
export function parseParts(text: string): Part[] {
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => {
      // `BRG-6204 x2`, `BRG-6204 ×2`, `BRG-6204*2`: a quantity after whitespace and x (so
      // that `BOX5` stays a part number), or after `*`.
      const m = /^(.+?)(?:\s+[x×]\s*|\s*\*\s*)(\d+)$/i.exec(item);
      if (m) return { partNumber: m[1].trim(), quantity: Number(m[2]) };
      return { partNumber: item, quantity: 1 };
    });
}

export function formatParts(parts: Part[] | undefined | null): string {
  return (parts ?? []).map((p) => (p.quantity === 1 ? p.partNumber : `${p.partNumber} x${p.quantity}`)).join(', ');
}

export function statusLabel(s: string): string {
  return s.replace(/_/g, ' ');
}

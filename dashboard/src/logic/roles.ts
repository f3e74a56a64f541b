// Role rights from API.md: each role has the rights of the ones below it.
import type { Role } from '../api/types';

export const ROLE_RANK: Record<Role, number> = { operator: 0, technician: 1, manager: 2, admin: 3 };

export type Action =
  | 'acknowledgeAlert'
  | 'transitionWorkOrder'
  | 'editWorkOrder'
  | 'recordEvent'
  | 'recordProduction'
  | 'createWorkOrder'
  | 'assignAlert'
  | 'assignWorkOrder'
  | 'exportKpis'
  | 'planStops'
  | 'manageAssets'
  | 'manageUsers'
  | 'viewDeadLetters'
  | 'viewPlan'
  | 'managePlan'
  | 'viewStores'
  | 'recordStock'
  | 'manageStores';

const MIN_ROLE: Record<Action, Role> = {
  acknowledgeAlert: 'operator',
  transitionWorkOrder: 'technician',
  editWorkOrder: 'technician',
  recordEvent: 'technician',
  recordProduction: 'operator',
  createWorkOrder: 'manager',
  assignAlert: 'manager',
  assignWorkOrder: 'manager',
  exportKpis: 'manager',
  planStops: 'manager',
  manageAssets: 'manager',
  manageUsers: 'admin',
  viewDeadLetters: 'admin',
  viewPlan: 'technician',
  managePlan: 'manager',
  viewStores: 'technician',
  recordStock: 'technician',
  manageStores: 'manager',
};

/** Whether `role` may do `action`; an unknown or missing role may do nothing. */
export function can(role: Role | string | null | undefined, action: Action): boolean {
  if (!role || !(role in ROLE_RANK)) return false;
  return ROLE_RANK[role as Role] >= ROLE_RANK[MIN_ROLE[action]];
}

/** The installation's default tenant (`TenantId::DEFAULT`, crates/mantis-domain/src/ids.rs):
 *  dead letters hold every tenant's records, so only its admins see them. */
export const DEFAULT_TENANT = '6d616e74-6973-4000-8000-000000000001';

/** Whether the user may look at and replay dead letters (admins of the default tenant). */
export function canSeeDeadLetters(user: { role: Role | string | null | undefined; tenantId?: string | null } | null | undefined): boolean {
  return !!user && can(user.role, 'viewDeadLetters') && user.tenantId?.toLowerCase() === DEFAULT_TENANT;
}

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

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';
import { ApiError } from '../api/client';
import {
  OUTCOMES,
  PRIORITIES,
  WORK_ORDER_STATUSES,
  type Asset,
  type NewWorkOrder,
  type Outcome,
  type Priority,
  type WorkOrder,
  type WorkOrderPatch,
  type WorkOrderStatus,
} from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { formatDateTime, fromLocalInput, toLocalInput } from '../logic/format';
import { can } from '../logic/roles';
import { assetHref } from '../logic/route';
import { allowedTransitions, formatParts, groupByStatus, parseParts, statusLabel, upsertById } from '../logic/workOrders';
import { useAssets, useInterval, useLiveChannel, useLiveMessage, useResource, useServices, useSession } from '../services';

const ACTION_LABEL: Record<WorkOrderStatus, string> = {
  OPEN: 'Reopen',
  SCHEDULED: 'Schedule',
  IN_PROGRESS: 'Start',
  COMPLETED: 'Complete',
  CANCELLED: 'Cancel',
};

/** The active work orders the board reads at most (the API's largest page, newest first). */
export const BOARD_ACTIVE_LIMIT = 1000;
/** The closed ones it shows: the newest. */
export const BOARD_CLOSED_LIMIT = 200;
const ACTIVE: WorkOrderStatus[] = ['OPEN', 'SCHEDULED', 'IN_PROGRESS'];
const CLOSED: WorkOrderStatus[] = ['COMPLETED', 'CANCELLED'];

/** Work orders: a board with one column per status. */
export function WorkOrdersPage() {
  const { api } = useServices();
  const role = useSession()?.user.role;
  const assets = useAssets();
  // Active and closed orders read apart: closed ones pile up, and must never push an old
  // order still open off the board.
  const res = useResource<WorkOrder[]>(async () => {
    const [active, closed] = await Promise.all([
      api.workOrders({ status: ACTIVE, limit: BOARD_ACTIVE_LIMIT }),
      api.workOrders({ status: CLOSED, limit: BOARD_CLOSED_LIMIT }),
    ]);
    const seen = new Set(active.map((w) => w.id));
    return [...active, ...closed.filter((w) => !seen.has(w.id))];
  }, [api]);
  const activeShown = (res.data ?? []).filter((w) => ACTIVE.includes(w.status)).length;
  const [assetFilter, setAssetFilter] = useState('');
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  // The column of each card whose form is open, as it was when the form opened: a change of
  // status meanwhile (someone else, the live feed) does not move the card away from the form.
  const [pinned, setPinned] = useState<Partial<Record<string, WorkOrderStatus>>>({});
  const pin = (id: string, column: WorkOrderStatus, open: boolean) =>
    setPinned((p) => {
      if (open === id in p) return p;
      const next = { ...p };
      if (open) next[id] = column;
      else delete next[id];
      return next;
    });

  useLiveChannel('workOrders');
  useLiveMessage('workOrder', (m) => res.setData((prev) => upsertById(prev ?? [], m.data)));
  useLiveMessage('resync', () => void res.reload());
  useInterval(() => void res.reload(), 30_000);

  const columns = useMemo(
    () => groupByStatus((res.data ?? []).filter((w) => !assetFilter || w.assetId === assetFilter), pinned),
    [res.data, assetFilter, pinned],
  );
  const assetList = useMemo(() => [...assets.values()].sort((a, b) => a.code.localeCompare(b.code)), [assets]);

  const apply = (wo: WorkOrder) => res.setData((prev) => upsertById(prev ?? [], wo));
  const run = async (f: () => Promise<WorkOrder | void>) => {
    setError(null);
    try {
      const wo = await f();
      if (wo) apply(wo);
      return true;
    } catch (e) {
      const error = e instanceof ApiError ? e : new ApiError({ status: 0, detail: String(e) });
      setError(error);
      // Changed by someone since it was read: the board is read again, so the card (and an
      // open form) shows what changed.
      if (error.status === 412) void res.reload();
      return false;
    }
  };

  return (
    <div className="page work-orders">
      <div className="page-head">
        <h2>Work orders</h2>
        <label>
          Asset{' '}
          <select value={assetFilter} onChange={(e) => setAssetFilter(e.target.value)} data-testid="wo-asset-filter">
            <option value="">All assets</option>
            {assetList.map((a) => (
              <option key={a.id} value={a.id}>
                {a.code} — {a.name}
              </option>
            ))}
          </select>
        </label>
        {can(role, 'createWorkOrder') && (
          <button type="button" className="primary" onClick={() => setCreating((c) => !c)} data-testid="wo-new">
            {creating ? 'Close' : 'New work order'}
          </button>
        )}
      </div>
      <ErrorBox error={error ?? res.error} onDismiss={error ? () => setError(null) : undefined} />
      {creating && (
        <CreateForm
          assets={assetList}
          defaultAsset={assetFilter}
          onCreate={async (wo) => {
            if (await run(() => api.createWorkOrder(wo))) setCreating(false);
          }}
        />
      )}
      {res.loading && !res.data && <p className="muted">Loading…</p>}
      {activeShown >= BOARD_ACTIVE_LIMIT && (
        <p className="muted small" role="status" data-testid="wo-truncated">
          The newest {BOARD_ACTIVE_LIMIT} active work orders are shown; older ones are not. Close or cancel what is done, or
          list them by asset through the API.
        </p>
      )}
      <div className="board" data-testid="wo-board">
        {WORK_ORDER_STATUSES.map((s) => (
          <section key={s} className="column" data-testid={`wo-column-${s}`}>
            <h3>
              {statusLabel(s)} <span className="muted">{columns[s].length}</span>
            </h3>
            {columns[s].map((wo) => (
              <WorkOrderCard
                key={wo.id}
                wo={wo}
                asset={assets.get(wo.assetId)}
                canTransition={can(role, 'transitionWorkOrder')}
                canEdit={can(role, 'editWorkOrder')}
                shownIn={s}
                onFormOpen={(open) => pin(wo.id, s, open)}
                onTransition={(to, readAt) => run(() => api.transitionWorkOrder(wo.id, to, readAt))}
                onComplete={(outcome, note, failedAt, readAt) =>
                  run(async () => (await api.completeWorkOrder(wo.id, outcome, note, failedAt, readAt)).workOrder)
                }
                onSave={(patch, readAt) => run(() => api.updateWorkOrder(wo.id, patch, readAt))}
              />
            ))}
          </section>
        ))}
      </div>
    </div>
  );
}

interface CardProps {
  wo: WorkOrder;
  asset?: Asset;
  canTransition: boolean;
  canEdit: boolean;
  /** The column the card is shown in (its status, unless it moved while a form was open). */
  shownIn?: WorkOrderStatus;
  /** Told when a form opens on the card and when it closes. */
  onFormOpen?: (open: boolean) => void;
  /** `readAt`: the `updatedAt` of the order as the person saw it (a change since refuses the action). */
  onTransition: (to: WorkOrderStatus, readAt?: string) => Promise<boolean>;
  onComplete: (outcome: Outcome, note: string, failedAt?: string, readAt?: string) => Promise<boolean>;
  onSave: (patch: WorkOrderPatch, readAt?: string) => Promise<boolean>;
}

export function WorkOrderCard({
  wo,
  asset,
  canTransition,
  canEdit,
  shownIn,
  onFormOpen,
  onTransition,
  onComplete,
  onSave,
}: CardProps) {
  const [mode, setMode] = useState<'view' | 'edit' | 'complete'>('view');
  const formOpen = useRef(onFormOpen);
  useLayoutEffect(() => {
    formOpen.current = onFormOpen;
  });
  useEffect(() => {
    formOpen.current?.(mode !== 'view');
  }, [mode]);
  // A card that goes away (the order deleted, the filter changed) holds no column.
  useEffect(() => () => formOpen.current?.(false), []);
  const [busy, setBusy] = useState(false);
  // The order as it was when the completion form opened: completed as seen (its parts
  // taken), or refused if someone changed it since.
  const [completeFrom, setCompleteFrom] = useState<string | undefined>(undefined);
  const overdue = wo.dueBy && Date.parse(wo.dueBy) < Date.now() && (wo.status === 'OPEN' || wo.status === 'SCHEDULED');
  const act = async (f: () => Promise<boolean>) => {
    setBusy(true);
    const ok = await f();
    setBusy(false);
    if (ok) setMode('view');
  };
  return (
    <article
      className={`wo-card prio-${wo.priority.toLowerCase()}`}
      data-testid="wo-card"
      data-wo-id={wo.id}
      data-wo-code={wo.code}
      data-status={wo.status}
    >
      <header>
        <strong>{wo.code}</strong>
        <span className={`badge prio-${wo.priority.toLowerCase()}`}>{wo.priority}</span>
      </header>
      <div className="small">
        <a href={assetHref(wo.assetId)}>{asset ? `${asset.code} — ${asset.name}` : wo.assetId.slice(0, 8)}</a>
      </div>
      {shownIn && shownIn !== wo.status && (
        <p className="notice small" role="status" data-testid="wo-moved">
          Now {statusLabel(wo.status)} (changed by someone else): the card moves there when this form closes.
        </p>
      )}
      {mode !== 'edit' && (
        <>
          <p className="wo-desc">{wo.description}</p>
          <dl className="wo-meta small">
            {wo.cause && (
              <>
                <dt>Cause</dt>
                <dd>{wo.cause}</dd>
              </>
            )}
            <dt>Due</dt>
            <dd className={overdue ? 'overdue' : ''}>{formatDateTime(wo.dueBy)}</dd>
            <dt>Technician</dt>
            <dd>
              {wo.technician || '—'}
              {wo.technician && wo.technicianByPlanner && <span className="muted"> (planner)</span>}
            </dd>
            {wo.planned && (
              <>
                <dt>Planned</dt>
                <dd data-testid="wo-planned">
                  {formatDateTime(wo.planned.start)} – {formatDateTime(wo.planned.end)}
                  {wo.plannedByPlanner && <span className="muted"> (planner)</span>}
                </dd>
              </>
            )}
            {wo.parts && wo.parts.length > 0 && (
              <>
                <dt>Parts</dt>
                <dd>{formatParts(wo.parts)}</dd>
              </>
            )}
            {wo.whileRunning && (
              <>
                <dt>Asset</dt>
                <dd data-testid="wo-while-running">keeps running during the work</dd>
              </>
            )}
          </dl>
        </>
      )}
      {mode === 'edit' && (
        <EditForm wo={wo} busy={busy} onCancel={() => setMode('view')} onSave={(p, readAt) => act(() => onSave(p, readAt))} />
      )}
      {mode === 'complete' && (
        <CompleteForm
          busy={busy}
          onCancel={() => setMode('view')}
          onComplete={(outcome, note, failedAt) =>
            act(() => (outcome ? onComplete(outcome, note, failedAt, completeFrom) : onTransition('COMPLETED', completeFrom)))
          }
        />
      )}
      {mode === 'view' && (canTransition || canEdit) && (
        <footer className="wo-actions">
          {canTransition &&
            allowedTransitions(wo.status).map((to) => (
              <button
                key={to}
                type="button"
                disabled={busy}
                className={to === 'CANCELLED' ? 'danger' : to === 'COMPLETED' ? 'primary' : ''}
                onClick={() => {
                  if (to === 'COMPLETED') {
                    setCompleteFrom(wo.updatedAt);
                    setMode('complete');
                  } else {
                    void act(() => onTransition(to, wo.updatedAt));
                  }
                }}
                data-testid="wo-transition"
                data-to={to}
              >
                {ACTION_LABEL[to]}
              </button>
            ))}
          {canEdit && wo.status !== 'COMPLETED' && wo.status !== 'CANCELLED' && (
            <button type="button" className="link" onClick={() => setMode('edit')} data-testid="wo-edit">
              Edit
            </button>
          )}
        </footer>
      )}
    </article>
  );
}

function EditForm({
  wo,
  busy,
  onSave,
  onCancel,
}: {
  wo: WorkOrder;
  busy: boolean;
  onSave: (patch: WorkOrderPatch, readAt?: string) => void;
  onCancel: () => void;
}) {
  // The order as it was when the form opened: what was changed here is measured against it,
  // and the save is refused (412) if someone changed the order since, rather than undoing
  // their change unseen.
  const [base, setBase] = useState(wo);
  const [description, setDescription] = useState(wo.description);
  const [priority, setPriority] = useState<Priority>(wo.priority);
  const [due, setDue] = useState(toLocalInput(wo.dueBy));
  const [technician, setTechnician] = useState(wo.technician ?? '');
  const [parts, setParts] = useState(formatParts(wo.parts));
  const [whileRunning, setWhileRunning] = useState(wo.whileRunning ?? false);
  // Changed by someone else (or the planner) since the form opened: what they changed is
  // shown, and the form can go on from the order as it is now, keeping what was typed here.
  const stale = wo.updatedAt !== base.updatedAt;
  const theirs: string[] = [];
  if (stale) {
    if (wo.description !== base.description) theirs.push('description');
    if (wo.priority !== base.priority) theirs.push(`priority (${wo.priority})`);
    if (wo.dueBy !== base.dueBy) theirs.push('due');
    if ((wo.technician ?? null) !== (base.technician ?? null)) theirs.push(`technician (${wo.technician ?? 'none'})`);
    if (formatParts(wo.parts) !== formatParts(base.parts)) theirs.push('parts');
    if ((wo.whileRunning ?? false) !== (base.whileRunning ?? false)) theirs.push('while running');
    if (wo.status !== base.status) theirs.push(`status (${wo.status})`);
  }
  const rebase = () => {
    // A field not touched here takes their value; one changed here keeps it.
    if (description === base.description) setDescription(wo.description);
    if (priority === base.priority) setPriority(wo.priority);
    if (due === toLocalInput(base.dueBy)) setDue(toLocalInput(wo.dueBy));
    if (technician === (base.technician ?? '')) setTechnician(wo.technician ?? '');
    if (parts === formatParts(base.parts)) setParts(formatParts(wo.parts));
    if (whileRunning === (base.whileRunning ?? false)) setWhileRunning(wo.whileRunning ?? false);
    setBase(wo);
  };
  return (
    <form
      className="wo-form"
      data-testid="wo-edit-form"
      onSubmit={(e) => {
        e.preventDefault();
        // Only what was changed here: a field sent back as it was shown could undo what
        // someone (or the planner) changed since, and would make the planner's choice a
        // person's.
        const patch: WorkOrderPatch = {};
        if (description !== base.description) patch.description = description;
        if (priority !== base.priority) patch.priority = priority;
        if (due !== toLocalInput(base.dueBy)) patch.dueBy = fromLocalInput(due) ?? null;
        if ((technician.trim() || null) !== (base.technician ?? null)) patch.technician = technician.trim() || null;
        if (parts !== formatParts(base.parts)) patch.parts = parseParts(parts);
        if (whileRunning !== (base.whileRunning ?? false)) patch.whileRunning = whileRunning;
        void onSave(patch, base.updatedAt);
      }}
    >
      <label>
        Description
        <textarea value={description} onChange={(e) => setDescription(e.target.value)} rows={3} required />
      </label>
      <label>
        Priority
        <select value={priority} onChange={(e) => setPriority(e.target.value as Priority)}>
          {PRIORITIES.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>
      <label>
        Due
        <input type="datetime-local" value={due} onChange={(e) => setDue(e.target.value)} />
      </label>
      <label>
        Technician
        <input value={technician} onChange={(e) => setTechnician(e.target.value)} placeholder="username" />
      </label>
      <label>
        Parts <span className="muted small">(e.g. BRG-6204 x2, SEAL-12)</span>
        <input value={parts} onChange={(e) => setParts(e.target.value)} />
      </label>
      <WhileRunning checked={whileRunning} onChange={setWhileRunning} />
      {stale && (
        <p className="muted small" role="status" data-testid="wo-edit-stale">
          Changed meanwhile by someone else{theirs.length > 0 ? `: ${theirs.join(', ')}` : ''}.{' '}
          <button type="button" className="link" onClick={rebase} data-testid="wo-edit-rebase">
            Keep my changes on top of theirs
          </button>
        </p>
      )}
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          Save
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Whether the work is done while the asset runs (the plan then leaves its planned stops to other work). */
function WhileRunning({ checked, onChange }: { checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <label className="inline-check" title="An inspection or measurement done while the machine runs costs no production: the plan does not move it into the asset's planned stops">
      <input type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} data-testid="wo-while-running-input" />
      Done while the asset runs
    </label>
  );
}

function CompleteForm({
  busy,
  onComplete,
  onCancel,
}: {
  busy: boolean;
  onComplete: (outcome: Outcome | null, note: string, failedAt?: string) => void;
  onCancel: () => void;
}) {
  const [outcome, setOutcome] = useState<Outcome | ''>('REPAIR');
  const [note, setNote] = useState('');
  const [failedAt, setFailedAt] = useState('');
  return (
    <form
      className="wo-form"
      data-testid="wo-complete-form"
      onSubmit={(e) => {
        e.preventDefault();
        onComplete(outcome || null, note, outcome === 'FAILURE' ? fromLocalInput(failedAt) : undefined);
      }}
    >
      <label>
        Outcome
        <select value={outcome} onChange={(e) => setOutcome(e.target.value as Outcome | '')} data-testid="wo-outcome">
          {OUTCOMES.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
          <option value="">(nothing to record)</option>
        </select>
      </label>
      {outcome === 'FAILURE' && (
        <label>
          Failed at (optional)
          <input type="datetime-local" value={failedAt} onChange={(e) => setFailedAt(e.target.value)} data-testid="wo-failed-at" />
          <span className="muted small" data-testid="wo-failure-hint">
            Back in service now: the KPIs count the downtime from the failure time given (none without it).
          </span>
        </label>
      )}
      <label>
        Note
        <textarea value={note} onChange={(e) => setNote(e.target.value)} rows={2} data-testid="wo-note" />
      </label>
      <div className="row">
        <button type="submit" className="primary" disabled={busy} data-testid="wo-complete-submit">
          Complete
        </button>
        <button type="button" onClick={onCancel}>
          Back
        </button>
      </div>
    </form>
  );
}

function CreateForm({
  assets,
  defaultAsset,
  onCreate,
}: {
  assets: Asset[];
  defaultAsset: string;
  onCreate: (wo: NewWorkOrder) => Promise<void>;
}) {
  const [assetId, setAssetId] = useState(defaultAsset);
  const [description, setDescription] = useState('');
  const [priority, setPriority] = useState<Priority>('NORMAL');
  const [due, setDue] = useState('');
  const [technician, setTechnician] = useState('');
  const [parts, setParts] = useState('');
  const [whileRunning, setWhileRunning] = useState(false);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="card wo-form create"
      data-testid="wo-create-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        const wo: NewWorkOrder = { assetId, description, priority };
        const d = fromLocalInput(due);
        if (d) wo.dueBy = d;
        if (technician.trim()) wo.technician = technician.trim();
        const p = parseParts(parts);
        if (p.length) wo.parts = p;
        if (whileRunning) wo.whileRunning = true;
        await onCreate(wo);
        setBusy(false);
      }}
    >
      <h3>New work order</h3>
      <div className="grid2">
        <label>
          Asset
          <select value={assetId} onChange={(e) => setAssetId(e.target.value)} required data-testid="wo-create-asset">
            <option value="">Choose…</option>
            {assets.map((a) => (
              <option key={a.id} value={a.id}>
                {a.code} — {a.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Priority
          <select value={priority} onChange={(e) => setPriority(e.target.value as Priority)}>
            {PRIORITIES.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </label>
        <label>
          Due
          <input type="datetime-local" value={due} onChange={(e) => setDue(e.target.value)} />
        </label>
        <label>
          Technician
          <input value={technician} onChange={(e) => setTechnician(e.target.value)} placeholder="username" />
        </label>
      </div>
      <label>
        Description
        <textarea value={description} onChange={(e) => setDescription(e.target.value)} rows={3} required data-testid="wo-create-description" />
      </label>
      <label>
        Parts <span className="muted small">(e.g. BRG-6204 x2, SEAL-12)</span>
        <input value={parts} onChange={(e) => setParts(e.target.value)} />
      </label>
      <WhileRunning checked={whileRunning} onChange={setWhileRunning} />
      <button type="submit" className="primary" disabled={busy || !assetId} data-testid="wo-create-submit">
        Create
      </button>
    </form>
  );
}

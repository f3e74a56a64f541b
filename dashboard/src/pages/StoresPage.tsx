import { useState } from 'react';
import { ApiError } from '../api/client';
import type { PartDefinition, StockLevel, StockMovement } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { formatDateTime, fromLocalInput, toLocalInput } from '../logic/format';
import { can } from '../logic/roles';
import { useResource, useServices, useSession } from '../services';

/**
 * The stores: each spare part's count on the shelf, what the active work orders reserve of it,
 * what is on order, and whether to reorder; deliveries and counts recorded by technicians,
 * parts defined by managers.
 */
export function StoresPage() {
  const { api } = useServices();
  const role = useSession()?.user.role;
  const manager = can(role, 'manageStores');
  const recorder = can(role, 'recordStock');
  const parts = useResource<StockLevel[]>(() => api.spareParts(), [api]);
  const [onlyReorder, setOnlyReorder] = useState(false);
  const [open, setOpen] = useState<{ part: string; mode: 'RECEIVED' | 'COUNTED' | 'history' } | null>(null);
  const [editing, setEditing] = useState<StockLevel | 'new' | null>(null);
  const [error, setError] = useState<ApiError | null>(null);

  const list = (parts.data ?? []).filter((p) => !onlyReorder || p.reorder);
  const toReorder = (parts.data ?? []).filter((p) => p.reorder).length;
  const replace = (level: StockLevel) =>
    parts.setData((old) => {
      const rest = (old ?? []).filter((p) => p.partNumber !== level.partNumber);
      return [...rest, level].sort((a, b) => (a.partNumber < b.partNumber ? -1 : a.partNumber > b.partNumber ? 1 : 0));
    });

  async function remove(partNumber: string) {
    setError(null);
    try {
      await api.removeSparePart(partNumber);
      parts.setData((old) => (old ?? []).filter((p) => p.partNumber !== partNumber));
    } catch (e) {
      setError(e as ApiError);
    }
  }

  return (
    <div className="page stores">
      <div className="page-head">
        <h2>Stores</h2>
        <div className="filters">
          <label>
            <input type="checkbox" checked={onlyReorder} onChange={(e) => setOnlyReorder(e.target.checked)} data-testid="stores-reorder-only" /> Only parts
            to reorder ({toReorder})
          </label>
          <button type="button" onClick={() => void parts.reload()}>
            Refresh
          </button>
          {manager && (
            <button type="button" className="primary" onClick={() => setEditing(editing === 'new' ? null : 'new')} data-testid="stores-new">
              {editing === 'new' ? 'Close' : 'New part'}
            </button>
          )}
        </div>
      </div>
      <ErrorBox error={parts.error ?? error} onDismiss={error ? () => setError(null) : undefined} />
      {editing && (
        <PartForm
          key={editing === 'new' ? 'new' : editing.partNumber}
          part={editing === 'new' ? null : editing}
          onSaved={(level) => {
            replace(level);
            setEditing(null);
          }}
          onCancel={() => setEditing(null)}
        />
      )}
      {parts.loading && !parts.data && <p className="muted">Loading…</p>}
      {parts.data && parts.data.length === 0 && (
        <p className="muted" data-testid="stores-empty">
          No spare parts in the stores yet{manager ? ': add the parts work orders use (New part).' : '.'} Work orders may list parts the stores
          do not keep; those are not counted.
        </p>
      )}
      {list.length > 0 && (
        <table className="table" data-testid="stores-table">
          <thead>
            <tr>
              <th>Part</th>
              <th>Location</th>
              <th title="On the shelf">On hand</th>
              <th title="Listed by open, scheduled and in-progress work orders">Reserved</th>
              <th title="On hand and not reserved">Free</th>
              <th>On order</th>
              <th>Reorder point</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((p) => (
              <PartRows
                key={p.partNumber}
                part={p}
                open={open?.part === p.partNumber ? open.mode : null}
                recorder={recorder}
                manager={manager}
                onOpen={(mode) => setOpen(mode && { part: p.partNumber, mode })}
                onRecorded={replace}
                onEdit={() => setEditing(p)}
                onRemove={() => void remove(p.partNumber)}
              />
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function PartRows({
  part: p,
  open,
  recorder,
  manager,
  onOpen,
  onRecorded,
  onEdit,
  onRemove,
}: {
  part: StockLevel;
  open: 'RECEIVED' | 'COUNTED' | 'history' | null;
  recorder: boolean;
  manager: boolean;
  onOpen: (mode: 'RECEIVED' | 'COUNTED' | 'history' | null) => void;
  onRecorded: (level: StockLevel) => void;
  onEdit: () => void;
  onRemove: () => void;
}) {
  const toggle = (mode: 'RECEIVED' | 'COUNTED' | 'history') => onOpen(open === mode ? null : mode);
  return (
    <>
      <tr className={p.free < 0 ? 'late' : ''} data-testid="stores-row" data-part={p.partNumber}>
        <td>
          <strong>{p.partNumber}</strong> <span className="muted small">{p.description}</span>
        </td>
        <td>{p.location || '—'}</td>
        <td data-testid="stores-on-hand">{p.onHand}</td>
        <td>{p.reserved}</td>
        <td data-testid="stores-free" className={p.free < 0 ? 'error-text' : ''}>
          {p.free}
          {p.free < 0 && ' (short)'}
        </td>
        <td>
          {p.onOrder > 0 ? p.onOrder : '—'}
          {p.onOrder > 0 && p.expectedAt && <span className="muted small"> due {formatDateTime(p.expectedAt)}</span>}
        </td>
        <td>
          {p.reorderPoint > 0 ? p.reorderPoint : '—'}
          {p.reorder && (
            <span className="badge prio-high" data-testid="stores-reorder">
              {' '}
              reorder
            </span>
          )}
        </td>
        <td className="actions">
          {recorder && (
            <>
              <button type="button" onClick={() => toggle('RECEIVED')} data-testid="stores-receive">
                Receive
              </button>{' '}
              <button type="button" onClick={() => toggle('COUNTED')} data-testid="stores-count">
                Count
              </button>{' '}
            </>
          )}
          <button type="button" className="link" onClick={() => toggle('history')} data-testid="stores-history">
            History
          </button>
          {manager && (
            <>
              {' '}
              <button type="button" className="link" onClick={onEdit} data-testid="stores-edit">
                Edit
              </button>{' '}
              <button type="button" className="link danger" onClick={onRemove} data-testid="stores-remove">
                Remove
              </button>
            </>
          )}
        </td>
      </tr>
      {(open === 'RECEIVED' || open === 'COUNTED') && (
        <tr>
          <td colSpan={8}>
            <MovementForm
              part={p}
              kind={open}
              onDone={(level) => {
                onRecorded(level);
                onOpen(null);
              }}
              onCancel={() => onOpen(null)}
            />
          </td>
        </tr>
      )}
      {open === 'history' && (
        <tr>
          <td colSpan={8}>
            <History partNumber={p.partNumber} />
          </td>
        </tr>
      )}
    </>
  );
}

function MovementForm({
  part,
  kind,
  onDone,
  onCancel,
}: {
  part: StockLevel;
  kind: 'RECEIVED' | 'COUNTED';
  onDone: (level: StockLevel) => void;
  onCancel: () => void;
}) {
  const { api } = useServices();
  const [quantity, setQuantity] = useState(kind === 'COUNTED' ? String(part.onHand) : part.onOrder > 0 ? String(part.onOrder) : '');
  const [note, setNote] = useState('');
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <form
      className="filters"
      data-testid="stores-movement-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        setBusy(true);
        try {
          const recorded = await api.recordStock(part.partNumber, kind, Number(quantity), note);
          onDone(recorded.part);
        } catch (err) {
          setError(err as ApiError);
        } finally {
          setBusy(false);
        }
      }}
    >
      <label>
        {kind === 'RECEIVED' ? 'Received' : 'Counted on the shelf'}{' '}
        <input
          type="number"
          min={kind === 'RECEIVED' ? 1 : 0}
          max={1000000}
          required
          value={quantity}
          onChange={(e) => setQuantity(e.target.value)}
          data-testid="stores-quantity"
        />
      </label>
      <label>
        Note{' '}
        <input
          value={note}
          placeholder={kind === 'RECEIVED' ? 'delivery note' : 'why it differs'}
          onChange={(e) => setNote(e.target.value)}
          data-testid="stores-note"
        />
      </label>
      <button type="submit" className="primary" disabled={busy} data-testid="stores-record">
        Record
      </button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
      <ErrorBox error={error} />
    </form>
  );
}

const KIND_LABEL: Record<StockMovement['kind'], string> = {
  RECEIVED: 'received',
  COUNTED: 'counted',
  CONSUMED: 'taken for a work order',
};

function History({ partNumber }: { partNumber: string }) {
  const { api } = useServices();
  const moves = useResource<StockMovement[]>(() => api.stockMovements(partNumber), [api, partNumber]);
  if (moves.error) return <ErrorBox error={moves.error} />;
  if (!moves.data) return <p className="muted small">Loading…</p>;
  if (moves.data.length === 0) return <p className="muted small">No movements recorded.</p>;
  return (
    <table className="table compact" data-testid="stores-movements">
      <thead>
        <tr>
          <th>When</th>
          <th>What</th>
          <th>Change</th>
          <th>On hand after</th>
          <th>By</th>
          <th>Note</th>
        </tr>
      </thead>
      <tbody>
        {moves.data.map((m, i) => (
          <tr key={i} data-testid="stores-movement">
            <td>{formatDateTime(m.at)}</td>
            <td>
              {KIND_LABEL[m.kind]}
              {m.workOrderId && <span className="muted small"> ({m.workOrderId.slice(0, 8)})</span>}
            </td>
            <td>{m.delta > 0 ? `+${m.delta}` : m.delta}</td>
            <td>{m.onHand}</td>
            <td>{m.by}</td>
            <td>{m.note}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function PartForm({ part, onSaved, onCancel }: { part: StockLevel | null; onSaved: (level: StockLevel) => void; onCancel: () => void }) {
  const { api } = useServices();
  const [number, setNumber] = useState(part?.partNumber ?? '');
  const [description, setDescription] = useState(part?.description ?? '');
  const [location, setLocation] = useState(part?.location ?? '');
  const [reorderPoint, setReorderPoint] = useState(String(part?.reorderPoint ?? 0));
  const [onOrder, setOnOrder] = useState(String(part?.onOrder ?? 0));
  const [expected, setExpected] = useState(toLocalInput(part?.expectedAt ?? null));
  const [onHand, setOnHand] = useState(part ? '' : '0');
  const [error, setError] = useState<ApiError | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  return (
    <form
      className="wo-form"
      data-testid="stores-part-form"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(null);
        setFormError(null);
        if (!number.trim() || /[\s,]/.test(number.trim())) {
          setFormError('A part number is one word (no spaces or commas), as work orders list it.');
          return;
        }
        // A new part: everything; a known one: only what was changed here (a delivery
        // recorded meanwhile is not put back on order).
        const definition: PartDefinition = {};
        if (!part || description !== part.description) definition.description = description;
        if (!part || location !== part.location) definition.location = location;
        if (!part || Number(reorderPoint) !== part.reorderPoint) definition.reorderPoint = Number(reorderPoint) || 0;
        if (!part || Number(onOrder) !== part.onOrder) definition.onOrder = Number(onOrder) || 0;
        if (!part || expected !== toLocalInput(part.expectedAt ?? null)) definition.expectedAt = fromLocalInput(expected) ?? null;
        if (onHand.trim() !== '') definition.onHand = Number(onHand);
        try {
          // A new part never replaces one of the same number (412: it is in the list).
          const saved = await api.saveSparePart(number.trim(), definition, part === null);
          onSaved(saved);
        } catch (err) {
          setError(err as ApiError);
        }
      }}
    >
      <label>
        Part number <input value={number} disabled={part !== null} onChange={(e) => setNumber(e.target.value)} data-testid="stores-part-number" />
      </label>
      <label>
        Description <input value={description} onChange={(e) => setDescription(e.target.value)} data-testid="stores-description" />
      </label>
      <label>
        Location <input value={location} placeholder="shelf, bin" onChange={(e) => setLocation(e.target.value)} />
      </label>
      <label title="Reorder when free plus on order falls below this (0: never)">
        Reorder point <input type="number" min={0} value={reorderPoint} onChange={(e) => setReorderPoint(e.target.value)} data-testid="stores-reorder-point" />
      </label>
      <label>
        On order <input type="number" min={0} value={onOrder} onChange={(e) => setOnOrder(e.target.value)} data-testid="stores-on-order" />
      </label>
      <label>
        Expected <input type="datetime-local" value={expected} onChange={(e) => setExpected(e.target.value)} data-testid="stores-expected" />
      </label>
      <label title={part ? 'Leave empty to keep the count; a number is recorded as a count' : 'How many are on the shelf now'}>
        On hand <input type="number" min={0} value={onHand} placeholder={part ? String(part.onHand) : ''} onChange={(e) => setOnHand(e.target.value)} data-testid="stores-part-on-hand" />
      </label>
      <div className="row">
        <button type="submit" className="primary" data-testid="stores-save">
          Save
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      {formError && <span className="error-text">{formError}</span>}
      <ErrorBox error={error} />
    </form>
  );
}

import { useEffect, useState } from 'react';
import type { ApiError } from '../api/client';
import type { ProductionCount } from '../api/types';
import { formatDateTime, formatPercent, fromLocalInput, toIso, toLocalInput } from '../logic/format';
import { can } from '../logic/roles';
import { useResource, useServices, useSession } from '../services';
import { ErrorBox } from './ErrorBox';

const WEEK_MS = 7 * 86400e3;

/** Counts shown before "show all". */
const SHOWN = 12;

/** Good ÷ all units of one count; none when it made nothing. */
function quality(c: { good: number; rejected: number }): number | null {
  const all = c.good + c.rejected;
  return all > 0 ? c.good / all : null;
}

/** The gateway's bounds of an ideal cycle time, in seconds a unit. */
const MIN_CYCLE = 0.001;
const MAX_CYCLE = 86400;

/**
 * An asset's production counts of the last 7 days, newest first (OEE's quality term, and its
 * performance term where a count states the ideal cycle time), and a form for a shift lead to
 * record a period's good and rejected units at an ideal cycle time (that of the newest count
 * until changed; the form then moves on to the next period); a manager removes a wrong one.
 */
export function Production({ assetId }: { assetId: string }) {
  const { api } = useServices();
  const role = useSession()?.user.role;
  const [stamp, setStamp] = useState(() => Date.now());
  const counts = useResource<ProductionCount[]>(
    () => api.production(assetId, { from: toIso(stamp - WEEK_MS), to: toIso(stamp), limit: 200 }),
    [api, assetId, stamp],
  );
  const [form, setForm] = useState(() => ({
    from: toLocalInput(Date.now() - 8 * 3600e3),
    to: toLocalInput(Date.now()),
    good: '',
    rejected: '0',
    cycle: '',
  }));
  // The ideal cycle time of the newest count, until the shift lead types one (a product run
  // goes on at its cycle time).
  const [cycleTyped, setCycleTyped] = useState(false);
  const newestCycle = counts.data?.[0]?.idealCycleSeconds;
  useEffect(() => {
    if (!cycleTyped) setForm((f) => ({ ...f, cycle: newestCycle == null ? '' : String(newestCycle) }));
  }, [cycleTyped, newestCycle]);
  const [error, setError] = useState<ApiError | string | null>(null);
  const [busy, setBusy] = useState(false);
  const [all, setAll] = useState(false);

  async function record(e: React.FormEvent) {
    e.preventDefault();
    setError(null);
    const startsAt = fromLocalInput(form.from);
    const endsAt = fromLocalInput(form.to);
    const good = Number(form.good);
    const rejected = Number(form.rejected);
    if (!startsAt || !endsAt || Date.parse(startsAt) >= Date.parse(endsAt)) {
      setError('Choose a start before the end.');
      return;
    }
    if (form.good === '' || !Number.isInteger(good) || good < 0 || !Number.isInteger(rejected) || rejected < 0) {
      setError('Units are whole numbers, 0 or more.');
      return;
    }
    const idealCycleSeconds = form.cycle.trim() === '' ? null : Number(form.cycle);
    if (idealCycleSeconds !== null && !(idealCycleSeconds >= MIN_CYCLE && idealCycleSeconds <= MAX_CYCLE)) {
      setError(`The ideal cycle time is ${MIN_CYCLE} to ${MAX_CYCLE} seconds a unit, or left empty.`);
      return;
    }
    setBusy(true);
    try {
      await api.recordProduction(assetId, [{ startsAt, endsAt, good, rejected, idealCycleSeconds }]);
      // The next period of the same length follows: sending the form again as it was would
      // replace the count just recorded.
      const end = Date.parse(endsAt);
      const length = end - Date.parse(startsAt);
      // (The cycle time as it is now: typed while the count was on its way, it stays.)
      setForm((f) => ({ from: toLocalInput(end), to: toLocalInput(end + length), good: '', rejected: '0', cycle: f.cycle }));
      setStamp(Date.now());
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }

  async function remove(c: ProductionCount) {
    setError(null);
    try {
      const start = Date.parse(c.startsAt);
      await api.removeProduction(assetId, toIso(start), toIso(start + 1));
      setStamp(Date.now());
    } catch (err) {
      setError(err as ApiError);
    }
  }

  const listed = counts.data ?? [];
  const rows = all ? listed : listed.slice(0, SHOWN);
  const week = listed.reduce((t, c) => ({ good: t.good + c.good, rejected: t.rejected + c.rejected }), { good: 0, rejected: 0 });
  return (
    <section className="card" data-testid="production">
      <h3>Production (last 7 days)</h3>
      <ErrorBox error={counts.error ?? error} onDismiss={error ? () => setError(null) : undefined} />
      {counts.data && listed.length === 0 && (
        <p className="muted small">No counts recorded: the KPIs take quality as 1 for this asset, and performance from a speed sensor (else 1).</p>
      )}
      {listed.length > 0 && (
        <p data-testid="production-summary">
          {week.good} good, {week.rejected} rejected in {listed.length} {listed.length === 1 ? 'count' : 'counts'}: quality{' '}
          <strong>{formatPercent(quality(week))}</strong>
        </p>
      )}
      {rows.length > 0 && (
        <table className="table compact numeric">
          <thead>
            <tr>
              <th>From</th>
              <th>To</th>
              <th>Good</th>
              <th>Rejected</th>
              <th>Quality</th>
              <th title="Ideal cycle time: seconds a unit takes at the asset's ideal rate">Ideal s/unit</th>
              <th>By</th>
              {can(role, 'manageAssets') && <th />}
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.startsAt} data-testid="production-row">
                <td>{formatDateTime(c.startsAt)}</td>
                <td>{formatDateTime(c.endsAt)}</td>
                <td className="num">{c.good}</td>
                <td className="num">{c.rejected}</td>
                <td className="num">{formatPercent(quality(c))}</td>
                <td className="num">{c.idealCycleSeconds == null ? '—' : `${Number(c.idealCycleSeconds.toFixed(3))} s`}</td>
                <td>{c.recordedBy}</td>
                {can(role, 'manageAssets') && (
                  <td>
                    <button type="button" className="link" onClick={() => void remove(c)} data-testid="production-remove">
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {listed.length > SHOWN && (
        <button type="button" className="link" onClick={() => setAll(!all)} data-testid="production-all">
          {all ? `Show the newest ${SHOWN}` : `Show all ${listed.length}`}
        </button>
      )}
      {can(role, 'recordProduction') && (
        <form className="filters" onSubmit={(e) => void record(e)} data-testid="production-form">
          <label>
            From <input type="datetime-local" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} data-testid="production-from" />
          </label>
          <label>
            To <input type="datetime-local" value={form.to} onChange={(e) => setForm({ ...form, to: e.target.value })} data-testid="production-to" />
          </label>
          <label>
            Good <input type="number" min="0" step="1" value={form.good} onChange={(e) => setForm({ ...form, good: e.target.value })} data-testid="production-good" />
          </label>
          <label>
            Rejected <input type="number" min="0" step="1" value={form.rejected} onChange={(e) => setForm({ ...form, rejected: e.target.value })} data-testid="production-rejected" />
          </label>
          <label title="Ideal cycle time: the seconds one unit takes at the asset's ideal rate for this product (a machine making several units a cycle: its cycle ÷ those units). Taken from the newest count until changed; gives OEE its performance. Leave empty when not known.">
            Ideal s/unit{' '}
            <input
              type="number"
              step="any"
              value={form.cycle}
              onChange={(e) => {
                setCycleTyped(true);
                setForm({ ...form, cycle: e.target.value });
              }}
              data-testid="production-cycle"
            />
          </label>
          <button type="submit" disabled={busy} data-testid="production-record">
            Record
          </button>
        </form>
      )}
    </section>
  );
}

import { useRef, useState } from 'react';
import { ApiError } from '../api/client';
import type { CrewLoad, MaintenancePlan, PlannedWorkOrder, Technician, TimeOff } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { Stretches } from '../components/Stretches';
import { formatDateTime, formatHours, formatNumber, formatPercent } from '../logic/format';
import { formatOffset, formatShifts, parseShifts, utilisation } from '../logic/plan';
import { can } from '../logic/roles';
import { assetHref } from '../logic/route';
import { useResource, useServices, useSession } from '../services';

const HORIZONS: { hours: number; label: string }[] = [
  { hours: 24, label: 'Next 24 h' },
  { hours: 72, label: 'Next 3 days' },
  { hours: 168, label: 'Next 7 days' },
  { hours: 336, label: 'Next 14 days' },
];

/** The maintenance plan (who does which active work order, when) and the crew behind it. */
export function PlanPage() {
  const { api } = useServices();
  const role = useSession()?.user.role;
  const manager = can(role, 'managePlan');
  const [hours, setHours] = useState(168);
  const [applyError, setApplyError] = useState<ApiError | null>(null);
  const [applied, setApplied] = useState<{ applied: number; skipped: number } | null>(null);
  const [busy, setBusy] = useState(false);
  const plan = useResource<MaintenancePlan>(() => api.schedule(hours), [api, hours]);
  const hoursRef = useRef(hours);
  hoursRef.current = hours;
  const crew = useResource<Technician[]>(() => api.technicians(), [api]);
  const timeOff = useResource<TimeOff[]>(() => api.timeOff(), [api]);

  async function apply() {
    setApplyError(null);
    setBusy(true);
    try {
      const asked = hours;
      const p = await api.applySchedule(asked);
      // Shown only while the horizon is still the one applied (a reload for another one may
      // be on its way, and would otherwise take this plan for its own).
      plan.setData((prev) => (hoursRef.current === asked ? p : prev));
      setApplied({ applied: p.applied, skipped: p.skipped });
    } catch (e) {
      setApplyError(e as ApiError);
    } finally {
      setBusy(false);
    }
  }

  const p = plan.data;
  return (
    <div className="page plan">
      <div className="page-head">
        <h2>Maintenance plan</h2>
        <div className="filters">
          <select value={hours} onChange={(e) => setHours(Number(e.target.value))} data-testid="plan-horizon" aria-label="Horizon">
            {HORIZONS.map((h) => (
              <option key={h.hours} value={h.hours}>
                {h.label}
              </option>
            ))}
          </select>
          <button type="button" onClick={() => void plan.reload()} data-testid="plan-refresh">
            Plan again
          </button>
          {manager && (
            <button type="button" className="primary" disabled={busy || !p || p.assignments.length === 0} onClick={() => void apply()} data-testid="plan-apply" title="Assign the technicians, record the planned slots and schedule the open work orders">
              Apply plan
            </button>
          )}
        </div>
      </div>
      <ErrorBox error={plan.error ?? applyError} />
      {applied !== null && (
        <p className="muted small" data-testid="plan-applied">
          Plan applied: {applied.applied} work order{applied.applied === 1 ? '' : 's'} updated
          {applied.skipped > 0 ? `; ${applied.skipped} changed by someone meanwhile and left as they are (plan again)` : ''}.
        </p>
      )}
      {p && <PlanView plan={p} />}
      <CrewSection crew={crew.data} error={crew.error} manager={manager} onChanged={() => { void crew.reload(); void plan.reload(); }} />
      <TimeOffSection
        timeOff={timeOff.data}
        crew={crew.data ?? []}
        error={timeOff.error}
        manager={manager}
        onChanged={() => { void timeOff.reload(); void plan.reload(); }}
      />
    </div>
  );
}

function PlanView({ plan }: { plan: MaintenancePlan }) {
  const byTechnician = new Map<string, PlannedWorkOrder[]>();
  for (const a of plan.assignments) {
    const list = byTechnician.get(a.technician) ?? [];
    list.push(a);
    byTechnician.set(a.technician, list);
  }
  const late = plan.assignments.filter((a) => a.lateHours > 0).length;
  return (
    <>
      <p className="muted small" data-testid="plan-summary">
        {formatDateTime(plan.from)} – {formatDateTime(plan.to)}: {plan.assignments.length} work order{plan.assignments.length === 1 ? '' : 's'} planned
        {late > 0 ? `, ${late} starting after the due time (weighted ${formatNumber(plan.weightedLateHours, 1)} h late)` : ', all on time'}
        {plan.unassigned.length > 0 ? `, ${plan.unassigned.length} not placed` : ''}.
        {plan.assignments.length > 0 && (
          <span data-testid="plan-downtime" title="Work within an asset's planned stops (the production calendar on the KPI page) costs no production; the plan moves work there when it can without being late">
            {' '}
            The planned work stops machines {formatHours(plan.downtimeHours)} outside their planned stops
            {inStops(plan) > 0 ? `; ${formatHours(inStops(plan))} of work falls within them` : ''}.
          </span>
        )}
        {plan.truncated && ' Only the work orders due soonest were planned.'}
        {plan.timedOut && ' The search stopped at its time limit: the plan may not be the best.'}
      </p>
      {plan.technicians.length === 0 && (
        <p className="muted" data-testid="plan-no-crew">
          No crew yet: add the technicians who take work orders below (a manager can).
        </p>
      )}
      {plan.technicians.map((t) => (
        <TechnicianPlan key={t.name} load={t} items={byTechnician.get(t.name) ?? []} />
      ))}
      {plan.unassigned.length > 0 && (
        <section data-testid="plan-unassigned">
          <h3>Not placed</h3>
          <table className="table">
            <thead>
              <tr>
                <th>Work order</th>
                <th>Asset</th>
                <th>Priority</th>
                <th>Due</th>
                <th>Takes</th>
                <th>Why</th>
              </tr>
            </thead>
            <tbody>
              {plan.unassigned.map((u) => (
                <tr key={u.workOrderId} data-testid="plan-unassigned-row">
                  <td>{u.code}</td>
                  <td>
                    <a href={assetHref(u.assetId)}>{u.asset || u.assetId.slice(0, 8)}</a>
                  </td>
                  <td>{u.priority}</td>
                  <td>{formatDateTime(u.dueBy)}</td>
                  <td>
                    {formatHours(u.hours)}
                    {u.skill ? ` (${u.skill})` : ''}
                  </td>
                  <td>{u.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      )}
    </>
  );
}

/** Hours of the planned work within its assets' planned stops. */
function inStops(plan: MaintenancePlan): number {
  return plan.assignments.reduce((sum, a) => sum + a.plannedStopHours, 0);
}

function TechnicianPlan({ load, items }: { load: CrewLoad; items: PlannedWorkOrder[] }) {
  const share = utilisation(load.availableHours, load.busyHours, load.plannedHours);
  return (
    <section className="card" data-testid="plan-technician" data-name={load.name}>
      <h3>
        {load.name}{' '}
        <span className="muted small">
          {load.skills.length ? load.skills.join(', ') : 'no skills listed'}
          {' · '}
          {load.active ? `${formatHours(load.plannedHours)} planned of ${formatHours(Math.max(0, load.availableHours - load.busyHours))} free (${formatPercent(share, 0)})` : 'away'}
          {load.active && (load.timeOffHours ?? 0) > 0 && <span data-testid="plan-time-off">{` · ${formatHours(load.timeOffHours)} of shifts off`}</span>}
        </span>
      </h3>
      {items.length === 0 ? (
        <p className="muted small">Nothing planned.</p>
      ) : (
        <table className="table compact">
          <thead>
            <tr>
              <th>From</th>
              <th>To</th>
              <th>Work order</th>
              <th>Asset</th>
              <th>Priority</th>
              <th>Due</th>
            </tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.workOrderId} className={a.lateHours > 0 ? 'late' : ''} data-testid="plan-row">
                <td>{formatDateTime(a.start)}</td>
                <td>{formatDateTime(a.end)}</td>
                <td>
                  {a.code} <span className="muted small">{a.status}</span>
                  {a.partsExpectedAt && (
                    <span className="muted small" data-testid="plan-parts-wait">
                      {' '}
                      · waits for parts due {formatDateTime(a.partsExpectedAt)}
                    </span>
                  )}
                  {a.partsShort && (
                    <span className="error-text small" data-testid="plan-parts-short">
                      {' '}
                      · {a.partsShort}
                    </span>
                  )}
                  {a.offShift && (
                    <span className="error-text small" data-testid="plan-off-shift">
                      {' '}
                      · {a.offShift}
                    </span>
                  )}
                  {a.whileRunning && (
                    <span className="muted small" data-testid="plan-while-running">
                      {' '}
                      · while the asset runs
                    </span>
                  )}
                  {a.plannedStopHours > 0 && (
                    <span className="muted small" data-testid="plan-in-stop">
                      {' '}
                      · {formatHours(a.plannedStopHours)} in a planned stop of the asset
                    </span>
                  )}
                </td>
                <td>
                  <a href={assetHref(a.assetId)}>{a.asset || a.assetId.slice(0, 8)}</a>
                </td>
                <td>{a.priority}</td>
                <td>
                  {formatDateTime(a.dueBy)}
                  {a.lateHours > 0 && (
                    <span className="error-text" data-testid="plan-late">
                      {' '}
                      ({formatHours(a.lateHours)} late)
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

interface Draft {
  name: string;
  skills: string;
  shifts: string;
  zone: string;
  offset: string;
  active: boolean;
}

/** The browser's IANA time zone, if it tells. */
function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  } catch {
    return '';
  }
}

const NEW_DRAFT = (): Draft => ({
  name: '',
  skills: '',
  shifts: 'MON-FRI 06:00-14:00',
  zone: browserZone(),
  offset: String(-new Date().getTimezoneOffset()),
  active: true,
});

function CrewSection({ crew, error, manager, onChanged }: { crew: Technician[] | undefined; error: ApiError | null; manager: boolean; onChanged: () => void }) {
  const { api } = useServices();
  const [draft, setDraft] = useState<Draft>(NEW_DRAFT);
  const [formError, setFormError] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<ApiError | null>(null);

  async function save() {
    setFormError(null);
    setSaveError(null);
    let shifts;
    try {
      shifts = parseShifts(draft.shifts);
    } catch (e) {
      setFormError(e instanceof Error ? e.message : String(e));
      return;
    }
    const offset = Number(draft.offset);
    if (!draft.name.trim()) return setFormError('Give the technician\'s username.');
    if (!Number.isInteger(offset) || Math.abs(offset) > 840) return setFormError('The clock offset is whole minutes from −840 to 840.');
    try {
      await api.saveTechnician(draft.name.trim(), {
        skills: draft.skills.split(',').map((s) => s.trim()).filter(Boolean),
        shifts,
        utcOffsetMinutes: offset,
        timeZone: draft.zone.trim() || null,
        active: draft.active,
      });
      setDraft(NEW_DRAFT());
      onChanged();
    } catch (e) {
      setSaveError(e as ApiError);
    }
  }

  async function remove(name: string) {
    setSaveError(null);
    try {
      await api.removeTechnician(name);
      onChanged();
    } catch (e) {
      setSaveError(e as ApiError);
    }
  }

  return (
    <section data-testid="crew">
      <h3>Crew</h3>
      <ErrorBox error={error ?? saveError} />
      {crew && crew.length > 0 && (
        <table className="table" data-testid="crew-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Skills</th>
              <th>Shifts</th>
              <th>Clock</th>
              <th>Active</th>
              {manager && <th />}
            </tr>
          </thead>
          <tbody>
            {crew.map((t) => (
              <tr key={t.name} data-testid="crew-row">
                <td>{t.name}</td>
                <td>{t.skills.join(', ') || '—'}</td>
                <td>{formatShifts(t.shifts) || '—'}</td>
                <td>{t.timeZone || formatOffset(t.utcOffsetMinutes)}</td>
                <td>{t.active ? 'yes' : 'away'}</td>
                {manager && (
                  <td>
                    <button
                      type="button"
                      onClick={() =>
                        setDraft({
                          name: t.name,
                          skills: t.skills.join(', '),
                          shifts: formatShifts(t.shifts),
                          zone: t.timeZone ?? '',
                          offset: String(t.utcOffsetMinutes),
                          active: t.active,
                        })
                      }
                      data-testid="crew-edit"
                    >
                      Edit
                    </button>{' '}
                    <button type="button" onClick={() => void remove(t.name)} data-testid="crew-remove">
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {manager && (
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
          data-testid="crew-form"
        >
          <label>
            Username <input value={draft.name} onChange={(e) => setDraft({ ...draft, name: e.target.value })} data-testid="crew-name" />
          </label>
          <label>
            Skills <input value={draft.skills} placeholder="electrical, mechanical" onChange={(e) => setDraft({ ...draft, skills: e.target.value })} data-testid="crew-skills" />
          </label>
          <label>
            Shifts <input value={draft.shifts} placeholder="MON-FRI 06:00-14:00; SAT 08:00-12:00" onChange={(e) => setDraft({ ...draft, shifts: e.target.value })} data-testid="crew-shifts" />
          </label>
          <label title="The shifts' clock: an IANA time zone such as Europe/Berlin (daylight saving time followed)">
            Time zone <input value={draft.zone} placeholder="Europe/Berlin" onChange={(e) => setDraft({ ...draft, zone: e.target.value })} data-testid="crew-zone" />
          </label>
          <label title="Without a time zone: minutes east of UTC of the shifts' clock">
            or offset (min from UTC) <input type="number" value={draft.offset} onChange={(e) => setDraft({ ...draft, offset: e.target.value })} data-testid="crew-offset" />
          </label>
          <label>
            <input type="checkbox" checked={draft.active} onChange={(e) => setDraft({ ...draft, active: e.target.checked })} data-testid="crew-active" /> Active
          </label>
          <button type="submit" data-testid="crew-save">
            Save
          </button>
          {formError && <span className="error-text" data-testid="crew-form-error">{formError}</span>}
        </form>
      )}
    </section>
  );
}

/** Time off: a crew member's (holiday, training) or the whole crew's (a plant holiday, a
 *  shutdown); the plan places no work in it. Managers record and remove it. */
function TimeOffSection({ timeOff, crew, error, manager, onChanged }: { timeOff: TimeOff[] | undefined; crew: Technician[]; error: ApiError | null; manager: boolean; onChanged: () => void }) {
  const { api } = useServices();
  return (
    <section data-testid="time-off">
      <h3>Time off</h3>
      <ErrorBox error={error} />
      <Stretches
        testid="time-off"
        items={timeOff?.map((o) => ({ ...o, who: o.technician }))}
        whoLabel="Who"
        everyone="Whole crew"
        choices={crew.map((t) => ({ value: t.name, label: t.name }))}
        placeholder="holiday, training, shutdown"
        empty="No time off ahead."
        manager={manager}
        onAdd={async (o) => {
          await api.addTimeOff({ technician: o.who, startsAt: o.startsAt, endsAt: o.endsAt, reason: o.reason });
          onChanged();
        }}
        onRemove={async (id) => {
          await api.removeTimeOff(id);
          onChanged();
        }}
      />
    </section>
  );
}

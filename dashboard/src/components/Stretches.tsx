import { useState } from 'react';
import { ApiError } from '../api/client';
import type { Repeat, WeekDay } from '../api/types';
import { formatDateTime, fromLocalInput } from '../logic/format';
import { ErrorBox } from './ErrorBox';

/** A stretch of time of someone or something (or of everyone): time off, a planned stop. */
export interface Stretch {
  id: string;
  /** Whose: shown as given; null: everyone's (`everyone`). */
  who: string | null;
  startsAt: string;
  endsAt: string;
  reason: string;
  createdBy: string;
  /** The repetition it belongs to, if any (its later ones can go with it). */
  seriesId?: string | null;
}

/** A new stretch as the form gives it: `who` a choice's value, null for everyone. */
export interface NewStretch {
  who: string | null;
  startsAt: string;
  endsAt: string;
  reason: string;
  /** When the form offers it and it was chosen: the days it repeats on, on this browser's clock. */
  repeat?: Repeat;
}

const WEEK: WeekDay[] = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** How a stretch may repeat, and on which days (`week`: the start's day). */
const REPEATS: { value: string; label: string; days?: WeekDay[] }[] = [
  { value: '', label: 'Once' },
  { value: 'day', label: 'Every day', days: ['MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT', 'SUN'] },
  { value: 'weekday', label: 'Mon–Fri', days: ['MON', 'TUE', 'WED', 'THU', 'FRI'] },
  { value: 'week', label: 'Every week' },
];

/**
 * The list of stretches (`items`, by start) and, for a manager, the form that adds one (checked
 * before it is sent) and the buttons that remove them. Test ids start with `testid`
 * (`-table`, `-row`, `-remove`, `-remove-series`, `-remove-series-ask`, `-remove-series-confirm`,
 * `-remove-series-cancel`, `-removed`, `-form`, `-who`, `-from`, `-to`, `-reason`, `-repeat`,
 * `-until`, `-save`, `-form-error`).
 */
export function Stretches({
  testid,
  items,
  whoLabel,
  everyone,
  choices,
  placeholder,
  empty,
  manager,
  repeatable = false,
  onAdd,
  onRemove,
  onRemoveSeries,
}: {
  testid: string;
  items: Stretch[] | undefined;
  whoLabel: string;
  /** What a stretch of everyone is called ("Whole crew"). */
  everyone: string;
  choices: { value: string; label: string }[];
  placeholder: string;
  /** Shown when there are none. */
  empty: string;
  manager: boolean;
  /** Whether the form offers repeating it (until a date). */
  repeatable?: boolean;
  onAdd: (stretch: NewStretch) => Promise<void>;
  onRemove: (id: string) => Promise<void>;
  /**
   * Given: a stretch of a repetition also offers removing it and the later ones (asked again
   * before it is done); resolves to how many went.
   */
  onRemoveSeries?: (stretch: Stretch) => Promise<number>;
}) {
  const [who, setWho] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [reason, setReason] = useState('');
  const [repeat, setRepeat] = useState('');
  const [until, setUntil] = useState('');
  const [formError, setFormError] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<ApiError | null>(null);
  const [saving, setSaving] = useState(false);
  // The stretch whose repetition is about to go (asked once more), and what the last removal did.
  const [confirming, setConfirming] = useState<string | null>(null);
  const [removed, setRemoved] = useState<string | null>(null);
  // A choice made before the choices changed (another line): no longer offered, not sent.
  const chosen = choices.some((c) => c.value === who) ? who : '';

  async function add() {
    setFormError(null);
    setSaveError(null);
    const startsAt = fromLocalInput(from);
    const endsAt = fromLocalInput(to);
    if (!startsAt || !endsAt) return setFormError('Give when it starts and when it ends.');
    if (Date.parse(endsAt) <= Date.parse(startsAt)) return setFormError('It must end after it starts.');
    let repetition: Repeat | undefined;
    const how = REPEATS.find((r) => r.value === repeat);
    if (repeatable && how && how.value) {
      const last = fromLocalInput(until);
      if (!last) return setFormError('Give when the repetition ends.');
      if (Date.parse(last) <= Date.parse(startsAt)) return setFormError('The repetition must end after the first start.');
      repetition = {
        days: how.days ?? [WEEK[new Date(startsAt).getDay()]],
        until: last,
        timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      };
    }
    setSaving(true);
    try {
      await onAdd({ who: chosen || null, startsAt, endsAt, reason: reason.trim(), ...(repetition ? { repeat: repetition } : {}) });
      setFrom('');
      setTo('');
      setReason('');
      setRepeat('');
      setUntil('');
    } catch (e) {
      setSaveError(e as ApiError);
    } finally {
      setSaving(false);
    }
  }

  async function remove(action: () => Promise<void>) {
    setSaveError(null);
    setRemoved(null);
    try {
      await action();
    } catch (e) {
      setSaveError(e as ApiError);
    }
  }

  async function removeSeries(s: Stretch) {
    if (!onRemoveSeries) return;
    setConfirming(null);
    await remove(async () => {
      const n = await onRemoveSeries(s);
      setRemoved(n === 1 ? '1 stop of the repetition removed.' : `${n} stops of the repetition removed.`);
    });
  }

  /** How many of a repetition's stretches from `s` on this list shows (more may follow it). */
  const shownFrom = (s: Stretch) =>
    (items ?? []).filter((o) => o.seriesId === s.seriesId && Date.parse(o.startsAt) >= Date.parse(s.startsAt)).length;

  return (
    <>
      <ErrorBox error={saveError} />
      {removed && (
        <p className="muted small" role="status" data-testid={`${testid}-removed`}>
          {removed}
        </p>
      )}
      {items && items.length === 0 && <p className="muted small">{empty}</p>}
      {items && items.length > 0 && (
        <table className="table" data-testid={`${testid}-table`}>
          <thead>
            <tr>
              <th>{whoLabel}</th>
              <th>From</th>
              <th>To</th>
              <th>Why</th>
              <th>Recorded by</th>
              {manager && <th />}
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id} data-testid={`${testid}-row`}>
                <td>{s.who ?? <strong>{everyone}</strong>}</td>
                <td>{formatDateTime(s.startsAt)}</td>
                <td>{formatDateTime(s.endsAt)}</td>
                <td>{s.reason || '—'}</td>
                <td>{s.createdBy}</td>
                {manager && (
                  <td>
                    <button type="button" onClick={() => void remove(() => onRemove(s.id))} data-testid={`${testid}-remove`}>
                      Remove
                    </button>
                    {s.seriesId && onRemoveSeries && confirming !== s.id && (
                      <button
                        type="button"
                        onClick={() => {
                          setRemoved(null);
                          setConfirming(s.id);
                        }}
                        data-testid={`${testid}-remove-series`}
                        title="This one and the later ones of its repetition"
                      >
                        Remove from here on
                      </button>
                    )}
                    {s.seriesId && onRemoveSeries && confirming === s.id && (
                      <span className="inline-confirm" data-testid={`${testid}-remove-series-ask`}>
                        Remove this one and every later one of its repetition ({shownFrom(s)} in this list, and any after it)?{' '}
                        <button type="button" className="danger" onClick={() => void removeSeries(s)} data-testid={`${testid}-remove-series-confirm`}>
                          Remove them
                        </button>
                        <button type="button" onClick={() => setConfirming(null)} data-testid={`${testid}-remove-series-cancel`}>
                          Keep them
                        </button>
                      </span>
                    )}
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
            void add();
          }}
          data-testid={`${testid}-form`}
        >
          <label>
            {whoLabel}{' '}
            <select value={chosen} onChange={(e) => setWho(e.target.value)} data-testid={`${testid}-who`}>
              <option value="">{everyone}</option>
              {choices.map((c) => (
                <option key={c.value} value={c.value}>
                  {c.label}
                </option>
              ))}
            </select>
          </label>
          <label>
            From <input type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} data-testid={`${testid}-from`} />
          </label>
          <label>
            To <input type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} data-testid={`${testid}-to`} />
          </label>
          <label>
            Why <input value={reason} maxLength={200} placeholder={placeholder} onChange={(e) => setReason(e.target.value)} data-testid={`${testid}-reason`} />
          </label>
          {repeatable && (
            <label>
              Repeat{' '}
              <select value={repeat} onChange={(e) => setRepeat(e.target.value)} data-testid={`${testid}-repeat`}>
                {REPEATS.map((r) => (
                  <option key={r.value} value={r.value}>
                    {r.label}
                  </option>
                ))}
              </select>
            </label>
          )}
          {repeatable && repeat && (
            <label title="No repetition starts at or after it (at most a year after the first)">
              Until <input type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} data-testid={`${testid}-until`} />
            </label>
          )}
          <button type="submit" disabled={saving} data-testid={`${testid}-save`} title="From and to are read on this browser's clock">
            Add
          </button>
          {formError && <span className="error-text" data-testid={`${testid}-form-error`}>{formError}</span>}
        </form>
      )}
    </>
  );
}

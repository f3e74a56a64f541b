import { useEffect, useMemo, useRef, useState } from 'react';
import { ApiError } from '../api/client';
import type { Alert, AlertState } from '../api/types';
import { beep, isMuted, setMuted } from '../components/beep';
import { ErrorBox } from '../components/ErrorBox';
import { filterAlerts, insertByRaise, isAcknowledged, isAlarming, matchesState, prependAlert } from '../logic/alerts';
import { formatDateTime } from '../logic/format';
import { can } from '../logic/roles';
import { assetHref } from '../logic/route';
import { useAssets, useInterval, useLiveChannel, useLiveMessage, useResource, useServices, useSession } from '../services';

const STATES: AlertState[] = ['open', 'acknowledged', 'all'];
/** Alerts read at a time (the newest). */
export const ALERTS_LIMIT = 200;

/**
 * Alerts: live list (new ones on top), beep + flash on CRITICAL and on-call alerts, acknowledge
 * and assign.
 */
export function AlertsPage({ compact = false }: { compact?: boolean }) {
  const { api } = useServices();
  const session = useSession();
  const role = session?.user.role;
  const assets = useAssets();
  const [state, setState] = useState<AlertState>('open');
  // The alerts listed or received live so far, per filter: one that a reload lists for the
  // first time (raised while the connection was down, or skipped by the gateway for a slow
  // client) is marked and alarms as a live one would.
  // Only one raised after the newest of the previous list counts: an older one that comes into
  // the list (another was acknowledged, and the 201st newest open one takes its place) is no
  // news. (Live alerts do not move that mark: those the gateway skipped for a slow client are
  // older than the live ones after them, and the reload must still find them new.)
  const seen = useRef<{ state: AlertState; ids: Set<string>; newest: number } | null>(null);
  const arrivedRef = useRef<(alerts: Alert[]) => void>(() => undefined);
  const res = useResource<Alert[]>(
    () => api.alerts({ state, limit: ALERTS_LIMIT }),
    [api, state],
    (list) => {
      const before = seen.current?.state === state ? seen.current : null;
      if (before) arrivedRef.current(list.filter((a) => !before.ids.has(a.id) && Date.parse(a.createdAt) > before.newest));
      const newest = Math.max(before?.newest ?? -Infinity, ...list.map((a) => Date.parse(a.createdAt)).filter(Number.isFinite));
      seen.current = { state, ids: new Set([...(before?.ids ?? []), ...list.map((a) => a.id)]), newest };
    },
  );
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const [fresh, setFresh] = useState<Set<string>>(new Set());
  const [liveIds, setLiveIds] = useState<Set<string>>(new Set());
  const [flash, setFlash] = useState(false);
  const [muted, setMutedState] = useState(isMuted());
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const known = useRef<Set<string>>(new Set());
  const laterStates = useRef(new Map<string, Alert>());
  known.current = new Set((res.data ?? []).map((a) => a.id));
  const flashTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  useEffect(() => () => {
    if (flashTimer.current) clearTimeout(flashTimer.current);
  }, []);

  const alarm = () => {
    beep();
    setFlash(true);
    if (flashTimer.current) clearTimeout(flashTimer.current);
    flashTimer.current = setTimeout(() => setFlash(false), 4000);
  };
  arrivedRef.current = (arrived) => {
    // A reload answered after the page was left alarms nobody.
    if (arrived.length === 0 || !mounted.current) return;
    setFresh((f) => {
      const next = new Set(f);
      for (const a of arrived) next.add(a.id);
      return next;
    });
    if (arrived.some(isAlarming)) alarm();
  };

  useLiveChannel('alerts');
  useLiveMessage('alert', (msg) => {
    let alert = msg.data;
    const listed = known.current.has(alert.id) || (seen.current?.ids.has(alert.id) ?? false);
    if (alert.changedAt && !listed) {
      // A change (acknowledged, assigned) of an alert not listed here is no news: shown where
      // it belongs if this list has a place for it (its state, not older than the list), never
      // marked or alarmed; and kept, should its raise come after it (the change feed can be
      // quicker than the alerts topic).
      laterStates.current.set(alert.id, alert);
      if (laterStates.current.size > 500) {
        const oldest = laterStates.current.keys().next().value;
        if (oldest !== undefined) laterStates.current.delete(oldest);
      }
      if (matchesState(alert, state)) {
        seen.current?.ids.add(alert.id);
        res.setData((prev) => insertByRaise(prev ?? [], alert, ALERTS_LIMIT));
      }
      return;
    }
    const later = alert.changedAt ? undefined : laterStates.current.get(alert.id);
    if (later) alert = later;
    const isNew = !listed && !later;
    seen.current?.ids.add(alert.id);
    res.setData((prev) => prependAlert(prev ?? [], alert));
    setLiveIds((l) => (l.has(alert.id) ? l : new Set(l).add(alert.id)));
    if (isNew) {
      setFresh((f) => new Set(f).add(alert.id));
      if (isAlarming(alert)) alarm();
    }
  });
  // Reloaded when events may have been missed, and polled (slowly) to catch acknowledgements
  // made elsewhere.
  useLiveMessage('resync', () => void res.reload());
  useInterval(() => void res.reload(), 30_000);

  const shown = useMemo(() => filterAlerts(res.data ?? [], state), [res.data, state]);

  async function acknowledge(a: Alert) {
    setActionError(null);
    try {
      const updated = await api.acknowledgeAlert(a.id);
      res.setData((prev) => prependAlert(prev ?? [], { ...a, ...updated }));
    } catch (e) {
      setActionError(e as ApiError);
    }
  }

  async function assign(a: Alert, assignee: string) {
    setActionError(null);
    try {
      const updated = await api.assignAlert(a.id, assignee);
      res.setData((prev) => prependAlert(prev ?? [], { ...a, ...updated }));
    } catch (e) {
      setActionError(e as ApiError);
    }
  }

  return (
    <div className={`page alerts${flash ? ' flash-critical' : ''}`} data-testid="alerts-page" data-flash={flash ? 'true' : 'false'}>
      <div className="page-head">
        <h2>Alerts</h2>
        <div className="segmented" role="group" aria-label="Alert state">
          {STATES.map((s) => (
            <button
              key={s}
              type="button"
              className={s === state ? 'active' : ''}
              aria-pressed={s === state}
              onClick={() => setState(s)}
              data-testid={`alerts-filter-${s}`}
            >
              {s}
            </button>
          ))}
        </div>
        <button
          type="button"
          onClick={() => {
            setMuted(!muted);
            setMutedState(!muted);
          }}
          aria-pressed={muted}
          title="Sound for CRITICAL alerts"
        >
          {muted ? 'Sound off' : 'Sound on'}
        </button>
      </div>
      <ErrorBox error={actionError ?? res.error} onDismiss={actionError ? () => setActionError(null) : undefined} />
      {res.loading && !res.data && <p className="muted">Loading…</p>}
      {res.data && shown.length === 0 && <p className="muted">No {state === 'all' ? '' : state} alerts.</p>}
      {(res.data?.length ?? 0) >= ALERTS_LIMIT && (
        <p className="muted small" role="status" data-testid="alerts-truncated">
          The newest {ALERTS_LIMIT} are shown; older ones are not.
        </p>
      )}
      <ul className="alert-list" data-testid="alert-list">
        {shown.map((a) => {
          const asset = assets.get(a.assetId);
          const acked = isAcknowledged(a);
          return (
            <li
              key={a.id}
              className={`alert-row sev-${a.severity.toLowerCase()}${fresh.has(a.id) ? ' fresh' : ''}${acked ? ' acked' : ''}`}
              data-testid="alert-row"
              data-alert-id={a.id}
              data-severity={a.severity}
              data-acknowledged={acked ? 'true' : 'false'}
              data-live={liveIds.has(a.id) ? 'true' : 'false'}
            >
              <span className={`badge sev-${a.severity.toLowerCase()}`}>{a.severity}</span>
              {a.notifyOnCall && (
                <span className="badge on-call" title="For the on-call technician (CRITICAL asset)" data-testid="on-call-badge">
                  on call
                </span>
              )}
              <div className="alert-main">
                <div className="alert-msg">{a.message}</div>
                <div className="muted small">
                  {a.kind} ·{' '}
                  <a href={assetHref(a.assetId)} data-testid="alert-asset-link">
                    {asset ? `${asset.code} — ${asset.name}` : a.assetId.slice(0, 8)}
                  </a>{' '}
                  · {formatDateTime(a.createdAt)}
                  {acked && (
                    <>
                      {' '}
                      · acknowledged by {a.acknowledgedBy ?? '?'} {a.acknowledgedAt ? formatDateTime(a.acknowledgedAt) : ''}
                    </>
                  )}
                  {a.assignee && <> · assigned to {a.assignee}</>}
                  {a.workOrderId && (
                    <>
                      {' '}
                      · <a href="#/work-orders">work order</a>
                    </>
                  )}
                </div>
              </div>
              <div className="alert-actions">
                {!acked && can(role, 'acknowledgeAlert') && (
                  <button type="button" className="primary" onClick={() => void acknowledge(a)} data-testid="ack-button">
                    Acknowledge
                  </button>
                )}
                {!compact && can(role, 'assignAlert') && <AssignForm alert={a} onAssign={assign} />}
              </div>
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function AssignForm({ alert, onAssign }: { alert: Alert; onAssign: (a: Alert, who: string) => Promise<void> }) {
  const [who, setWho] = useState(alert.assignee ?? '');
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (who.trim()) void onAssign(alert, who.trim());
      }}
    >
      <input
        placeholder="username"
        value={who}
        onChange={(e) => setWho(e.target.value)}
        aria-label="Assignee"
        data-testid="assign-input"
        size={10}
      />
      <button type="submit" data-testid="assign-button">
        Assign
      </button>
    </form>
  );
}

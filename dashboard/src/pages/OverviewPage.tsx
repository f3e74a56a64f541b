import { useEffect, useMemo, useRef, useState } from 'react';
import { CRITICALITIES, HEALTH_STATUSES, type AssetHealth } from '../api/types';
import { AssetTile } from '../components/AssetTile';
import { ErrorBox } from '../components/ErrorBox';
import { countByStatus, EMPTY_FILTER, filterOverview, sortOverview, uniqueLines, type OverviewFilter } from '../logic/health';
import { useInterval, useLiveChannel, useLiveMessage, useResource, useServices } from '../services';

export const OVERVIEW_POLL_MS = 10_000;

/** Plant overview: one tile per asset coloured by health; live and polled. */
export function OverviewPage({ compact = false }: { compact?: boolean }) {
  const { api } = useServices();
  const res = useResource<AssetHealth[]>(() => api.overview(), [api]);
  const [filter, setFilter] = useState<OverviewFilter>(EMPTY_FILTER);

  // Refresh on live alert / work-order messages (coalesced) and every 10 s.
  useLiveChannel('alerts');
  useLiveChannel('workOrders');
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const soon = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      void res.reload();
    }, 300);
  };
  useEffect(
    () => () => {
      if (pending.current) clearTimeout(pending.current);
    },
    [],
  );
  useLiveMessage('alert', soon);
  useLiveMessage('workOrder', soon);
  useLiveMessage('resync', soon);
  useInterval(() => void res.reload(), OVERVIEW_POLL_MS);

  const all = res.data ?? [];
  const lines = useMemo(() => uniqueLines(all), [all]);
  const shown = useMemo(() => sortOverview(filterOverview(all, filter)), [all, filter]);
  const counts = useMemo(() => countByStatus(all), [all]);

  return (
    <div className="page overview">
      <div className="page-head">
        <h2>Plant overview</h2>
        <div className="counts">
          {HEALTH_STATUSES.map((s) => (
            <span key={s} className={`pill status-${s.toLowerCase()}`} data-testid={`count-${s}`}>
              {s} {counts[s]}
            </span>
          ))}
        </div>
      </div>
      <div className="filters">
        <label>
          Line
          <select value={filter.line} onChange={(e) => setFilter({ ...filter, line: e.target.value })} data-testid="filter-line">
            <option value="">All lines</option>
            {lines.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          Criticality
          <select
            value={filter.criticality}
            onChange={(e) => setFilter({ ...filter, criticality: e.target.value as OverviewFilter['criticality'] })}
            data-testid="filter-criticality"
          >
            <option value="">All</option>
            {CRITICALITIES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select
            value={filter.status}
            onChange={(e) => setFilter({ ...filter, status: e.target.value as OverviewFilter['status'] })}
            data-testid="filter-status"
          >
            <option value="">All</option>
            {HEALTH_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        {(filter.line || filter.criticality || filter.status) && (
          <button type="button" onClick={() => setFilter(EMPTY_FILTER)}>
            Clear
          </button>
        )}
      </div>
      <ErrorBox error={res.error} />
      {res.loading && !res.data && <p className="muted">Loading…</p>}
      {res.data && shown.length === 0 && <p className="muted">No asset matches the filters.</p>}
      <div className={`tiles${compact ? ' compact' : ''}`} data-testid="tiles">
        {shown.map((h) => (
          <AssetTile key={h.asset.id} h={h} compact={compact} />
        ))}
      </div>
    </div>
  );
}

import { useMemo, useState } from 'react';
import { ApiError } from '../api/client';
import type { Asset, Kpi, KpiReport, PlannedStop, ReliabilityReport, TypeReliability } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { Stretches } from '../components/Stretches';
import { csvFileName, formatDateTime, formatHours, formatNumber, formatPercent, periodRange, toLocalInput, type Period } from '../logic/format';
import { can } from '../logic/roles';
import { assetHref } from '../logic/route';
import { useAssets, useResource, useServices, useSession } from '../services';

const PERIODS: { value: Period; label: string }[] = [
  { value: '24h', label: 'Last 24 h' },
  { value: '7d', label: 'Last 7 d' },
  { value: '30d', label: 'Last 30 d' },
  { value: 'custom', label: 'Custom' },
];

/** KPIs: availability, MTBF, MTTR, OEE per asset, total and per shift, with CSV export; the
 *  production calendar (planned stops) of the period. */
export function KpiPage() {
  const { api } = useServices();
  const role = useSession()?.user.role;
  const assets = useAssets();
  const [period, setPeriod] = useState<Period>('7d');
  const [custom, setCustom] = useState(() => ({
    from: toLocalInput(Date.now() - 7 * 86400e3),
    to: toLocalInput(Date.now()),
  }));
  const [line, setLine] = useState('');
  const [stamp, setStamp] = useState(() => Date.now());
  const [exportError, setExportError] = useState<ApiError | null>(null);
  const range = useMemo(() => periodRange(period, stamp, custom), [period, stamp, custom]);
  const lines = useMemo(() => [...new Set([...assets.values()].map((a) => a.line).filter(Boolean))].sort(), [assets]);

  const res = useResource<KpiReport | null>(
    () => (range ? api.kpis({ ...range, line: line || undefined }) : Promise.resolve(null)),
    // `stamp` too: Refresh (or a planned stop recorded) reads a custom period again.
    [api, range?.from, range?.to, line, stamp],
  );

  async function exportCsv() {
    if (!range) return;
    setExportError(null);
    try {
      const blob = await api.kpisCsv({ ...range, line: line || undefined });
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = csvFileName(range.from, range.to);
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setExportError(e as ApiError);
    }
  }

  const report = res.data;
  return (
    <div className="page kpis">
      <div className="page-head">
        <h2>KPIs</h2>
        <div className="segmented" role="group" aria-label="Period">
          {PERIODS.map((p) => (
            <button
              key={p.value}
              type="button"
              className={p.value === period ? 'active' : ''}
              aria-pressed={p.value === period}
              onClick={() => {
                setPeriod(p.value);
                setStamp(Date.now());
              }}
              data-testid={`kpi-period-${p.value}`}
            >
              {p.label}
            </button>
          ))}
        </div>
        <label>
          Line{' '}
          <select value={line} onChange={(e) => setLine(e.target.value)}>
            <option value="">All lines</option>
            {lines.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => setStamp(Date.now())}>
          Refresh
        </button>
        {can(role, 'exportKpis') && (
          <button type="button" onClick={() => void exportCsv()} disabled={!range} data-testid="kpi-export">
            Export CSV
          </button>
        )}
      </div>
      {period === 'custom' && (
        <div className="filters">
          <label>
            From <input type="datetime-local" value={custom.from} onChange={(e) => setCustom({ ...custom, from: e.target.value })} data-testid="kpi-from" />
          </label>
          <label>
            To <input type="datetime-local" value={custom.to} onChange={(e) => setCustom({ ...custom, to: e.target.value })} data-testid="kpi-to" />
          </label>
          {!range && <span className="error-text">Choose a start before the end.</span>}
        </div>
      )}
      <ErrorBox error={exportError ?? res.error} />
      {res.loading && !report && <p className="muted">Loading…</p>}
      {report && (
        <>
          <p className="muted small">
            {formatDateTime(report.from)} → {formatDateTime(report.to)}
          </p>
          <div className="kpi-cards" data-testid="kpi-total">
            <KpiCard label="Availability" value={formatPercent(report.total.availability)} title={AVAILABILITY_TITLE} />
            <KpiCard
              label="Performance"
              value={formatPercent(report.total.performance)}
              title={
                report.total.performance == null
                  ? PERFORMANCE_ASSUMED
                  : 'The mean over the assets whose performance was measured (ideal cycle time in the production counts, or a speed sensor)'
              }
            />
            <KpiCard label="Quality" value={formatPercent(report.total.quality)} title={unitsTitle(report.total)} />
            <KpiCard label="OEE" value={formatPercent(report.total.oee)} title={`${report.total.oeeBasis ?? ''} (a group's OEE: the mean of its assets')`} />
            <KpiCard label="MTBF" value={formatHours(report.total.mtbfHours)} />
            <KpiCard label="MTTR" value={formatHours(report.total.mttrHours)} />
            <KpiCard label="Failures" value={String(report.total.failures)} />
            <KpiCard label="Downtime" value={formatHours(report.total.downtimeHours)} title="Outside planned stops, summed over the assets" />
            <KpiCard label="Planned stops" value={formatHours(report.total.plannedStopHours ?? 0)} title="Hours in planned stops, summed over the assets: not planned production time" />
          </div>
          <h3>Per asset</h3>
          <table className="table numeric" data-testid="kpi-assets">
            <thead>
              <tr>
                <th>Asset</th>
                <th>Availability</th>
                <th>Performance</th>
                <th>Quality</th>
                <th>OEE</th>
                <th>MTBF</th>
                <th>MTTR</th>
                <th>Failures</th>
                <th>Downtime</th>
                <th>Planned stops</th>
              </tr>
            </thead>
            <tbody>
              {report.assets.map((k, i) => (
                <KpiRow key={k.assetId ?? i} k={k} asset={k.assetId ? assets.get(k.assetId) : undefined} />
              ))}
              <KpiRow k={report.total} total />
            </tbody>
          </table>
          <h3>Per shift (all assets in scope)</h3>
          <ShiftTable k={report.total} />
          {report.assets.length > 0 && (
            <details>
              <summary>Per shift, per asset</summary>
              {report.assets.map((k, i) => (
                <div key={k.assetId ?? i}>
                  <h4>{k.assetId ? assets.get(k.assetId)?.code ?? k.assetId : 'Asset'}</h4>
                  <ShiftTable k={k} />
                </div>
              ))}
            </details>
          )}
          <PlannedStops
            from={report.from}
            to={report.to}
            assets={assets}
            line={line}
            manager={can(role, 'planStops')}
            onChanged={() => setStamp(Date.now())}
          />
        </>
      )}
      <Reliability />
    </div>
  );
}

const TRENDS: Record<string, string> = {
  decreasing: 'early failures',
  constant: 'random failures',
  increasing: 'wear-out',
};

/** Per asset type: the life model of its recorded lives and, given the costs, the best preventive replacement interval. */
function Reliability() {
  const { api } = useServices();
  const [costs, setCosts] = useState({ preventive: '1', failure: '5' });
  const preventive = Number(costs.preventive);
  const failure = Number(costs.failure);
  const valid = preventive > 0 && failure > preventive;
  const res = useResource<ReliabilityReport>(
    () => api.reliability(valid ? { preventiveCost: preventive, failureCost: failure } : {}),
    [api, valid, preventive, failure],
  );
  return (
    <section data-testid="reliability">
      <h3>Reliability and replacement intervals (per asset type, all recorded lives)</h3>
      <div className="filters">
        <label>
          Planned replacement cost{' '}
          <input type="number" min="0" step="any" value={costs.preventive} onChange={(e) => setCosts({ ...costs, preventive: e.target.value })} data-testid="reliability-preventive" />
        </label>
        <label>
          Failure cost{' '}
          <input type="number" min="0" step="any" value={costs.failure} onChange={(e) => setCosts({ ...costs, failure: e.target.value })} data-testid="reliability-failure" />
        </label>
        {!valid && <span className="error-text">A failure must cost more than a planned replacement (both above 0).</span>}
      </div>
      <ErrorBox error={res.error} />
      {res.data && res.data.items.length === 0 && <p className="muted small">No assets.</p>}
      {res.data && res.data.items.length > 0 && (
        <table className="table numeric" data-testid="reliability-types">
          <thead>
            <tr>
              <th>Asset type</th>
              <th>Assets</th>
              <th>Failures / suspended</th>
              <th>Shape β</th>
              <th>Mean life</th>
              <th>B10 life</th>
              <th>Replace at</th>
              <th>Saving</th>
            </tr>
          </thead>
          <tbody>
            {res.data.items.map((t) => (
              <ReliabilityRow key={t.assetType} t={t} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function ReliabilityRow({ t }: { t: TypeReliability }) {
  return (
    <tr data-testid="reliability-row">
      <td>{t.assetType}</td>
      <td className="num">{t.assets}</td>
      <td className="num">
        {t.failures} / {t.suspensions}
        {t.weibull && t.failures < 5 && (
          <span className="muted small" title="Fewer than 5 failures: the model is a rough estimate" data-testid="reliability-rough">
            {' '}
            (rough)
          </span>
        )}
      </td>
      <td className="num" title={t.failureRate ? TRENDS[t.failureRate] : undefined}>
        {t.weibull ? `${formatNumber(t.weibull.shape)} (${t.failureRate ? TRENDS[t.failureRate] : '—'})` : '—'}
      </td>
      <td className="num">{formatHours(t.meanLifeHours)}</td>
      <td className="num">{formatHours(t.b10Hours)}</td>
      <td className="num" title={t.reason ?? undefined}>
        {t.replacement ? formatHours(t.replacement.intervalHours) : t.reason ? <span className="muted small">{t.reason}</span> : '—'}
      </td>
      <td className="num">{t.replacement ? formatPercent(t.replacement.saving) : '—'}</td>
    </tr>
  );
}

/** What availability is of. */
const AVAILABILITY_TITLE = 'Of the planned production time: the period less planned stops; a failure during a planned stop costs none of it';

/** The production calendar of the report's period: planned stops of an asset or of the whole
 *  plant (breaks, planned changeovers, weekends without shifts, holidays), which OEE leaves out
 *  of the planned production time. Managers record and remove them; with a line chosen, the
 *  line's assets' and the plant's are shown. */
function PlannedStops({ from, to, assets, line, manager, onChanged }: { from: string; to: string; assets: Map<string, Asset>; line: string; manager: boolean; onChanged: () => void }) {
  const { api } = useServices();
  const res = useResource<PlannedStop[]>(() => api.plannedStops({ from, to }), [api, from, to]);
  const inScope = (s: PlannedStop) => !line || s.assetId === null || assets.get(s.assetId)?.line === line;
  const choices = [...assets.values()]
    .filter((a) => !line || a.line === line)
    .sort((a, b) => a.code.localeCompare(b.code))
    .map((a) => ({ value: a.id, label: a.code }));
  // A custom period stays as it is when the KPIs are read again: the list is read again too.
  const changed = () => {
    void res.reload();
    onChanged();
  };
  return (
    <section data-testid="planned-stops">
      <h3>Planned stops (production calendar)</h3>
      <p className="muted small">Time an asset, or the whole plant, is not planned to produce: left out of availability and of performance’s run time.</p>
      <ErrorBox error={res.error} />
      <Stretches
        testid="planned-stop"
        items={res.data?.filter(inScope).map((s) => ({
          ...s,
          who: s.assetId === null ? null : assets.get(s.assetId)?.code ?? s.assetId.slice(0, 8),
        }))}
        whoLabel="Asset"
        everyone="Whole plant"
        choices={choices}
        placeholder="lunch break, changeover, no weekend shift"
        empty="No planned stops in this period."
        manager={manager}
        repeatable
        onAdd={async (s) => {
          await api.addPlannedStop({ assetId: s.who, startsAt: s.startsAt, endsAt: s.endsAt, reason: s.reason, ...(s.repeat ? { repeat: s.repeat } : {}) });
          changed();
        }}
        onRemove={async (id) => {
          await api.removePlannedStop(id);
          changed();
        }}
        onRemoveSeries={async (s) => {
          if (!s.seriesId) return 0;
          const { removed } = await api.removePlannedStopSeries(s.seriesId, s.startsAt);
          changed();
          return removed;
        }}
      />
      {res.data && res.data.length >= 1000 && <p className="muted small">The first 1000 are shown: choose a shorter period for the rest.</p>}
    </section>
  );
}

/** Why a performance cell is empty, for its tooltip. */
const PERFORMANCE_ASSUMED = 'No ideal cycle time in the production counts and no speed sensor: OEE assumes performance 1';

/** Why a performance of 100 % deserves a look (the gateway caps it there). */
const PERFORMANCE_CAPPED =
  'Capped at 100 %: the asset ran at or beyond its ideal rate — check the ideal time per unit entered (or the speed sensor’s rated speed)';

/** A performance cell's tooltip: why it is empty or capped, else what it rests on. */
function performanceTitle(p: number | null | undefined, basis?: string): string | undefined {
  if (p == null) return PERFORMANCE_ASSUMED;
  return p >= 1 ? PERFORMANCE_CAPPED : basis;
}

/** Units behind a quality figure, for its tooltip. */
function unitsTitle(k: { quality: number | null; goodUnits: number; rejectedUnits: number }): string {
  if (k.quality === null || k.quality === undefined) return 'No production counts recorded: OEE assumes quality 1';
  return `${formatNumber(k.goodUnits, 0)} good, ${formatNumber(k.rejectedUnits, 0)} rejected`;
}

function KpiCard({ label, value, title }: { label: string; value: string; title?: string }) {
  return (
    <div className="card kpi-card" title={title}>
      <div className="muted small">{label}</div>
      <div className="kpi-value">{value}</div>
    </div>
  );
}

function KpiRow({ k, asset, total }: { k: Kpi; asset?: Asset; total?: boolean }) {
  return (
    <tr className={total ? 'total' : ''} data-testid={total ? 'kpi-row-total' : 'kpi-row'}>
      <td>
        {total ? <strong>Total</strong> : k.assetId ? <a href={assetHref(k.assetId)}>{asset ? `${asset.code} — ${asset.name}` : k.assetId.slice(0, 8)}</a> : '—'}
      </td>
      <td className="num">{formatPercent(k.availability)}</td>
      <td className="num" title={performanceTitle(k.performance, k.oeeBasis)}>
        {formatPercent(k.performance)}
      </td>
      <td className="num" title={unitsTitle(k)}>{formatPercent(k.quality)}</td>
      <td className="num" title={k.oeeBasis}>{formatPercent(k.oee)}</td>
      <td className="num">{formatHours(k.mtbfHours)}</td>
      <td className="num">{formatHours(k.mttrHours)}</td>
      <td className="num">{k.failures}</td>
      <td className="num">{formatHours(k.downtimeHours)}</td>
      <td className="num">{formatHours(k.plannedStopHours ?? 0)}</td>
    </tr>
  );
}

function ShiftTable({ k }: { k: Kpi }) {
  if (!k.shifts?.length) return <p className="muted small">No shift data.</p>;
  return (
    <table className="table compact numeric">
      <thead>
        <tr>
          <th>Shift</th>
          <th>Hours in period</th>
          <th>Planned stops</th>
          <th>Availability</th>
          <th>Performance</th>
          <th>Quality</th>
          <th>OEE</th>
        </tr>
      </thead>
      <tbody>
        {k.shifts.map((s, i) => (
          <tr key={`${s.shift}-${i}`}>
            <td>{s.shift}</td>
            <td className="num">{formatHours(s.hours)}</td>
            <td className="num">{formatHours(s.plannedStopHours ?? 0)}</td>
            <td className="num" title={s.hours > 0 && s.hours - (s.plannedStopHours ?? 0) < 1e-9 ? 'All planned stops: nothing was to be available' : undefined}>
              {formatPercent(s.availability)}
            </td>
            <td className="num" title={performanceTitle(s.performance)}>
              {formatPercent(s.performance)}
            </td>
            <td className="num" title={unitsTitle(s)}>{formatPercent(s.quality)}</td>
            <td className="num">{formatPercent(s.oee)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

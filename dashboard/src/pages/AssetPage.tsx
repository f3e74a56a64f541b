import { useMemo } from 'react';
import type uPlot from 'uplot';
import type { Anomaly, AnomalyScore, AssetDetail, AssetHealth, MaintenanceEvent, RulPrediction, WorkOrder } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { Production } from '../components/Production';
import { SensorChart } from '../components/SensorChart';
import { TimeChart } from '../components/TimeChart';
import { rulToAligned, scoresToAligned } from '../logic/chart';
import { formatDateTime, formatNumber } from '../logic/format';
import { healthClass } from '../logic/health';
import { statusLabel } from '../logic/workOrders';
import { useInterval, useLiveChannel, useLiveMessage, useResource, useServices } from '../services';
import { useTheme } from '../theme';

const SCORE_SERIES: uPlot.Series[] = [
  { label: 'score', stroke: '#c0392b', width: 2, points: { show: false } },
  { label: 'threshold', stroke: '#e67e22', width: 1.5, dash: [6, 4], points: { show: false } },
];
const RUL_SERIES: uPlot.Series[] = [
  { label: 'lower', stroke: 'rgba(39,174,96,0.45)', width: 1, points: { show: false } },
  { label: 'upper', stroke: 'rgba(39,174,96,0.45)', width: 1, points: { show: false } },
  { label: 'RUL (cycles)', stroke: '#27ae60', width: 2, points: { show: false } },
  { label: 'threshold', stroke: '#c0392b', width: 1.5, dash: [6, 4], points: { show: false } },
];
const RUL_BANDS: uPlot.Band[] = [{ series: [2, 1], fill: 'rgba(39,174,96,0.15)' }];

/** Asset detail: sensor trends, anomaly score, explanation, RUL, work orders, maintenance events. */
export function AssetPage({ id }: { id: string }) {
  const { api } = useServices();
  const theme = useTheme();
  const detail = useResource<AssetDetail>(() => api.asset(id), [api, id]);
  const health = useResource<AssetHealth | undefined>(
    async () => (await api.overview()).find((h) => h.asset.id === id),
    [api, id],
  );
  const scores = useResource<AnomalyScore[]>(() => api.anomalyScores(id, 500), [api, id]);
  const anomalies = useResource<Anomaly[]>(() => api.anomalies({ assetId: id, limit: 1 }), [api, id]);
  const rul = useResource<RulPrediction[]>(() => api.rul(id, 500), [api, id]);
  const orders = useResource<WorkOrder[]>(
    () => api.workOrders({ assetId: id, status: ['OPEN', 'SCHEDULED', 'IN_PROGRESS'] }),
    [api, id],
  );
  const events = useResource<MaintenanceEvent[]>(() => api.maintenanceEvents(id, 50), [api, id]);

  useLiveChannel('readings', id);
  useLiveChannel('alerts');
  useLiveChannel('workOrders');
  const refreshModels = () => {
    void health.reload();
    void scores.reload();
    void anomalies.reload();
    void rul.reload();
  };
  useLiveMessage('alert', (m) => {
    if (m.data.assetId === id) {
      refreshModels();
      // The work order an alert opens is announced by no live message of its own.
      void orders.reload();
    }
  });
  useLiveMessage('workOrder', (m) => {
    if (m.data.assetId === id) {
      void orders.reload();
      void events.reload();
    }
  });
  // Events missed while the connection was down (or skipped by the gateway) are only in the API.
  useLiveMessage('resync', () => {
    refreshModels();
    void orders.reload();
    void events.reload();
  });
  useInterval(() => {
    refreshModels();
    // Work orders changed by the orchestrator or through another gateway replica.
    void orders.reload();
  }, 30_000);

  const scoreData = useMemo(() => scoresToAligned(scores.data ?? []), [scores.data]);
  const rulThreshold = health.data?.rul?.threshold ?? null;
  const rulData = useMemo(() => rulToAligned(rul.data ?? [], rulThreshold), [rul.data, rulThreshold]);
  const sensors = detail.data?.sensors ?? [];
  const sensorCode = (sid: string | null) => (sid ? sensors.find((s) => s.id === sid)?.code ?? sid.slice(0, 8) : '—');
  const latest = anomalies.data?.[0];
  const latestRul = rul.data?.[0];
  const a = detail.data?.asset;

  return (
    <div className="page asset" data-testid="asset-page">
      <div className="page-head">
        <h2>
          {a ? (
            <>
              {a.code} — {a.name}
            </>
          ) : (
            'Asset'
          )}
        </h2>
        {health.data && (
          <span className={`badge ${healthClass(health.data.status)}`} data-testid="asset-status">
            {health.data.status}
          </span>
        )}
      </div>
      <ErrorBox error={detail.error} />
      {a && (
        <p className="muted">
          {a.assetType} · {a.location} · line {a.line} · criticality {a.criticality}
          {health.data?.anomaly && (
            <>
              {' '}
              · anomaly {formatNumber(health.data.anomaly.score)} / {formatNumber(health.data.anomaly.threshold)}
            </>
          )}
          {latestRul && (
            <>
              {' '}
              · RUL {formatNumber(latestRul.rulCycles, 0)} cycles ({formatNumber(latestRul.confidenceLower, 0)}–
              {formatNumber(latestRul.confidenceUpper, 0)})
            </>
          )}
        </p>
      )}

      <h3>Sensor trends</h3>
      {detail.data && sensors.length === 0 && <p className="muted">This asset has no sensors.</p>}
      <div className="charts">
        {sensors.map((s) => (
          <SensorChart key={s.id} sensor={s} />
        ))}
      </div>

      <div className="charts two">
        <TimeChart name="anomaly" title="Anomaly score" data={scoreData} series={SCORE_SERIES} styleKey={theme}>
          <ErrorBox error={scores.error} />
        </TimeChart>
        <TimeChart
          name="rul"
          title={`Remaining useful life${rulThreshold !== null ? ` (threshold ${formatNumber(rulThreshold, 0)})` : ''}`}
          data={rulData}
          series={RUL_SERIES}
          bands={RUL_BANDS}
          yLabel="cycles"
          styleKey={theme}
        >
          <ErrorBox error={rul.error} />
        </TimeChart>
      </div>

      <section className="card" data-testid="anomaly-explanation">
        <h3>Latest anomaly</h3>
        <ErrorBox error={anomalies.error} />
        {!latest && !anomalies.loading && <p className="muted">No anomaly recorded.</p>}
        {latest && (
          <>
            <p>
              <span className={`badge sev-${latest.severity.toLowerCase()}`}>{latest.severity}</span> score{' '}
              <strong>{formatNumber(latest.score, 3)}</strong> over threshold {formatNumber(latest.threshold, 3)} · window{' '}
              {formatDateTime(latest.windowStart)} · detected {formatDateTime(latest.detectedAt)} · {latest.method}
            </p>
            <Contributions anomaly={latest} sensorCode={sensorCode} />
          </>
        )}
      </section>

      <div className="two-col">
        <section className="card">
          <h3>Open work orders</h3>
          <ErrorBox error={orders.error} />
          {orders.data && orders.data.length === 0 && <p className="muted">None.</p>}
          <ul className="plain">
            {(orders.data ?? []).map((w) => (
              <li key={w.id} data-testid="asset-wo">
                <a href="#/work-orders">{w.code}</a> <span className="badge">{statusLabel(w.status)}</span>{' '}
                <span className={`badge prio-${w.priority.toLowerCase()}`}>{w.priority}</span> {w.description}{' '}
                <span className="muted small">due {formatDateTime(w.dueBy)}</span>
              </li>
            ))}
          </ul>
        </section>
        <section className="card">
          <h3>Maintenance events</h3>
          <ErrorBox error={events.error} />
          {events.data && events.data.length === 0 && <p className="muted">None recorded.</p>}
          <ul className="plain">
            {(events.data ?? []).map((e) => (
              <li key={e.id} data-testid="asset-event">
                <span className="badge">{e.kind}</span> {formatDateTime(e.occurredAt)} {e.note && <>— {e.note}</>}
              </li>
            ))}
          </ul>
        </section>
      </div>
      <Production assetId={id} />
    </div>
  );
}

function Contributions({ anomaly, sensorCode }: { anomaly: Anomaly; sensorCode: (id: string | null) => string }) {
  const rows = anomaly.contributions ?? [];
  if (!rows.length) return <p className="muted">No explanation available.</p>;
  const maxZ = Math.max(...rows.map((c) => Math.abs(c.zScore)), 1);
  return (
    <table className="table" data-testid="contributions">
      <thead>
        <tr>
          <th>Feature</th>
          <th>Sensor</th>
          <th>Value</th>
          <th>z-score</th>
          <th aria-label="weight" />
        </tr>
      </thead>
      <tbody>
        {rows.map((c, i) => (
          <tr key={`${c.feature}-${i}`}>
            <td>{c.feature}</td>
            <td>{sensorCode(c.sensorId)}</td>
            <td className="num">{formatNumber(c.value, 3)}</td>
            <td className="num">{formatNumber(c.zScore, 2)}</td>
            <td className="zbar-cell">
              <div className="zbar" style={{ width: `${((Math.abs(c.zScore) / maxZ) * 100).toFixed(0)}%` }} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

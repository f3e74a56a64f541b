import type { AssetHealth } from '../api/types';
import { anomalyBar, healthClass, healthColor, rulBar } from '../logic/health';
import { formatAge, formatNumber } from '../logic/format';
import { assetHref } from '../logic/route';
import { Bar } from './Bar';

export function AssetTile({ h, compact = false }: { h: AssetHealth; compact?: boolean }) {
  const a = h.asset;
  const an = h.anomaly ? anomalyBar(h.anomaly.score, h.anomaly.threshold) : null;
  const rb = h.rul ? rulBar(h.rul.cycles, h.rul.threshold) : null;
  return (
    <a
      className={`tile ${healthClass(h.status)}${compact ? ' compact' : ''}`}
      href={assetHref(a.id)}
      data-testid="asset-tile"
      data-asset-code={a.code}
      data-status={h.status}
      style={{ borderColor: healthColor(h.status) }}
    >
      <div className="tile-head" style={{ background: healthColor(h.status) }}>
        <span className="tile-code">{a.code}</span>
        <span className="tile-status">{h.status}</span>
      </div>
      <div className="tile-body">
        <div className="tile-name">{a.name}</div>
        <div className="muted small">
          {a.line} · {a.criticality}
        </div>
        <div className="tile-metric">
          <span>Anomaly</span>
          {h.anomaly && an ? (
            <>
              <Bar fill={an.fill} mark={an.mark} bad={an.over} label={`score ${formatNumber(h.anomaly.score)} / threshold ${formatNumber(h.anomaly.threshold)}`} />
              <span className="num">
                {formatNumber(h.anomaly.score)} / {formatNumber(h.anomaly.threshold)}
              </span>
            </>
          ) : (
            <span className="muted">—</span>
          )}
        </div>
        <div className="tile-metric">
          <span>RUL</span>
          {h.rul && rb ? (
            <>
              <Bar fill={rb.fill} mark={rb.mark} bad={rb.below} label={`RUL ${formatNumber(h.rul.cycles, 0)} / threshold ${formatNumber(h.rul.threshold, 0)}`} />
              <span className="num">
                {formatNumber(h.rul.cycles, 0)} / {formatNumber(h.rul.threshold, 0)}
              </span>
            </>
          ) : (
            <span className="muted">—</span>
          )}
        </div>
        <div className="tile-foot">
          <span className={h.openAlerts ? 'pill warn' : 'pill'} title="open alerts">
            ⚠ {h.openAlerts}
          </span>
          <span className={h.openWorkOrders ? 'pill info' : 'pill'} title="open work orders">
            WO {h.openWorkOrders}
          </span>
          <span className="muted small">{formatAge(h.lastSeen)}</span>
        </div>
      </div>
    </a>
  );
}

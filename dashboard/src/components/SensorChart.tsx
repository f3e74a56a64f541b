import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type uPlot from 'uplot';
import { ApiError } from '../api/client';
import type { LiveReading, Sensor } from '../api/types';
import { appendTail, bandToAligned, bucketsToBand, EMPTY_BAND, mergeLiveTail, pointsForWidth, type Band } from '../logic/chart';
import { formatDateTime, toIso } from '../logic/format';
import { useInterval, useLiveMessage, useServices } from '../services';
import { useTheme } from '../theme';
import { ErrorBox } from './ErrorBox';
import { TimeChart } from './TimeChart';

/** Live window when not zoomed: the last hour, like the server's default range. */
export const LIVE_WINDOW_SECS = 3600;

const SERIES: uPlot.Series[] = [
  { label: 'min', stroke: 'rgba(64,132,214,0.45)', width: 1, points: { show: false } },
  { label: 'max', stroke: 'rgba(64,132,214,0.45)', width: 1, points: { show: false } },
  { label: 'avg', stroke: '#2f6fbf', width: 2, points: { show: false } },
];
const BANDS: uPlot.Band[] = [{ series: [2, 1], fill: 'rgba(64,132,214,0.18)' }];

/**
 * One sensor's trend: downsampled history (min/max band + avg line) and, while not zoomed,
 * the live tail from the readings channel. A drag selection zooms: the range is refetched with
 * `points` = the plot's pixel width so the server downsamples to what can be drawn.
 */
export function SensorChart({ sensor }: { sensor: Sensor }) {
  const { api } = useServices();
  const theme = useTheme();
  const [zoom, setZoom] = useState<{ from: number; to: number } | null>(null);
  const [history, setHistory] = useState<Band>(EMPTY_BAND);
  const [tail, setTail] = useState<LiveReading[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const width = useRef(600);
  const seq = useRef(0);

  const load = useCallback(
    async (z: { from: number; to: number } | null) => {
      const my = ++seq.current;
      try {
        const q = z
          ? { from: toIso(z.from * 1000), to: toIso(z.to * 1000), points: pointsForWidth(width.current) }
          : { points: pointsForWidth(width.current) };
        const r = await api.readings(sensor.id, q);
        if (my !== seq.current) return;
        setHistory(bucketsToBand(r.points ?? []));
        setError(null);
      } catch (e) {
        if (my === seq.current) setError(e as ApiError);
      }
    },
    [api, sensor.id],
  );

  useEffect(() => {
    void load(zoom);
  }, [load, zoom]);
  // Not zoomed: refresh the history now and then (the tail covers the seconds in between).
  useInterval(() => void (zoom ? undefined : load(null)), zoom ? null : 60_000);

  useLiveMessage('readings', (m) => {
    if (m.assetId !== sensor.assetId) return;
    setTail((t) => appendTail(t, m.data, sensor.id, 5000));
  });

  const data = useMemo(
    () => bandToAligned(zoom ? history : mergeLiveTail(history, tail, LIVE_WINDOW_SECS)),
    [zoom, history, tail],
  );
  const last = tail.length ? tail[tail.length - 1] : null;

  return (
    <TimeChart
      name={`sensor-${sensor.code}`}
      title={`${sensor.code} · ${sensor.sensorType.toLowerCase()} (${sensor.unit})`}
      data={data}
      series={SERIES}
      bands={BANDS}
      yLabel={sensor.unit}
      styleKey={theme}
      onWidth={(w) => (width.current = w)}
      onZoom={(from, to, w) => {
        width.current = w;
        setZoom({ from, to });
      }}
    >
      {zoom ? (
        <>
          <span className="muted small">
            {formatDateTime(toIso(zoom.from * 1000))} → {formatDateTime(toIso(zoom.to * 1000))}
          </span>
          <button type="button" onClick={() => setZoom(null)} data-testid="zoom-reset">
            Back to live
          </button>
        </>
      ) : (
        <span className="live-tag" title="drag on the chart to zoom">
          ● LIVE{last ? ` ${last.value.toFixed(2)} ${sensor.unit}` : ''}
        </span>
      )}
      <ErrorBox error={error} />
    </TimeChart>
  );
}

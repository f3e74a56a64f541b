// A uPlot time-series chart. Zoom is a drag selection on x: with `onZoom` the parent refetches
// (server-side downsampling for the new range); without it uPlot zooms its own data
// (double-click resets).
import { useEffect, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Aligned } from '../logic/chart';
import { pointCount } from '../logic/chart';

export interface TimeChartProps {
  /** data-testid becomes `chart-<name>`. */
  name: string;
  title: string;
  data: Aligned;
  series: uPlot.Series[];
  bands?: uPlot.Band[];
  height?: number;
  /** Drag-selected range in unix seconds, with the plot width in CSS pixels. */
  onZoom?: (from: number, to: number, widthPx: number) => void;
  /** Reports the plot width in CSS pixels (for the `points` of the next fetch). */
  onWidth?: (widthPx: number) => void;
  yLabel?: string;
  /** Changing it rebuilds the chart (e.g. theme switch: axis colours are read from CSS). */
  styleKey?: string;
  children?: React.ReactNode;
}

function cssVar(name: string, fallback: string): string {
  try {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  } catch {
    return fallback;
  }
}

export function TimeChart({ name, title, data, series, bands, height = 220, onZoom, onWidth, yLabel, styleKey, children }: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const onZoomRef = useRef(onZoom);
  onZoomRef.current = onZoom;
  const onWidthRef = useRef(onWidth);
  onWidthRef.current = onWidth;
  const dataRef = useRef(data);
  dataRef.current = data;
  const [failed, setFailed] = useState<string | null>(null);
  const seriesKey = JSON.stringify(series.map((s) => s.label)) + (styleKey ?? '') + (onZoom ? 'z' : '');

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = Math.max(200, el.clientWidth || 600);
    const fg = cssVar('--fg-muted', '#666');
    const grid = cssVar('--grid', 'rgba(128,128,128,0.2)');
    const axis: uPlot.Axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts: uPlot.Options = {
      width,
      height,
      series: [{}, ...series],
      bands,
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false, setScale: !onZoomRef.current } },
      scales: { x: { time: true } },
      axes: [axis, { ...axis, label: yLabel, size: 60 }],
      hooks: {
        setSelect: [
          (u) => {
            const cb = onZoomRef.current;
            if (!cb || u.select.width < 3) return;
            const from = u.posToVal(u.select.left, 'x');
            const to = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            cb(from, to, Math.round(u.bbox.width / (globalThis.devicePixelRatio || 1)));
          },
        ],
      },
    };
    let u: uPlot;
    try {
      u = new uPlot(opts, dataRef.current as uPlot.AlignedData, el);
      setFailed(null);
    } catch (e) {
      setFailed(e instanceof Error ? e.message : String(e));
      return;
    }
    plot.current = u;
    onWidthRef.current?.(Math.round(u.bbox.width / (globalThis.devicePixelRatio || 1)) || width);
    let ro: ResizeObserver | null = null;
    if (typeof ResizeObserver !== 'undefined') {
      ro = new ResizeObserver(() => {
        const w = Math.max(200, el.clientWidth);
        if (Math.abs(w - u.width) > 2) {
          u.setSize({ width: w, height });
          onWidthRef.current?.(Math.round(u.bbox.width / (globalThis.devicePixelRatio || 1)) || w);
        }
      });
      ro.observe(el);
    }
    return () => {
      ro?.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seriesKey, height]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData, true);
  }, [data]);

  return (
    <section className="chart card" data-testid={`chart-${name}`} data-points={pointCount(data)}>
      <header className="chart-head">
        <h3>{title}</h3>
        <div className="chart-tools">{children}</div>
      </header>
      {failed && <div className="muted small">Chart unavailable: {failed}</div>}
      <div className="chart-box" ref={box} />
      {pointCount(data) === 0 && <div className="muted small chart-empty">No data in this range.</div>}
    </section>
  );
}

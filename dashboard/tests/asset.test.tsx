import { act, screen, waitFor, within } from '@testing-library/react';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { AssetPage } from '../src/pages/AssetPage';
import { health, login, renderWith, setup, workOrder } from './helpers';

// uPlot needs a real canvas: record what the page gives it instead.
const plots = vi.hoisted(() => [] as { opts: { series: { label?: string }[]; bands?: unknown[] }; data: unknown[][]; hooks: Record<string, ((u: unknown) => void)[]> }[]);
vi.mock('uplot', () => {
  class FakePlot {
    width: number;
    bbox = { width: 640, height: 200 };
    select = { left: 0, top: 0, width: 0, height: 0 };
    rec: (typeof plots)[number];
    constructor(opts: { width: number; series: { label?: string }[]; hooks?: Record<string, ((u: unknown) => void)[]> }, data: unknown[][]) {
      this.width = opts.width;
      this.rec = { opts, data, hooks: opts.hooks ?? {} };
      plots.push(this.rec);
    }
    setData(d: unknown[][]) {
      this.rec.data = d;
    }
    setSize() {}
    setSelect(s: typeof this.select) {
      this.select = s;
    }
    posToVal(px: number) {
      return 1_800_000_000 + px;
    }
    destroy() {}
  }
  return { default: FakePlot };
});

const ASSET = 'id-P1';
const sensors = [
  { id: 's-vib', assetId: ASSET, code: 'VIB-1', sensorType: 'VIBRATION', unit: 'mm/s', minValue: 0, maxValue: 50, samplingRateHz: 10 },
];
const t = (s: number) => new Date(Date.UTC(2026, 11, 3, 7, 0, s)).toISOString();

function routes() {
  return {
    'GET /api/v1/assets/id-P1': { asset: health('P1', 'WARNING').asset, sensors },
    'GET /api/v1/overview': [health('P1', 'WARNING')],
    'GET /api/v1/sensors/s-vib/readings': { sensorId: 's-vib', from: t(0), to: t(20), bucketSecs: 10, points: [
      { t: t(0), min: 1, max: 3, avg: 2, n: 10 },
      { t: t(10), min: 2, max: 4, avg: 3, n: 10 },
    ] },
    'GET /api/v1/assets/id-P1/anomaly-scores': [
      { windowStart: t(10), sensorId: null, assetId: ASSET, anomalyId: 'an1', ensembleScore: 0.9, threshold: 0.8, severity: 'HIGH', method: 'ensemble', modelVersion: 'v1', zscoreScore: null, isolationForestScore: null, ocsvmScore: null, autoencoderScore: null },
      { windowStart: t(0), sensorId: null, assetId: ASSET, anomalyId: null, ensembleScore: 0.3, threshold: 0.8, severity: null, method: 'ensemble', modelVersion: 'v1', zscoreScore: null, isolationForestScore: null, ocsvmScore: null, autoencoderScore: null },
    ],
    'GET /api/v1/anomalies': [
      { id: 'an1', assetId: ASSET, sensorId: 's-vib', windowStart: t(10), detectedAt: t(12), score: 0.9, threshold: 0.8, severity: 'HIGH', criticality: 'HIGH', method: 'ensemble',
        contributions: [{ feature: 'rms', sensorId: 's-vib', value: 7.5, zScore: 4.2 }, { feature: 'kurtosis', sensorId: 's-vib', value: 5.1, zScore: 2.0 }] },
    ],
    'GET /api/v1/assets/id-P1/rul': [
      { assetId: ASSET, predictedAt: t(10), rulCycles: 140, confidenceLower: 120, confidenceUpper: 160, modelVersion: 'v1' },
      { assetId: ASSET, predictedAt: t(0), rulCycles: 150, confidenceLower: 130, confidenceUpper: 170, modelVersion: 'v1' },
    ],
    'GET /api/v1/work-orders': [workOrder('WO-7', 'OPEN', { description: 'inspect bearing' })],
    'GET /api/v1/assets/id-P1/events': [{ id: 'e1', assetId: ASSET, kind: 'REPAIR', occurredAt: t(0), workOrderId: null, note: 'greased' }],
  };
}

const chart = (name: string) => screen.getByTestId(`chart-${name}`);
const plotOf = (label: string) => plots.filter((p) => p.opts.series.some((s) => s.label === label)).at(-1)!;

describe('AssetPage', () => {
  beforeEach(() => {
    plots.length = 0;
    login('operator');
  });

  it('draws sensor, anomaly and RUL charts, the explanation, work orders and events', async () => {
    const { services, mf } = setup(routes());
    renderWith(services, <AssetPage id={ASSET} />);
    await waitFor(() => expect(chart('sensor-VIB-1').getAttribute('data-points')).toBe('2'));
    await waitFor(() => expect(chart('anomaly').getAttribute('data-points')).toBe('2'));
    await waitFor(() => expect(chart('rul').getAttribute('data-points')).toBe('2'));
    // readings asked for as many points as the plot is wide
    const rq = mf.calls.find((c) => c.url.pathname === '/api/v1/sensors/s-vib/readings')!;
    expect(rq.url.searchParams.get('points')).toBe('640');
    // sensor chart: min/max band + avg line
    const sp = plotOf('avg');
    expect(sp.opts.series.map((s) => s.label)).toEqual([undefined, 'min', 'max', 'avg']);
    expect(sp.opts.bands).toHaveLength(1);
    // RUL chart: band + threshold from the overview
    await waitFor(() => expect((plotOf('RUL (cycles)').data[4] as number[])[0]).toBe(100));
    expect(plotOf('RUL (cycles)').data[1]).toEqual([130, 120]);
    // anomaly chart with the threshold line
    expect(plotOf('score').data[2]).toEqual([0.8, 0.8]);

    const expl = await screen.findByTestId('contributions');
    expect(within(expl).getAllByRole('row')).toHaveLength(3);
    expect(expl.textContent).toContain('rms');
    expect(expl.textContent).toContain('VIB-1');
    expect((await screen.findByTestId('asset-wo')).textContent).toContain('WO-7');
    expect((await screen.findByTestId('asset-event')).textContent).toContain('greased');
    const woq = mf.calls.find((c) => c.url.pathname === '/api/v1/work-orders')!;
    expect(woq.url.searchParams.get('assetId')).toBe(ASSET);
    expect(woq.url.searchParams.get('status')).toBe('OPEN,SCHEDULED,IN_PROGRESS');
  });

  it('appends the live tail while not zoomed, and refetches the zoomed range with points = width', async () => {
    const { services, sf, mf } = setup(routes());
    services.live.connect();
    sf.last().open();
    renderWith(services, <AssetPage id={ASSET} />);
    await waitFor(() => expect(chart('sensor-VIB-1').getAttribute('data-points')).toBe('2'));
    expect(sf.last().sent).toContainEqual({ type: 'subscribe', channel: 'readings', assetId: ASSET });

    sf.last().push({ type: 'readings', assetId: ASSET, data: [
      { sensorId: 's-vib', t: t(15), value: 5 },
      { sensorId: 's-vib', t: t(16), value: 6 },
      { sensorId: 'other', t: t(17), value: 99 },
    ] });
    await waitFor(() => expect(chart('sensor-VIB-1').getAttribute('data-points')).toBe('4'));
    expect(plotOf('avg').data[3]).toEqual([2, 3, 5, 6]);

    // drag-select on the chart → zoom
    const p = plotOf('avg');
    const u = { select: { left: 10, width: 100, top: 0, height: 0 }, bbox: { width: 640 }, posToVal: (px: number) => Date.parse(t(0)) / 1000 + px / 10, setSelect: () => undefined };
    act(() => p.hooks.setSelect[0](u));
    await waitFor(() => expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/sensors/s-vib/readings')).toHaveLength(2));
    const zq = mf.calls.filter((c) => c.url.pathname === '/api/v1/sensors/s-vib/readings')[1].url.searchParams;
    expect(zq.get('from')).toBe(t(1));
    expect(zq.get('to')).toBe(t(11));
    expect(zq.get('points')).toBe('640');
    await waitFor(() => expect(chart('sensor-VIB-1').getAttribute('data-points')).toBe('2'));
    // zoomed: live points are not appended
    sf.last().push({ type: 'readings', assetId: ASSET, data: [{ sensorId: 's-vib', t: t(30), value: 7 }] });
    expect(chart('sensor-VIB-1').getAttribute('data-points')).toBe('2');
    expect(screen.getByTestId('zoom-reset')).toBeTruthy();
  });
});

import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
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

  it('lists the production counts and records a period, showing a refusal as the gateway words it', async () => {
    const user = userEvent.setup();
    const recorded: unknown[] = [];
    let refuse = false;
    const count = { assetId: ASSET, startsAt: t(0), endsAt: t(3600), good: 90, rejected: 10, idealCycleSeconds: 30, recordedBy: 'olga', recordedAt: t(3600) };
    const { services, mf } = setup({
      ...routes(),
      'GET /api/v1/assets/id-P1/production': () => ({ body: recorded.length ? [count, ...recorded] : [count] }),
      'POST /api/v1/assets/id-P1/production': (req: { body: unknown }) => {
        if (refuse) return { status: 409, body: { title: 'Conflict', status: 409, detail: 'production count overlaps the one recorded' } };
        const c = (req.body as { counts: { startsAt: string; endsAt: string; good: number; rejected: number }[] }).counts[0];
        const stored = { ...c, assetId: ASSET, recordedBy: 'alice', recordedAt: c.endsAt };
        recorded.push(stored);
        return { body: { counts: [stored] } };
      },
    });
    renderWith(services, <AssetPage id={ASSET} />);
    const section = await screen.findByTestId('production');
    await waitFor(() => expect(within(section).getAllByTestId('production-row')).toHaveLength(1));
    expect(within(section).getByTestId('production-row').textContent).toContain('90.0 %');
    expect(within(section).getByTestId('production-row').textContent).toContain('30 s');
    // The form takes the newest count's ideal cycle time.
    await waitFor(() => expect((screen.getByTestId('production-cycle') as HTMLInputElement).value).toBe('30'));
    expect(within(section).getByTestId('production-summary').textContent).toContain('90 good, 10 rejected in 1 count: quality 90.0 %');
    // An operator records; no removal for them.
    expect(within(section).queryByTestId('production-remove')).toBeNull();
    await user.type(screen.getByTestId('production-good'), '45');
    await user.clear(screen.getByTestId('production-rejected'));
    await user.type(screen.getByTestId('production-rejected'), '5');
    await user.click(screen.getByTestId('production-record'));
    await waitFor(() => expect(within(section).getAllByTestId('production-row')).toHaveLength(2));
    const post = mf.calls.find((c) => c.method === 'POST')!;
    const sent = (post.body as { counts: { startsAt: string; endsAt: string; good: number; rejected: number; idealCycleSeconds: number | null }[] }).counts;
    expect(sent).toHaveLength(1);
    expect(sent[0].good).toBe(45);
    expect(sent[0].rejected).toBe(5);
    expect(sent[0].idealCycleSeconds).toBe(30);
    expect(Date.parse(sent[0].endsAt) - Date.parse(sent[0].startsAt)).toBeGreaterThan(0);
    // The form moves on to the next period of the same length.
    const from = (screen.getByTestId('production-from') as HTMLInputElement).value;
    expect(new Date(from).getTime()).toBe(new Date(sent[0].endsAt).getTime());
    // Refused: the gateway's words, nothing added.
    refuse = true;
    await user.type(screen.getByTestId('production-good'), '1');
    await user.click(screen.getByTestId('production-record'));
    expect((await within(section).findByTestId('error')).textContent).toContain('overlaps');
    expect(within(section).getAllByTestId('production-row')).toHaveLength(2);
    // No good units given: said before anything is sent.
    const posts = mf.calls.filter((c) => c.method === 'POST').length;
    await user.clear(screen.getByTestId('production-good'));
    await user.click(screen.getByTestId('production-record'));
    expect((await within(section).findByTestId('error')).textContent).toContain('whole numbers');
    expect(mf.calls.filter((c) => c.method === 'POST')).toHaveLength(posts);
    // An ideal cycle time of none is refused before sending; an emptied one is sent as none.
    await user.type(screen.getByTestId('production-good'), '7');
    await user.clear(screen.getByTestId('production-cycle'));
    await user.type(screen.getByTestId('production-cycle'), '0');
    await user.click(screen.getByTestId('production-record'));
    expect((await within(section).findByTestId('error')).textContent).toContain('ideal cycle time');
    expect(mf.calls.filter((c) => c.method === 'POST')).toHaveLength(posts);
    refuse = false;
    await user.clear(screen.getByTestId('production-cycle'));
    await user.click(screen.getByTestId('production-record'));
    await waitFor(() => expect(mf.calls.filter((c) => c.method === 'POST')).toHaveLength(posts + 1));
    const last = mf.calls.filter((c) => c.method === 'POST').at(-1)!;
    expect((last.body as { counts: { idealCycleSeconds: number | null }[] }).counts[0].idealCycleSeconds).toBeNull();
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

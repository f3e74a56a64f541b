// Chart data: server-downsampled history (min/avg/max buckets) merged with the live tail of
// raw readings from the WebSocket, in uPlot's aligned-columns form (x in unix seconds).
import type { AnomalyScore, LiveReading, ReadingBucket, RulPrediction } from '../api/types';

export type Column = (number | null)[];
/** [x, ...series] — uPlot's AlignedData. */
export type Aligned = [number[], ...Column[]];

export function toSec(ts: string): number {
  return Date.parse(ts) / 1000;
}

/** One sensor's series: x (s), min, avg, max. */
export interface Band {
  t: number[];
  min: Column;
  avg: Column;
  max: Column;
}

export const EMPTY_BAND: Band = { t: [], min: [], avg: [], max: [] };

/** Downsampled buckets → a band, sorted by time, invalid timestamps dropped. */
export function bucketsToBand(points: ReadingBucket[]): Band {
  const rows = points
    .map((p) => ({ t: toSec(p.t), min: p.min, avg: p.avg, max: p.max }))
    .filter((r) => Number.isFinite(r.t))
    .sort((a, b) => a.t - b.t);
  return {
    t: rows.map((r) => r.t),
    min: rows.map((r) => num(r.min)),
    avg: rows.map((r) => num(r.avg)),
    max: rows.map((r) => num(r.max)),
  };
}

function num(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

/**
 * Adds the live readings of `sensorId` to a tail buffer (sorted, one value per timestamp,
 * at most `max` points kept, the newest).
 */
export function appendTail(tail: LiveReading[], incoming: LiveReading[], sensorId: string, max = 5000): LiveReading[] {
  const mine = incoming.filter((r) => r.sensorId === sensorId && Number.isFinite(r.value) && !Number.isNaN(Date.parse(r.t)));
  if (!mine.length) return tail;
  const byT = new Map<number, LiveReading>();
  for (const r of tail) byT.set(Date.parse(r.t), r);
  for (const r of mine) byT.set(Date.parse(r.t), r);
  const sorted = [...byT.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  return sorted.length > max ? sorted.slice(sorted.length - max) : sorted;
}

/**
 * History band + live tail: tail points later than the last bucket are appended (min = max =
 * avg = value). With `windowSecs`, points older than (newest − window) are dropped, so the
 * chart slides like a strip recorder.
 */
export function mergeLiveTail(history: Band, tail: LiveReading[], windowSecs: number | null = null): Band {
  const lastT = history.t.length ? history.t[history.t.length - 1] : -Infinity;
  const t = history.t.slice();
  const min = history.min.slice();
  const avg = history.avg.slice();
  const max = history.max.slice();
  for (const r of tail) {
    const x = toSec(r.t);
    if (!(x > lastT) || (t.length && x <= t[t.length - 1])) continue;
    t.push(x);
    min.push(r.value);
    avg.push(r.value);
    max.push(r.value);
  }
  if (windowSecs !== null && t.length) {
    const cut = t[t.length - 1] - windowSecs;
    const i = t.findIndex((x) => x >= cut);
    if (i > 0) return { t: t.slice(i), min: min.slice(i), avg: avg.slice(i), max: max.slice(i) };
  }
  return { t, min, avg, max };
}

/** A band in uPlot's order: [x, min, max, avg]. */
export function bandToAligned(b: Band): Aligned {
  return [b.t, b.min, b.max, b.avg];
}

/** Anomaly scores (newest first from the API) → [x, score, threshold], one point per window (the max). */
export function scoresToAligned(scores: AnomalyScore[]): Aligned {
  const byT = new Map<number, { score: number; threshold: number }>();
  for (const s of scores) {
    const x = toSec(s.windowStart);
    if (!Number.isFinite(x)) continue;
    const prev = byT.get(x);
    if (!prev || s.ensembleScore > prev.score) byT.set(x, { score: s.ensembleScore, threshold: s.threshold });
  }
  const xs = [...byT.keys()].sort((a, b) => a - b);
  return [xs, xs.map((x) => byT.get(x)!.score), xs.map((x) => byT.get(x)!.threshold)];
}

/** RUL predictions → [x, lower, upper, cycles, threshold]. */
export function rulToAligned(preds: RulPrediction[], threshold: number | null): Aligned {
  const rows = preds
    .map((p) => ({ x: toSec(p.predictedAt), p }))
    .filter((r) => Number.isFinite(r.x))
    .sort((a, b) => a.x - b.x);
  const xs: number[] = [];
  const lower: Column = [];
  const upper: Column = [];
  const cycles: Column = [];
  for (const { x, p } of rows) {
    if (xs.length && xs[xs.length - 1] === x) continue;
    xs.push(x);
    lower.push(num(p.confidenceLower));
    upper.push(num(p.confidenceUpper));
    cycles.push(num(p.rulCycles));
  }
  return [xs, lower, upper, cycles, xs.map(() => threshold)];
}

/** The number of plotted x values (what the e2e test checks is > 0). */
export function pointCount(data: Aligned | null | undefined): number {
  return data ? data[0].length : 0;
}

/** Readings request range for a zoom selection: integer pixel count, at least 2, at most 5000. */
export function pointsForWidth(width: number): number {
  return Math.max(2, Math.min(5000, Math.round(width || 600)));
}

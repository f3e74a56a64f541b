// Dead letters: what each `dlq.*` topic holds, and what a replay did, in words.
import { ApiError } from '../api/client';
import type { DeadLetter, Replayed } from '../api/types';

/** What the consumers of the platform set aside, by the group whose topic it is
 *  (`dlq.<group>`; the groups are the services' own, see README "Records and topics"). */
const HOLDS: Record<string, string> = {
  ingestion:
    'Device messages that gave no reading (a sensor not registered, a payload not understood: shown, not replayable; register the sensor and its next messages are taken), and readings the bus refused',
  preprocessing: 'Readings preprocessing could not read or window',
  features: 'Windows feature extraction could not read',
  anomaly: 'Feature vectors anomaly detection could not score',
  rul: 'Feature vectors the RUL service could not use',
  'orchestrator.anomaly': 'Anomalies the orchestrator could not turn into alerts and work orders',
  'orchestrator.rul': 'RUL predictions the orchestrator could not act on',
  'gateway.live': 'Records the live view could not read',
};

const WEBHOOK = /^orchestrator\.webhook\.(.+)\.(alert|maintenance)$/;

/** What a dead-letter topic holds, for a person. */
export function describeTopic(topic: string): string {
  const group = topic.replace(/^dlq\./, '');
  const known = HOLDS[group];
  if (known) return known;
  const hook = WEBHOOK.exec(group);
  if (hook) {
    const what = hook[2] === 'alert' ? 'Alerts' : 'Scheduled work orders';
    return `${what} the receiver of webhook “${hook[1]}” refused (413, 415, 422)`;
  }
  return `Records the consumer group “${group}” could not process`;
}

/** Records a replay published (or would publish), over every source topic. */
export function publishedCount(r: Replayed): number {
  return Object.values(r.published).reduce((a, n) => a + n, 0);
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** What a replay did (`dry`: would do), one sentence per line. */
export function describeReplay(r: Replayed, dry: boolean): string[] {
  const total = publishedCount(r);
  const lines: string[] = [];
  const targets = Object.entries(r.published)
    .filter(([, n]) => n > 0)
    .map(([topic, n]) => `${n} to ${topic}`)
    .join(', ');
  if (total === 0) lines.push(dry ? 'Nothing would be published.' : 'Nothing was published.');
  else lines.push(`${dry ? 'Would publish' : 'Published'} ${plural(total, 'record', 'records')}: ${targets}.`);
  if (r.notReplayable > 0)
    lines.push(
      `${plural(r.notReplayable, 'letter is', 'letters are')} not replayable (device messages, or a source topic that is gone).`,
    );
  if (r.alreadyReplayed > 0)
    lines.push(`${plural(r.alreadyReplayed, 'letter was', 'letters were')} sent by an earlier replay: left${dry ? ' (tick “again” to send them once more)' : ''}.`);
  if (r.copies > 0)
    lines.push(`${plural(r.copies, 'letter is a copy', 'letters are copies')} of one sent in this run (a replayed record set aside again): left, so it is sent once.`);
  if (r.refused > 0) lines.push(`The bus refused ${plural(r.refused, 'record', 'records')} for good.`);
  if (r.filtered > 0) lines.push(`${plural(r.filtered, 'letter', 'letters')} left out by the filter.`);
  if (r.stopped)
    lines.push(
      dry
        ? `The count stopped before the end: ${r.stopped}.`
        : `Stopped before the end: ${r.stopped}. What is counted above was published; a later replay leaves what was recorded.`,
    );
  return lines;
}

/** Statuses the gateway answers before a replay starts (a bad request, rights, no such
 *  topic, another replay running, too large, throttled). */
const NOT_STARTED = [400, 401, 403, 404, 409, 413, 415, 422, 429];

/** Whether a replay that failed with `e` may have published some of its records: anything but
 *  the gateway's own refusal before it starts (a 503 with its problem body — busy, the bus
 *  away — included; one from a proxy, without, is not known). */
export function mayHaveRun(e: unknown): boolean {
  if (!(e instanceof ApiError)) return true;
  if (NOT_STARTED.includes(e.status)) return false;
  return !(e.status === 503 && e.problem.type !== undefined);
}

/** A letter's payload size: the device message's whole size when ingestion kept only its
 *  first part (`mantis.dlq.payload-bytes`). */
export function payloadSize(l: DeadLetter): { bytes: number; cut: boolean } {
  const whole = Number(l.headers['mantis.dlq.payload-bytes']);
  return Number.isFinite(whole) && whole > l.payloadBytes ? { bytes: whole, cut: true } : { bytes: l.payloadBytes, cut: false };
}

/** A size in bytes, short. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

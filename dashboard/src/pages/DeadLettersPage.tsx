import { useEffect, useRef, useState } from 'react';
import type { ApiError } from '../api/client';
import type { DeadLetter, DeadLetterFilter, DeadLetterTopic, Replayed } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { describeReplay, describeTopic, formatBytes, mayHaveRun, payloadSize, publishedCount } from '../logic/deadLetters';
import { formatDateTime } from '../logic/format';
import { deadLettersHref } from '../logic/route';
import { useResource, useServices } from '../services';

const SINCE: { value: string; label: string }[] = [
  { value: '', label: 'any time' },
  { value: '1h', label: 'the last hour' },
  { value: '24h', label: 'the last 24 h' },
  { value: '7d', label: 'the last 7 days' },
  { value: '30d', label: 'the last 30 days' },
];
const LIMITS = [50, 200, 1000];

/** Topics with letters first, then by name. */
function ordered(topics: DeadLetterTopic[]): DeadLetterTopic[] {
  return [...topics].sort((a, b) => Number(b.records > 0) - Number(a.records > 0) || a.topic.localeCompare(b.topic));
}

/** What the services set aside instead of losing it (`dlq.*` topics), with why; sent again
 *  once the cause is mended. Admins of the installation's default tenant. */
export function DeadLettersPage({ topic }: { topic: string | null }) {
  const { api } = useServices();
  const topics = useResource<DeadLetterTopic[]>(() => api.deadLetterTopics(), [api]);
  // Bumped by Refresh: the open topic's letters are read again too.
  const [round, setRound] = useState(0);
  const held = topics.data?.reduce((a, t) => a + t.records, 0) ?? 0;

  return (
    <div className="page dead-letters">
      <div className="page-head">
        <h2>Dead letters</h2>
        <button
          type="button"
          onClick={() => {
            void topics.reload();
            setRound((r) => r + 1);
          }}
          disabled={topics.loading}
          data-testid="dlq-refresh"
        >
          Refresh
        </button>
      </div>
      <p className="muted small">
        Records the services set aside rather than lose, each with why. Once the cause is mended (a sensor registered, a
        webhook&apos;s receiver fixed, a decoding bug fixed), send them again to the consumers that set them aside; the
        letters stay here.
      </p>
      <ErrorBox error={topics.error} />
      {topics.data &&
        (topics.data.length === 0 ? (
          <p className="muted" data-testid="dlq-none">
            No dead-letter topic yet.
          </p>
        ) : (
          <>
            <p data-testid="dlq-held">{held === 0 ? 'Nothing is set aside.' : `${held} ${held === 1 ? 'letter' : 'letters'} held.`}</p>
            <table className="table" data-testid="dlq-topics">
              <thead>
                <tr>
                  <th>Topic</th>
                  <th>What it holds</th>
                  <th className="num">Letters</th>
                </tr>
              </thead>
              <tbody>
                {ordered(topics.data).map((t) => (
                  <tr
                    key={t.topic}
                    className={t.topic === topic ? 'selected' : t.records === 0 ? 'muted' : ''}
                    data-testid="dlq-topic"
                    data-topic={t.topic}
                  >
                    <td>
                      <a href={deadLettersHref(t.topic)} aria-current={t.topic === topic ? 'page' : undefined}>
                        {t.topic}
                      </a>
                    </td>
                    <td>{describeTopic(t.topic)}</td>
                    <td className="num" data-testid="dlq-topic-records">
                      {t.records}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        ))}
      {topic && <TopicLetters key={topic} topic={topic} round={round} onReplayed={() => void topics.reload()} />}
    </div>
  );
}

interface Shown {
  reason: string;
  since: string;
  limit: number;
}

function filterOf(s: Shown): DeadLetterFilter {
  const reason = s.reason.trim();
  return { reason: reason || undefined, since: s.since || undefined };
}

/** In words: which letters `filter` takes (empty: all of them). */
function scopeOf(filter: DeadLetterFilter): string {
  return [
    filter.reason ? `whose reason contains “${filter.reason}”` : null,
    filter.since ? `set aside in ${SINCE.find((s) => s.value === filter.since)?.label ?? `or after ${formatDateTime(filter.since)}`}` : null,
  ]
    .filter(Boolean)
    .join(' and ');
}

/** A replay's dry run (for the filter it was made with, `since` as the gateway resolved it so
 *  that the replay covers the same period), then what the replay did. */
interface ReplayState {
  phase: 'preview' | 'done';
  filter: DeadLetterFilter;
  again: boolean;
  scope: string;
  result: Replayed;
}

/** The letters of one topic, newest first, and their replay. */
function TopicLetters({ topic, round, onReplayed }: { topic: string; round: number; onReplayed: () => void }) {
  const { api } = useServices();
  const [draft, setDraftState] = useState<Shown>({ reason: '', since: '', limit: 50 });
  const [shown, setShown] = useState<Shown>(draft);
  const letters = useResource<DeadLetter[]>(
    () => api.deadLetters(topic, { ...filterOf(shown), limit: shown.limit }),
    [api, topic, shown, round],
  );
  const [replay, setReplay] = useState<ReplayState | null>(null);
  // Also the letters an earlier replay sent.
  const [again, setAgain] = useState(false);
  const [busy, setBusy] = useState<'counting' | 'replaying' | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const confirmRef = useRef<HTMLButtonElement>(null);
  const closeRef = useRef<HTMLButtonElement>(null);
  const previewRef = useRef<HTMLButtonElement>(null);
  const noticeRef = useRef<HTMLParagraphElement>(null);
  // Bumped whenever what a dry run counted no longer stands (another filter, a refresh, the
  // page left): its late answer is dropped.
  const generation = useRef(0);
  const busyRef = useRef(busy);
  busyRef.current = busy;

  // A preview is for the letters as they were shown: a refresh or another filter drops it
  // (not while its replay runs).
  useEffect(() => {
    generation.current += 1;
    if (!busyRef.current) setReplay((r) => (r?.phase === 'preview' ? null : r));
  }, [round]);
  useEffect(
    () => () => {
      generation.current += 1;
    },
    [],
  );
  // The button pressed goes away: focus moves to what answers it, and back when it closes.
  const phase = replay?.phase ?? null;
  const lastPhase = useRef(phase);
  useEffect(() => {
    const was = lastPhase.current;
    lastPhase.current = phase;
    if (phase === was) return;
    if (phase === 'preview') (confirmRef.current ?? closeRef.current)?.focus();
    else if (phase === 'done') closeRef.current?.focus();
    else if (notice) noticeRef.current?.focus();
    else previewRef.current?.focus();
  }, [phase, notice]);

  // A count dropped or refused leaves the preview button where it was: focus back on it.
  const lastBusy = useRef(busy);
  useEffect(() => {
    const was = lastBusy.current;
    lastBusy.current = busy;
    if (was === 'counting' && busy === null && !replay) previewRef.current?.focus();
  }, [busy, replay]);

  function setDraft(next: Shown) {
    generation.current += 1;
    setDraftState(next);
    setReplay((r) => (r?.phase === 'preview' ? null : r));
  }

  function apply() {
    if (draft.reason.trim().length > 200) return;
    generation.current += 1;
    setReplay(null);
    setError(null);
    setNotice(null);
    setShown({ ...draft });
  }

  async function preview() {
    const mine = ++generation.current;
    setBusy('counting');
    setError(null);
    setNotice(null);
    const asked = filterOf(shown);
    try {
      const result = await api.replayDeadLetters(topic, asked, true, again);
      if (mine !== generation.current) return;
      // `24h` is counted back from the gateway's clock at each request: the replay sends the
      // instant the dry run counted from.
      const filter = { ...asked, since: result.since ?? asked.since };
      setReplay({ phase: 'preview', filter, again, scope: scopeOf(asked), result });
    } catch (e) {
      if (mine === generation.current) setError(e as Error);
    } finally {
      setBusy(null);
    }
  }

  async function confirm(state: ReplayState) {
    setBusy('replaying');
    setError(null);
    try {
      const result = await api.replayDeadLetters(topic, state.filter, false, state.again);
      setReplay({ ...state, phase: 'done', result });
      onReplayed();
      void letters.reload();
    } catch (e) {
      // The gateway carries a replay on when its caller goes away: one whose answer was lost
      // (or that failed part way) may have run, and running it again would send its records
      // twice.
      if (mayHaveRun(e)) {
        setReplay(null);
        setNotice(
          'The replay may have run (its answer was lost, or it failed part way; the gateway logs “dead letters replayed”). Look at the topic before running it again.',
        );
        onReplayed();
        void letters.reload();
      }
      setError(e as Error);
    } finally {
      setBusy(null);
    }
  }

  const current = !letters.loading && !letters.error ? letters.data : undefined;
  const rows = current ? [...current].reverse() : [];
  const scope = scopeOf(filterOf(shown));
  const tooLong = draft.reason.trim().length > 200;
  const unapplied = draft.reason.trim() !== shown.reason.trim() || draft.since !== shown.since;

  return (
    <section data-testid="dlq-letters" data-topic={topic}>
      <h3>{topic}</h3>
      <p className="muted small">{describeTopic(topic)}.</p>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          apply();
        }}
      >
        <fieldset className="bare" disabled={busy !== null}>
        <label>
          Reason contains{' '}
          <input
            value={draft.reason}
            onChange={(e) => setDraft({ ...draft, reason: e.target.value })}
            placeholder="e.g. 422, not registered"
            aria-invalid={tooLong || undefined}
            aria-describedby={tooLong ? 'dlq-form-error' : undefined}
            data-testid="dlq-reason"
          />
        </label>
        <label>
          Set aside in{' '}
          <select value={draft.since} onChange={(e) => setDraft({ ...draft, since: e.target.value })} data-testid="dlq-since">
            {SINCE.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Show{' '}
          <select value={draft.limit} onChange={(e) => setDraft({ ...draft, limit: Number(e.target.value) })} data-testid="dlq-limit">
            {LIMITS.map((n) => (
              <option key={n} value={n}>
                the newest {n}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={tooLong} data-testid="dlq-apply">
          Show
        </button>
        {tooLong && (
          <span className="error-text" role="alert" id="dlq-form-error" data-testid="dlq-form-error">
            At most 200 characters.
          </span>
        )}
        </fieldset>
      </form>
      <ErrorBox error={letters.error} />
      {letters.loading && (
        <p className="muted small" role="status">
          Reading the topic…
        </p>
      )}
      {current && rows.length === 0 && (
        <p className="muted" data-testid="dlq-empty">
          {scope ? `No letter ${scope}.` : 'This topic holds no letter.'}
        </p>
      )}
      {rows.length > 0 && (
        <table className="table" data-testid="dlq-table">
          <thead>
            <tr>
              <th>Set aside</th>
              <th>Reason</th>
              <th>From</th>
              <th>Key</th>
              <th className="num">Size</th>
              <th>Replayed</th>
              <th>Headers</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((l) => {
              const size = payloadSize(l);
              const headers = Object.entries(l.headers);
              return (
                <tr key={`${l.partition}/${l.offset}`} data-testid="dlq-letter" data-offset={l.offset}>
                  <td title={l.at ?? undefined}>{formatDateTime(l.at)}</td>
                  <td className="dlq-reason" data-testid="dlq-letter-reason">
                    {l.reason}
                  </td>
                  <td>{l.source ?? <span className="muted">a device</span>}</td>
                  <td className="mono">{l.key ?? '—'}</td>
                  <td className="num" title={size.cut ? `the first ${formatBytes(l.payloadBytes)} are kept` : undefined}>
                    {formatBytes(size.bytes)}
                    {size.cut ? ' (cut)' : ''}
                  </td>
                  <td title={l.replayedAt ?? undefined} data-testid="dlq-letter-replayed">
                    {l.replayedAt ? formatDateTime(l.replayedAt) : '—'}
                  </td>
                  <td>
                    {headers.length === 0 ? (
                      '—'
                    ) : (
                      <details>
                        <summary>
                          {headers.length} {headers.length === 1 ? 'header' : 'headers'}
                        </summary>
                        <dl className="dlq-headers">
                          {headers.map(([k, v]) => (
                            <div key={k}>
                              <dt className="mono">{k}</dt>
                              <dd>{v}</dd>
                            </div>
                          ))}
                        </dl>
                      </details>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {current && rows.length === shown.limit && (
        <p className="muted small" data-testid="dlq-more">
          The newest {shown.limit} are shown; a replay sends every letter {scope || 'of the topic'}.
        </p>
      )}

      <div className="dlq-replay" data-testid="dlq-replay">
        <h4>Send again</h4>
        <ErrorBox error={error} onDismiss={() => setError(null)} />
        {notice && (
          <p className="warning" role="status" tabIndex={-1} ref={noticeRef} data-testid="dlq-notice">
            {notice}
          </p>
        )}
        {!replay && (
          <div className="filters">
            <button
              type="button"
              ref={previewRef}
              onClick={() => void preview()}
              disabled={busy !== null || rows.length === 0 || unapplied}
              title={unapplied ? 'Show the letters of the filter first' : undefined}
              data-testid="dlq-preview"
            >
              {busy === 'counting' ? 'Counting…' : `Replay the letters ${scope || 'of this topic'}…`}
            </button>
            <label className="inline-check">
              <input type="checkbox" checked={again} disabled={busy !== null} onChange={(e) => setAgain(e.target.checked)} data-testid="dlq-again" /> again: also
              those an earlier replay sent
            </label>
          </div>
        )}
        {replay?.phase === 'preview' && (
          <div role="status" data-testid="dlq-preview-result">
            <p>
              Letters {replay.scope || 'of the whole topic'}
              {replay.again ? ', those an earlier replay sent too' : ', less those an earlier replay sent'}:
            </p>
            {describeReplay(replay.result, true).map((line) => (
              <p key={line}>{line}</p>
            ))}
            {publishedCount(replay.result) > 0 && (
              <p className="muted small">
                Their consumers read them once more: run it once the cause is mended. Letters set aside since this count
                are sent too; {replay.again ? 'those an earlier replay sent go once more.' : 'a later replay leaves what this one sends.'}
              </p>
            )}
            {publishedCount(replay.result) > 0 && (
              <button
                type="button"
                className="primary"
                ref={confirmRef}
                onClick={() => {
                  if (busy === null) void confirm(replay);
                }}
                aria-disabled={busy !== null}
                data-testid="dlq-confirm"
              >
                {busy === 'replaying' ? 'Replaying…' : `Replay ${publishedCount(replay.result)}`}
              </button>
            )}{' '}
            <button type="button" ref={closeRef} onClick={() => setReplay(null)} disabled={busy !== null} data-testid="dlq-cancel">
              {publishedCount(replay.result) > 0 ? 'Cancel' : 'Close'}
            </button>
          </div>
        )}
        {replay?.phase === 'done' && (
          <div role="status" data-testid="dlq-replayed" className={replay.result.stopped ? 'warning' : ''}>
            {describeReplay(replay.result, false).map((line) => (
              <p key={line}>{line}</p>
            ))}
            <button type="button" ref={closeRef} onClick={() => setReplay(null)} data-testid="dlq-done">
              Close
            </button>
          </div>
        )}
      </div>
    </section>
  );
}

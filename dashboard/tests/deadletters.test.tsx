import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import { App } from '../src/App';
import type { DeadLetter, DeadLetterTopic, Replayed } from '../src/api/types';
import { ApiError } from '../src/api/client';
import { describeReplay, describeTopic, formatBytes, mayHaveRun, payloadSize } from '../src/logic/deadLetters';
import { DEFAULT_TENANT, canSeeDeadLetters } from '../src/logic/roles';
import { deadLettersHref, parseRoute, routeHash } from '../src/logic/route';
import { DeadLettersPage } from '../src/pages/DeadLettersPage';
import { health, login, renderWith, setup } from './helpers';

const HOOK = 'dlq.orchestrator.webhook.cmms.alert';

const topics: DeadLetterTopic[] = [
  { topic: 'dlq.features', records: 0, partitions: 1 },
  { topic: HOOK, records: 2, partitions: 1 },
  { topic: 'dlq.ingestion', records: 1, partitions: 1 },
];

const letter = (offset: number, over: Partial<DeadLetter> = {}): DeadLetter => ({
  partition: 0,
  offset,
  at: `2026-12-07T1${offset}:00:00.000Z`,
  reason: `the receiver answered 422 Unprocessable Entity (${offset})`,
  source: `alerts.critical/0/${40 + offset}`,
  key: null,
  payloadBytes: 812,
  headers: { 'mantis.dlq.group': 'orchestrator.webhook.cmms.alert' },
  replayedAt: null,
  ...over,
});

const replayed = (over: Partial<Replayed> = {}): Replayed => ({
  published: { 'alerts.critical': 2 },
  filtered: 0,
  copies: 0,
  notReplayable: 0,
  alreadyReplayed: 0,
  refused: 0,
  stopped: null,
  since: null,
  ...over,
});

describe('dead letters, in words', () => {
  it('says what a topic holds and what a replay did', () => {
    expect(describeTopic(HOOK)).toBe('Alerts the receiver of webhook “cmms” refused (413, 415, 422)');
    expect(describeTopic('dlq.orchestrator.webhook.a.b.maintenance')).toContain('Scheduled work orders the receiver of webhook “a.b”');
    expect(describeTopic('dlq.preprocessing')).toContain('preprocessing could not read');
    expect(describeTopic('dlq.someone.else')).toBe('Records the consumer group “someone.else” could not process');
    expect(describeReplay(replayed(), true)).toEqual(['Would publish 2 records: 2 to alerts.critical.']);
    expect(describeReplay(replayed({ published: { a: 1, b: 0 } }), false)).toEqual(['Published 1 record: 1 to a.']);
    const partial = describeReplay(replayed({ published: {}, notReplayable: 1, copies: 2, refused: 1, filtered: 3, alreadyReplayed: 4, stopped: 'the bus is unavailable' }), false);
    expect(partial.join(' ')).toContain('4 letters were sent by an earlier replay: left.');
    expect(describeReplay(replayed({ alreadyReplayed: 1 }), true).join(' ')).toContain('1 letter was sent by an earlier replay: left (tick “again”');
    expect(partial[0]).toBe('Nothing was published.');
    expect(partial.join(' ')).toContain('1 letter is not replayable');
    expect(partial.join(' ')).toContain('2 letters are copies');
    expect(partial.join(' ')).toContain('The bus refused 1 record for good.');
    expect(partial.join(' ')).toContain('3 letters left out by the filter.');
    expect(partial.at(-1)).toContain('Stopped before the end: the bus is unavailable.');
    expect(describeReplay(replayed({ stopped: 'the bus is unavailable' }), true).at(-1)).toBe('The count stopped before the end: the bus is unavailable.');
    expect(formatBytes(812)).toBe('812 B');
    expect(formatBytes(2048)).toBe('2.0 KiB');
    expect(payloadSize(letter(1, { payloadBytes: 4096, headers: { 'mantis.dlq.payload-bytes': '70000' } }))).toEqual({ bytes: 70000, cut: true });
    expect(payloadSize(letter(1, { headers: { 'mantis.dlq.payload-bytes': 'junk' } }))).toEqual({ bytes: 812, cut: false });
    // A replay that failed may have published, unless the gateway refused it before it began.
    const gateway = (status: number) => new ApiError({ type: 'about:blank', title: 'x', status });
    expect(mayHaveRun(gateway(409))).toBe(false);
    expect(mayHaveRun(gateway(400))).toBe(false);
    expect(mayHaveRun(gateway(503))).toBe(false);
    expect(mayHaveRun(new ApiError({ title: 'Service Unavailable', status: 503 }))).toBe(true);
    expect(mayHaveRun(gateway(500))).toBe(true);
    expect(mayHaveRun(gateway(504))).toBe(true);
    expect(mayHaveRun(new ApiError({ title: 'Network error', status: 0 }))).toBe(true);
    expect(mayHaveRun(new SyntaxError('Unexpected end of JSON input'))).toBe(true);
  });

  it('routes to a topic and back', () => {
    expect(parseRoute('#/dead-letters')).toEqual({ name: 'dead-letters', topic: null });
    expect(parseRoute(`#/dead-letters/${HOOK}`)).toEqual({ name: 'dead-letters', topic: HOOK });
    expect(routeHash({ name: 'dead-letters', topic: 'dlq.a b' })).toBe('#/dead-letters/dlq.a%20b');
    expect(deadLettersHref(null)).toBe('#/dead-letters');
  });

  it('is for the admins of the default tenant alone', () => {
    expect(canSeeDeadLetters({ role: 'admin', tenantId: DEFAULT_TENANT })).toBe(true);
    expect(canSeeDeadLetters({ role: 'admin', tenantId: DEFAULT_TENANT.toUpperCase() })).toBe(true);
    expect(canSeeDeadLetters({ role: 'admin', tenantId: 't1' })).toBe(false);
    expect(canSeeDeadLetters({ role: 'manager', tenantId: DEFAULT_TENANT })).toBe(false);
    expect(canSeeDeadLetters(null)).toBe(false);
  });
});

describe('DeadLettersPage', () => {
  beforeEach(() => login('admin', 'root', DEFAULT_TENANT));

  it('lists the topics, those holding letters first, and shows a topic’s letters newest first', async () => {
    const { services, mf } = setup({
      'GET /api/v1/dead-letters': topics,
      [`GET /api/v1/dead-letters/${HOOK}`]: [letter(1, { replayedAt: '2026-12-07T12:00:00.000Z' }), letter(2, { source: null, key: 'P-101', headers: {} })],
    });
    renderWith(services, <DeadLettersPage topic={HOOK} />);
    const rows = await screen.findAllByTestId('dlq-topic');
    expect(rows.map((r) => r.dataset.topic)).toEqual(['dlq.ingestion', HOOK, 'dlq.features']);
    expect(rows.map((r) => within(r).getByRole('link').getAttribute('aria-current'))).toEqual([null, 'page', null]);
    expect(rows[2].className).toBe('muted');
    expect(within(rows[1]).getByRole('link').getAttribute('href')).toBe(`#/dead-letters/${HOOK}`);
    expect(screen.getByTestId('dlq-held').textContent).toBe('3 letters held.');

    const letters = await screen.findAllByTestId('dlq-letter');
    expect(letters.map((l) => l.dataset.offset)).toEqual(['2', '1']);
    expect(letters[0].textContent).toContain('a device');
    expect(letters[0].textContent).toContain('P-101');
    expect(letters[1].textContent).toContain('alerts.critical/0/41');
    expect(letters[1].textContent).toContain('812 B');
    expect(within(letters[1]).getByTestId('dlq-letter-replayed').getAttribute('title')).toBe('2026-12-07T12:00:00.000Z');
    expect(within(letters[0]).getByTestId('dlq-letter-replayed').textContent).toBe('—');
    expect(within(letters[1]).getByText('1 header')).toBeTruthy();
    expect(within(letters[1]).getByText('mantis.dlq.group')).toBeTruthy();
    const asked = mf.calls.find((c) => c.url.pathname === `/api/v1/dead-letters/${HOOK}`)!;
    expect(asked.url.searchParams.get('limit')).toBe('50');
    expect(asked.url.searchParams.has('reason')).toBe(false);
  });

  it('filters by reason and time, and replays what the filter takes after a dry run', async () => {
    const user = userEvent.setup();
    let held = topics;
    const { services, mf } = setup({
      'GET /api/v1/dead-letters': () => ({ body: held }),
      [`GET /api/v1/dead-letters/${HOOK}`]: (req: { url: URL }) => ({
        body: req.url.searchParams.get('reason') === 'nothing like it' ? [] : [letter(1), letter(2)],
      }),
      [`POST /api/v1/dead-letters/${HOOK}/replay`]: (req: { body: unknown }) => {
        const dry = (req.body as { dryRun: boolean }).dryRun;
        if (!dry) held = topics.map((t) => (t.topic === 'dlq.features' ? { ...t, records: 5 } : t));
        return { body: replayed({ filtered: 1, since: '2026-12-06T21:00:00.000Z' }) };
      },
    });
    renderWith(services, <DeadLettersPage topic={HOOK} />);
    await screen.findAllByTestId('dlq-letter');

    await user.type(screen.getByTestId('dlq-reason'), 'nothing like it');
    await user.click(screen.getByTestId('dlq-apply'));
    expect((await screen.findByTestId('dlq-empty')).textContent).toBe('No letter whose reason contains “nothing like it”.');

    await user.clear(screen.getByTestId('dlq-reason'));
    await user.type(screen.getByTestId('dlq-reason'), ' 422 ');
    await user.selectOptions(screen.getByTestId('dlq-since'), '24h');
    await user.selectOptions(screen.getByTestId('dlq-limit'), '200');
    await user.click(screen.getByTestId('dlq-apply'));
    await screen.findAllByTestId('dlq-letter');
    const asked = mf.calls.filter((c) => c.method === 'GET' && c.url.pathname === `/api/v1/dead-letters/${HOOK}`).at(-1)!;
    expect(Object.fromEntries(asked.url.searchParams)).toEqual({ reason: '422', since: '24h', limit: '200' });

    // A preview is dropped when the filter is changed, even before it is applied.
    await user.click(screen.getByTestId('dlq-preview'));
    await screen.findByTestId('dlq-preview-result');
    await user.selectOptions(screen.getByTestId('dlq-since'), '7d');
    expect(screen.queryByTestId('dlq-preview-result')).toBeNull();
    await user.selectOptions(screen.getByTestId('dlq-since'), '24h');

    // Not offered for a filter not shown yet.
    await user.type(screen.getByTestId('dlq-reason'), 'x');
    expect((screen.getByTestId('dlq-preview') as HTMLButtonElement).disabled).toBe(true);
    await user.type(screen.getByTestId('dlq-reason'), '{Backspace}');
    await user.click(screen.getByTestId('dlq-preview'));
    const preview = await screen.findByTestId('dlq-preview-result');
    expect(preview.textContent).toContain('Letters whose reason contains “422” and set aside in the last 24 h, less those an earlier replay sent:');
    expect(preview.textContent).toContain('Would publish 2 records: 2 to alerts.critical.');
    expect(preview.textContent).toContain('1 letter left out by the filter.');
    expect(document.activeElement).toBe(screen.getByTestId('dlq-confirm'));
    // The period as the gateway resolved it for the count: the replay covers the same one.
    const dry = mf.calls.at(-1)!.body as { dryRun: boolean; reason: string; since: string };
    expect(dry).toEqual({ dryRun: true, reason: '422', since: '24h' });

    await user.click(screen.getByTestId('dlq-confirm'));
    const done = await screen.findByTestId('dlq-replayed');
    expect(done.textContent).toContain('Published 2 records: 2 to alerts.critical.');
    const replays = mf.calls.filter((c) => c.method === 'POST');
    expect(replays.at(-1)!.body).toEqual({ dryRun: false, reason: '422', since: '2026-12-06T21:00:00.000Z' });
    expect(replays.filter((c) => !(c.body as { dryRun: boolean }).dryRun)).toHaveLength(1);
    // The topics are read again (the counts a replay set aside again show).
    await waitFor(() => expect(screen.getByTestId('dlq-held').textContent).toBe('8 letters held.'));
  });

  it('offers nothing to confirm when nothing would be published, and says why a replay was refused', async () => {
    const user = userEvent.setup();
    let answer: { status?: number; body: unknown; headers?: Record<string, string> } = {
      body: replayed({ published: {}, notReplayable: 1 }),
    };
    const { services, mf } = setup({
      'GET /api/v1/dead-letters': topics,
      'GET /api/v1/dead-letters/dlq.ingestion': [letter(1, { source: null })],
      'POST /api/v1/dead-letters/dlq.ingestion/replay': () => answer,
    });
    renderWith(services, <DeadLettersPage topic="dlq.ingestion" />);
    await screen.findAllByTestId('dlq-letter');
    await user.click(screen.getByTestId('dlq-preview'));
    const preview = await screen.findByTestId('dlq-preview-result');
    expect(preview.textContent).toContain('Nothing would be published.');
    expect(preview.textContent).toContain('1 letter is not replayable');
    expect(screen.queryByTestId('dlq-confirm')).toBeNull();
    await user.click(screen.getByTestId('dlq-cancel'));

    answer = {
      status: 503,
      body: { title: 'Service Unavailable', status: 503, detail: 'dead-letter topics are being read by other requests; try again' },
      headers: { 'Retry-After': '10' },
    };
    await user.click(screen.getByTestId('dlq-preview'));
    expect((await screen.findByTestId('error')).textContent).toContain('being read by other requests');
    expect(screen.queryByTestId('dlq-preview-result')).toBeNull();
    expect(mf.calls.filter((c) => c.method === 'POST')).toHaveLength(2);
  });

  it('does not offer the same replay again when its answer was lost', async () => {
    const user = userEvent.setup();
    let lost = false;
    const { services, mf } = setup({
      'GET /api/v1/dead-letters': topics,
      [`GET /api/v1/dead-letters/${HOOK}`]: [letter(1)],
      [`POST /api/v1/dead-letters/${HOOK}/replay`]: () =>
        lost ? { status: 504, body: { title: 'Gateway Timeout', status: 504, detail: 'the proxy gave up' } } : { body: replayed() },
    });
    renderWith(services, <DeadLettersPage topic={HOOK} />);
    await screen.findAllByTestId('dlq-letter');
    await user.click(screen.getByTestId('dlq-preview'));
    await screen.findByTestId('dlq-confirm');
    lost = true;
    await user.click(screen.getByTestId('dlq-confirm'));
    const notice = await screen.findByTestId('dlq-notice');
    expect(notice.textContent).toContain('The replay may have run');
    await waitFor(() => expect(document.activeElement).toBe(notice));
    expect(screen.queryByTestId('dlq-confirm')).toBeNull();
    expect(screen.getByTestId('error').textContent).toContain('the proxy gave up');
    expect(mf.calls.filter((c) => c.method === 'POST')).toHaveLength(2);
  });

  it('sends again the letters an earlier replay sent when asked', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup({
      'GET /api/v1/dead-letters': topics,
      [`GET /api/v1/dead-letters/${HOOK}`]: [letter(1, { replayedAt: '2026-12-07T12:00:00.000Z' })],
      [`POST /api/v1/dead-letters/${HOOK}/replay`]: (req: { body: unknown }) =>
        (req.body as { again?: boolean }).again ? { body: replayed({ published: { 'alerts.critical': 1 } }) } : { body: replayed({ published: {}, alreadyReplayed: 1 }) },
    });
    renderWith(services, <DeadLettersPage topic={HOOK} />);
    await screen.findAllByTestId('dlq-letter');
    await user.click(screen.getByTestId('dlq-preview'));
    let preview = await screen.findByTestId('dlq-preview-result');
    expect(preview.textContent).toContain('less those an earlier replay sent');
    expect(preview.textContent).toContain('1 letter was sent by an earlier replay');
    expect(screen.queryByTestId('dlq-confirm')).toBeNull();
    await user.click(screen.getByTestId('dlq-cancel'));
    await user.click(screen.getByTestId('dlq-again'));
    await user.click(screen.getByTestId('dlq-preview'));
    preview = await screen.findByTestId('dlq-preview-result');
    expect(preview.textContent).toContain('those an earlier replay sent too');
    await user.click(screen.getByTestId('dlq-confirm'));
    await screen.findByTestId('dlq-replayed');
    expect(mf.calls.filter((c) => c.method === 'POST').map((c) => (c.body as { again?: boolean }).again)).toEqual([undefined, true, true]);
  });

  it('says when the gateway refuses, and checks the reason’s length here', async () => {
    const user = userEvent.setup();
    const { services, mf } = setup({
      'GET /api/v1/dead-letters': () => ({ status: 403, body: { title: 'Forbidden', status: 403, detail: 'only the admins of the installation’s default tenant see them' } }),
      'GET /api/v1/dead-letters/dlq.gone': () => ({ status: 404, body: { title: 'Not Found', status: 404, detail: '`dlq.gone` is not a dead-letter topic' } }),
    });
    renderWith(services, <DeadLettersPage topic="dlq.gone" />);
    await waitFor(() => expect(screen.getAllByTestId('error').length).toBe(2));
    expect(screen.getAllByTestId('error').map((e) => e.textContent).join(' ')).toContain('is not a dead-letter topic');
    await user.type(screen.getByTestId('dlq-reason'), 'x'.repeat(201));
    expect(screen.getByTestId('dlq-form-error').textContent).toContain('At most 200');
    expect((screen.getByTestId('dlq-apply') as HTMLButtonElement).disabled).toBe(true);
    expect(mf.calls).toHaveLength(2);
  });
});

describe('the dead letters in the app', () => {
  beforeEach(() => {
    localStorage.clear();
    location.hash = '#/overview';
  });

  it('links the page for the default tenant’s admins only', async () => {
    login('admin', 'root', DEFAULT_TENANT);
    const { services } = setup({
      'GET /api/v1/overview': [health('P1', 'OK')],
      'GET /api/v1/dead-letters': topics,
    });
    const { unmount } = renderWith(services, <App services={services} />);
    const link = await screen.findByTestId('nav-dead-letters');
    await userEvent.setup().click(link);
    await screen.findAllByTestId('dlq-topic');
    unmount();

    login('admin', 'other', 't1');
    location.hash = '#/dead-letters';
    const other = setup({ 'GET /api/v1/overview': [health('P1', 'OK')] });
    renderWith(other.services, <App services={other.services} />);
    expect((await screen.findByText(/only the admins of the installation/)).textContent).toContain('default tenant');
    expect(screen.queryByTestId('nav-dead-letters')).toBeNull();
    expect(other.mf.calls.some((c) => c.url.pathname.startsWith('/api/v1/dead-letters'))).toBe(false);
  });
});

import { describe, expect, it, vi } from 'vitest';
import { ApiClient, ApiError, buildQuery, parseProblem, problemMessage } from '../src/api/client';
import { mockFetch } from './helpers';

function client(routes: Parameters<typeof mockFetch>[0], token: string | null = 'tok') {
  const mf = mockFetch(routes);
  const onUnauthorized = vi.fn();
  const onReachability = vi.fn();
  const api = new ApiClient({ fetchImpl: mf.fetch, getToken: () => token, onUnauthorized, onReachability });
  return { api, mf, onUnauthorized, onReachability };
}

describe('ApiClient', () => {
  it('sends the bearer token on /api/v1 calls', async () => {
    const { api, mf } = client({ 'GET /api/v1/overview': [] });
    await api.overview();
    expect(mf.calls[0].headers.Authorization).toBe('Bearer tok');
    expect(mf.calls[0].headers.Accept).toBe('application/json');
  });

  it('does not send a token on login and returns the session', async () => {
    const { api, mf } = client({
      'POST /api/v1/auth/login': { token: 'jwt', expiresAt: 'x', user: { username: 'u', displayName: 'U', role: 'operator', tenantId: 't' } },
    });
    const res = await api.login('u', 'p');
    expect(res.token).toBe('jwt');
    expect(mf.calls[0].headers.Authorization).toBeUndefined();
    expect(mf.calls[0].body).toEqual({ username: 'u', password: 'p' });
  });

  it('parses a problem body and exposes its detail and field errors', async () => {
    const { api } = client({
      'POST /api/v1/work-orders': () => ({
        status: 400,
        body: { type: 'about:blank', title: 'Bad Request', status: 400, detail: 'description is empty', errors: [{ pointer: '/description', detail: 'must not be empty' }] },
      }),
    });
    const err = await api.createWorkOrder({ assetId: 'a', description: '', priority: 'LOW' }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(400);
    expect(err.problem.detail).toBe('description is empty');
    expect(err.message).toBe('description is empty (/description: must not be empty)');
  });

  it('calls onUnauthorized on 401 outside login', async () => {
    const { api, onUnauthorized } = client({
      'GET /api/v1/alerts': () => ({ status: 401, body: { title: 'Unauthorized', status: 401, detail: 'token expired' } }),
    });
    await expect(api.alerts()).rejects.toMatchObject({ status: 401, message: 'token expired' });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('does not treat a login 401 as an expired session', async () => {
    const { api, onUnauthorized } = client({
      'POST /api/v1/auth/login': () => ({ status: 401, body: { title: 'Unauthorized', status: 401, detail: 'bad credentials' } }),
    });
    await expect(api.login('u', 'bad')).rejects.toMatchObject({ status: 401, message: 'bad credentials' });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('403 carries the detail and keeps the session', async () => {
    const { api, onUnauthorized } = client({
      'POST /api/v1/work-orders/w1/transition': () => ({ status: 403, body: { title: 'Forbidden', status: 403, detail: 'operator may not transition' } }),
    });
    await expect(api.transitionWorkOrder('w1', 'SCHEDULED')).rejects.toMatchObject({ status: 403, message: 'operator may not transition' });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('reads Retry-After on 429', async () => {
    const { api } = client({
      'GET /api/v1/overview': () => ({ status: 429, body: { title: 'Too Many Requests', status: 429 }, headers: { 'Retry-After': '7' } }),
    });
    const err = await api.overview().catch((e) => e);
    expect(err.retryAfter).toBe(7);
    expect(err.message).toBe('Too Many Requests');
  });

  it('reports a network failure as status 0 and unreachable', async () => {
    const { api, mf, onReachability } = client({});
    mf.down = true;
    const err = await api.overview().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(0);
    expect(onReachability).toHaveBeenCalledWith(false, false);
  });

  it('builds list queries (status list, limit) and skips empty params', async () => {
    const { api, mf } = client({ 'GET /api/v1/work-orders': [] });
    await api.workOrders({ status: ['OPEN', 'IN_PROGRESS'], assetId: '', limit: 50 });
    expect(mf.calls[0].url.searchParams.get('status')).toBe('OPEN,IN_PROGRESS');
    expect(mf.calls[0].url.searchParams.get('limit')).toBe('50');
    expect(mf.calls[0].url.searchParams.has('assetId')).toBe(false);
  });

  it('sends readings range and points', async () => {
    const { api, mf } = client({ 'GET /api/v1/sensors/s1/readings': { sensorId: 's1', from: 'a', to: 'b', bucketSecs: 1, points: [] } });
    await api.readings('s1', { from: '2026-12-03T07:00:00.000Z', to: '2026-12-03T08:00:00.000Z', points: 640 });
    const q = mf.calls[0].url.searchParams;
    expect(q.get('from')).toBe('2026-12-03T07:00:00.000Z');
    expect(q.get('points')).toBe('640');
  });

  it('downloads the KPI CSV with the bearer token and format=csv', async () => {
    const { api, mf } = client({ 'GET /api/v1/kpis': () => ({ text: 'asset,availability\nP1,0.9\n' }) });
    const blob = await api.kpisCsv({ from: 'a', to: 'b' });
    expect(await blob.text()).toContain('P1,0.9');
    expect(mf.calls[0].url.searchParams.get('format')).toBe('csv');
    expect(mf.calls[0].headers.Accept).toBe('text/csv');
    expect(mf.calls[0].headers.Authorization).toBe('Bearer tok');
  });
});

describe('problem helpers', () => {
  it('parseProblem tolerates non-JSON bodies', async () => {
    const p = await parseProblem(new Response('upstream down', { status: 502, statusText: 'Bad Gateway' }));
    expect(p).toMatchObject({ status: 502, detail: 'upstream down' });
  });
  it('problemMessage falls back to title then status', () => {
    expect(problemMessage({ status: 500, title: 'Internal' })).toBe('Internal');
    expect(problemMessage({ status: 500 })).toBe('HTTP 500');
  });
  it('buildQuery', () => {
    expect(buildQuery({ a: 1, b: undefined, c: '', d: 'x y' })).toBe('?a=1&d=x+y');
    expect(buildQuery({})).toBe('');
  });
});

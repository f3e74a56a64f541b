import { screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { setSession } from '../src/api/session';
import { useAssets } from '../src/services';
import { asset, login, renderWith, setup } from './helpers';

function Names() {
  const assets = useAssets();
  return <p data-testid="names">{[...assets.values()].map((a) => a.code).join(',')}</p>;
}

describe('useAssets', () => {
  it('forgets the cached assets when another user takes the screen', async () => {
    login('manager', 'alice');
    const { services, mf } = setup({ 'GET /api/v1/assets': [asset('P1')] });
    renderWith(services, <Names />);
    await waitFor(() => expect(screen.getByTestId('names').textContent).toBe('P1'));
    expect(services.assetCache.list).not.toBeNull();
    // The same user again (a new token): kept.
    setSession({
      token: 'tok-456',
      expiresAt: '2099-01-01T00:00:00.000Z',
      user: { username: 'alice', displayName: 'ALICE', role: 'manager', tenantId: 't1' },
    });
    expect(services.assetCache.list).not.toBeNull();
    // Someone else, of another tenant, after the session ended: not the previous one's list.
    setSession({
      token: 'tok-789',
      expiresAt: '2099-01-01T00:00:00.000Z',
      user: { username: 'bob', displayName: 'BOB', role: 'manager', tenantId: 't2' },
    });
    expect(services.assetCache.list).toBeNull();
    expect(mf.calls.filter((c) => c.url.pathname === '/api/v1/assets')).toHaveLength(1);
  });
});

describe('useResource', () => {
  it('does not put back an older state read while a change was made', async () => {
    const { act, renderHook } = await import('@testing-library/react');
    const { useResource } = await import('../src/services');
    const answers: ((v: string[]) => void)[] = [];
    const loader = () => new Promise<string[]>((resolve) => answers.push(resolve));
    const { result } = renderHook(() => useResource(loader, []));
    await act(async () => answers[0](['open']));
    expect(result.current.data).toEqual(['open']);
    // A poll is in flight when the user's change lands.
    let polled: Promise<void> | undefined;
    act(() => {
      polled = result.current.reload();
    });
    const start = (prev: string[] | undefined) => (prev ?? []).map((x) => (x === 'open' ? 'started' : x));
    act(() => result.current.setData(start));
    expect(result.current.data).toEqual(['started']);
    // The answer was read before the change: the change is made again on it, and what else
    // it brings is kept.
    await act(async () => answers[1](['open', 'new']));
    await act(async () => polled);
    expect(result.current.data).toEqual(['started', 'new']);
    expect(answers, 'applied, not thrown away').toHaveLength(2);
    // With no reload in flight, changes are not kept for later.
    act(() => result.current.setData((prev) => [...(prev ?? []), 'live']));
    act(() => {
      polled = result.current.reload();
    });
    await act(async () => answers[2](['started', 'new', 'live']));
    await act(async () => polled);
    expect(result.current.data).toEqual(['started', 'new', 'live']);
  });
});

describe('PageBoundary', () => {
  it('shows a page that failed as such, the rest standing, and clears on another route', async () => {
    const { render } = await import('@testing-library/react');
    const { PageBoundary } = await import('../src/components/PageBoundary');
    const Broken = () => {
      throw new Error('boom');
    };
    const quiet = console.error;
    console.error = () => undefined;
    try {
      const { rerender } = render(
        <div>
          <nav data-testid="nav">nav</nav>
          <PageBoundary resetKey="#/assets/x">
            <Broken />
          </PageBoundary>
        </div>,
      );
      expect(screen.getByTestId('page-failed').textContent).toContain('boom');
      expect(screen.getByTestId('nav')).toBeTruthy();
      rerender(
        <div>
          <nav data-testid="nav">nav</nav>
          <PageBoundary resetKey="#/alerts">
            <p data-testid="fine">fine</p>
          </PageBoundary>
        </div>,
      );
      expect(screen.getByTestId('fine')).toBeTruthy();
    } finally {
      console.error = quiet;
    }
  });
});

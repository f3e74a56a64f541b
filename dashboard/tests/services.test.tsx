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
    act(() => result.current.setData(() => ['started']));
    await act(async () => answers[1](['open']));
    expect(result.current.data, 'the stale answer is not applied').toEqual(['started']);
    // It is read again once, and that answer, newer than the change, is.
    expect(answers).toHaveLength(3);
    await act(async () => answers[2](['started', 'new']));
    await act(async () => polled);
    expect(result.current.data).toEqual(['started', 'new']);
  });
});

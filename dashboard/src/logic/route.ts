// Hash routes: #/overview, #/alerts, #/assets/:id, #/work-orders, #/plan, #/stores, #/kpis, #/account,
// #/access, #/dead-letters[/:topic], #/login, #/kiosk.

export type Route =
  | { name: 'login' }
  | { name: 'overview' }
  | { name: 'alerts' }
  | { name: 'asset'; id: string }
  | { name: 'work-orders' }
  | { name: 'plan' }
  | { name: 'stores' }
  | { name: 'kpis' }
  | { name: 'account' }
  | { name: 'access' }
  | { name: 'dead-letters'; topic: string | null }
  | { name: 'kiosk' };

/** `s` URI-decoded; as it is when it is not valid percent-encoding (a hand-typed `#/assets/%`). */
function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/^\/+/, '').split('?')[0];
  const [head, arg] = path.split('/');
  switch (head) {
    case 'login':
      return { name: 'login' };
    case 'alerts':
      return { name: 'alerts' };
    case 'assets':
      return arg ? { name: 'asset', id: decoded(arg) } : { name: 'overview' };
    case 'work-orders':
      return { name: 'work-orders' };
    case 'plan':
      return { name: 'plan' };
    case 'stores':
      return { name: 'stores' };
    case 'kpis':
      return { name: 'kpis' };
    case 'account':
      return { name: 'account' };
    case 'access':
      return { name: 'access' };
    case 'dead-letters':
      return { name: 'dead-letters', topic: arg ? decoded(arg) : null };
    case 'kiosk':
      return { name: 'kiosk' };
    default:
      return { name: 'overview' };
  }
}

export function routeHash(r: Route): string {
  if (r.name === 'asset') return `#/assets/${encodeURIComponent(r.id)}`;
  if (r.name === 'dead-letters' && r.topic) return deadLettersHref(r.topic);
  return `#/${r.name}`;
}

/** The dead letters of `topic`, or the topic list. */
export function deadLettersHref(topic?: string | null): string {
  return topic ? `#/dead-letters/${encodeURIComponent(topic)}` : '#/dead-letters';
}

export function assetHref(id: string): string {
  return `#/assets/${encodeURIComponent(id)}`;
}

/** Pages the operator kiosk keeps (everything else goes back to the kiosk view). */
export function kioskAllows(r: Route): boolean {
  return r.name === 'kiosk' || r.name === 'overview' || r.name === 'alerts' || r.name === 'login';
}

import { formatClock } from '../logic/format';
import { useConnectivity } from '../services';

/** "OFFLINE — last update hh:mm:ss" while the WebSocket or HTTP connection is down. */
export function OfflineBanner() {
  const c = useConnectivity();
  if (!c.offline) return null;
  return (
    <div className="offline-banner" role="status" aria-live="assertive" data-testid="offline-banner">
      OFFLINE — last update {formatClock(c.lastUpdate)} · reconnecting…
    </div>
  );
}

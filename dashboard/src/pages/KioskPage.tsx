import { AlertsPage } from './AlertsPage';
import { OverviewPage } from './OverviewPage';

/** Operator kiosk: the overview and the alerts side by side, large touch targets, dark. */
export function KioskPage() {
  return (
    <div className="kiosk-grid" data-testid="kiosk-page">
      <OverviewPage compact />
      <AlertsPage compact />
    </div>
  );
}

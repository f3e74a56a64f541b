import { useEffect, useState } from 'react';
import { clearSession } from './api/session';
import { OfflineBanner } from './components/OfflineBanner';
import { PageBoundary } from './components/PageBoundary';
import { kioskAllows, parseRoute, type Route } from './logic/route';
import { AccessPage } from './pages/AccessPage';
import { AccountPage } from './pages/AccountPage';
import { AlertsPage } from './pages/AlertsPage';
import { AssetPage } from './pages/AssetPage';
import { DeadLettersPage } from './pages/DeadLettersPage';
import { KioskPage } from './pages/KioskPage';
import { KpiPage } from './pages/KpiPage';
import { LoginPage } from './pages/LoginPage';
import { OverviewPage } from './pages/OverviewPage';
import { PlanPage } from './pages/PlanPage';
import { StoresPage } from './pages/StoresPage';
import { can, canSeeDeadLetters } from './logic/roles';
import { WorkOrdersPage } from './pages/WorkOrdersPage';
import { ServicesContext, useLiveStatus, useSession, type Services } from './services';
import { loadKiosk, loadTheme, saveKiosk, saveTheme, ThemeContext, type Theme } from './theme';

function useHash(): string {
  const [hash, setHash] = useState(() => location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

export function App({ services }: { services: Services }) {
  return (
    <ServicesContext.Provider value={services}>
      <Shell services={services} />
    </ServicesContext.Provider>
  );
}

function Shell({ services }: { services: Services }) {
  const session = useSession();
  const hash = useHash();
  const route = parseRoute(hash);
  const [kiosk, setKiosk] = useState(() => loadKiosk() || route.name === 'kiosk');
  const [themePref, setThemePref] = useState<Theme>(loadTheme);
  const theme: Theme = kiosk ? 'dark' : themePref;

  useEffect(() => {
    if (route.name === 'kiosk') {
      setKiosk(true);
      saveKiosk(true);
    }
  }, [route.name, kiosk]);

  useEffect(() => {
    const root = document.documentElement;
    root.dataset.theme = theme;
    root.classList.toggle('kiosk', kiosk);
  }, [theme, kiosk]);

  // The live connection follows the session.
  const token = session?.token;
  useEffect(() => {
    if (token) services.live.connect();
    else services.live.close();
  }, [token, services]);

  useEffect(() => {
    if (!session && route.name !== 'login') location.hash = '#/login';
  }, [session, route.name]);

  if (!session || route.name === 'login') {
    return (
      <ThemeContext.Provider value={theme}>
        <LoginPage onLoggedIn={() => (location.hash = kiosk ? '#/kiosk' : '#/overview')} />
      </ThemeContext.Provider>
    );
  }

  const logout = () => {
    services.live.close();
    services.connectivity.reset();
    services.assetCache.list = null;
    clearSession();
    location.hash = '#/login';
  };
  const toggleKiosk = () => {
    const on = !kiosk;
    setKiosk(on);
    saveKiosk(on);
    location.hash = on ? '#/kiosk' : '#/overview';
  };

  return (
    <ThemeContext.Provider value={theme}>
      <div className={`app${kiosk ? ' kiosk' : ''}`}>
        <header className="topbar">
          <a className="brand" href={kiosk ? '#/kiosk' : '#/overview'}>
            <span className="logo">◆</span> MANTIS
          </a>
          <nav>
            {kiosk ? (
              <>
                <NavLink route={route} to="kiosk" label="Plant" />
                <NavLink route={route} to="overview" label="Overview" />
                <NavLink route={route} to="alerts" label="Alerts" />
              </>
            ) : (
              <>
                <NavLink route={route} to="overview" label="Overview" />
                <NavLink route={route} to="alerts" label="Alerts" />
                <NavLink route={route} to="work-orders" label="Work orders" />
                {can(session.user.role, 'viewPlan') && <NavLink route={route} to="plan" label="Plan" />}
                {can(session.user.role, 'viewStores') && <NavLink route={route} to="stores" label="Stores" />}
                <NavLink route={route} to="kpis" label="KPIs" />
                {can(session.user.role, 'manageUsers') && <NavLink route={route} to="access" label="Access" />}
                {canSeeDeadLetters(session.user) && <NavLink route={route} to="dead-letters" label="Dead letters" />}
              </>
            )}
          </nav>
          <div className="topbar-right">
            <LiveDot />
            <a className="user" href="#/account" title={`${session.user.username}: my account, password`} data-testid="nav-account">
              {session.user.displayName || session.user.username} <span className="muted small">({session.user.role})</span>
            </a>
            {!kiosk && (
              <button type="button" onClick={() => {
                const t = themePref === 'dark' ? 'light' : 'dark';
                setThemePref(t);
                saveTheme(t);
              }} title="Light / dark theme" data-testid="theme-toggle">
                {themePref === 'dark' ? 'Light' : 'Dark'}
              </button>
            )}
            <button type="button" onClick={toggleKiosk} data-testid="kiosk-toggle">
              {kiosk ? 'Exit kiosk' : 'Kiosk'}
            </button>
            <button type="button" onClick={logout} data-testid="logout">
              Log out
            </button>
          </div>
        </header>
        <OfflineBanner />
        <main>
          <PageBoundary resetKey={hash}>{renderPage(route, kiosk, can(session.user.role, 'manageUsers'), canSeeDeadLetters(session.user))}</PageBoundary>
        </main>
      </div>
    </ThemeContext.Provider>
  );
}

function renderPage(route: Route, kiosk: boolean, admin: boolean, deadLetters: boolean) {
  if (kiosk && !kioskAllows(route)) return <KioskPage />;
  switch (route.name) {
    case 'kiosk':
      return <KioskPage />;
    case 'alerts':
      return <AlertsPage compact={kiosk} />;
    case 'asset':
      return <AssetPage key={route.id} id={route.id} />;
    case 'work-orders':
      return <WorkOrdersPage />;
    case 'plan':
      return <PlanPage />;
    case 'stores':
      return <StoresPage />;
    case 'kpis':
      return <KpiPage />;
    case 'account':
      return <AccountPage />;
    case 'access':
      return admin ? <AccessPage /> : <p className="muted page">Only an admin manages users and API keys.</p>;
    case 'dead-letters':
      return deadLetters ? (
        <DeadLettersPage topic={route.topic} />
      ) : (
        <p className="muted page">Dead letters hold every tenant&apos;s records: only the admins of the installation&apos;s default tenant see them.</p>
      );
    default:
      return <OverviewPage compact={kiosk} />;
  }
}

function NavLink({ route, to, label }: { route: Route; to: Route['name']; label: string }) {
  const active = route.name === to || (to === 'overview' && route.name === 'asset');
  return (
    <a href={`#/${to}`} className={active ? 'active' : ''} aria-current={active ? 'page' : undefined} data-testid={`nav-${to}`}>
      {label}
    </a>
  );
}

function LiveDot() {
  const s = useLiveStatus();
  return (
    <span className={`live-dot ${s}`} title={`live: ${s}`} data-testid="live-status" data-status={s}>
      ● {s === 'online' ? 'live' : s}
    </span>
  );
}

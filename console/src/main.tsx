// The console: the service's own web interface (contract §15). One page per path; the shell
// (header, navigation, main landmark) appears once signed in.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { api, setToken, token, whenUnauthorized } from './api';
import { navigate, useLocation } from './router';
import { AFTER_SIGN_IN, Me, User } from './session';
import { ErrorNote, Loading, asApiError } from './ui';
import { AuthCallback, Login } from './pages/auth';
import { IntegrationDetail, Integrations, OAuthReturn } from './pages/integrations';
import { Search } from './pages/search';
import { Bindings, SlackAccounts, SlackLink, Telegram } from './pages/channels';
import { Mcp, Sessions, Tokens } from './pages/account';
import { AdminInvites, AdminOrg, AdminProviders, AdminRepos, AdminSlack, AdminWebhooks } from './pages/admin';

type Route = { path: RegExp; page: (m: RegExpMatchArray) => preact.JSX.Element; admin?: boolean };
const routes: Route[] = [
  { path: /^\/console\/?$/, page: () => <Integrations /> },
  { path: /^\/console\/integrations\/?$/, page: () => <Integrations /> },
  { path: /^\/console\/integrations\/([^/]+)$/, page: (m) => <IntegrationDetail id={decodeURIComponent(m[1])} /> },
  { path: /^\/console\/oauth\/([^/]+)$/, page: (m) => <OAuthReturn service={decodeURIComponent(m[1])} /> },
  { path: /^\/console\/search$/, page: () => <Search /> },
  { path: /^\/console\/telegram$/, page: () => <Telegram /> },
  { path: /^\/console\/slack$/, page: () => <SlackAccounts /> },
  { path: /^\/slack\/link$/, page: () => <SlackLink /> },
  { path: /^\/console\/channels$/, page: () => <Bindings /> },
  { path: /^\/console\/tokens$/, page: () => <Tokens /> },
  { path: /^\/console\/sessions$/, page: () => <Sessions /> },
  { path: /^\/console\/mcp$/, page: () => <Mcp /> },
  { path: /^\/console\/admin\/invites$/, page: () => <AdminInvites />, admin: true },
  { path: /^\/console\/admin\/org$/, page: () => <AdminOrg />, admin: true },
  { path: /^\/console\/admin\/providers$/, page: () => <AdminProviders />, admin: true },
  { path: /^\/console\/admin\/repos$/, page: () => <AdminRepos />, admin: true },
  { path: /^\/console\/admin\/webhooks$/, page: () => <AdminWebhooks />, admin: true },
  { path: /^\/settings\/slack$/, page: () => <AdminSlack />, admin: true },
];

const NAV: [string, string][] = [
  ['/console/integrations', 'Integrations'],
  ['/console/search', 'Search'],
  ['/console/telegram', 'Telegram'],
  ['/console/slack', 'Slack'],
  ['/console/channels', 'Channels'],
  ['/console/tokens', 'API tokens'],
  ['/console/mcp', 'MCP'],
  ['/console/sessions', 'Sessions'],
];
const ADMIN_NAV: [string, string][] = [
  ['/console/admin/invites', 'Invites'],
  ['/console/admin/org', 'Organization'],
  ['/console/admin/providers', 'Model providers'],
  ['/console/admin/repos', 'Repositories'],
  ['/console/admin/webhooks', 'Webhook inbox'],
  ['/settings/slack', 'Slack workspaces'],
];

function Shell({ user, path, children }: { user: User; path: string; children: preact.ComponentChildren }) {
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [path]);
  const link = ([href, label]: [string, string]) => {
    const current = path === href || path.startsWith(`${href}/`) || (href === '/console/integrations' && path === '/console');
    return (
      <li key={href}>
        <a href={href} aria-current={current ? 'page' : undefined}>{label}</a>
      </li>
    );
  };
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="/console/integrations">Integrations console</a>
        <button type="button" class="menu secondary small" aria-expanded={open} aria-controls="nav" onClick={() => setOpen(!open)}>Menu</button>
        <p class="who small">
          <span>{user.name ?? user.email}</span>
          {user.role === 'admin' && <span class="badge info">admin</span>}
        </p>
      </header>
      <div class="layout">
        <nav id="nav" aria-label="Console" class={open ? 'open' : ''}>
          <ul>{NAV.map(link)}</ul>
          {user.role === 'admin' && (
            <>
              <h2 class="nav-head">Administration</h2>
              <ul>{ADMIN_NAV.map(link)}</ul>
            </>
          )}
        </nav>
        <main id="main">{children}</main>
      </div>
    </>
  );
}

function App() {
  const loc = useLocation();
  const path = loc.split('?')[0];
  const [me, setMe] = useState<{ user?: User; error?: any; checked: boolean }>({ checked: false });

  const loadMe = () => {
    if (!token()) return setMe({ checked: true });
    setMe((m) => ({ ...m, checked: false }));
    api<{ user: User }>('GET', '/api/me').then(
      (r) => setMe({ user: r.user, checked: true }),
      (e) => {
        if (asApiError(e).status === 401) setToken(null);
        setMe({ checked: true, error: asApiError(e).status === 401 ? undefined : asApiError(e) });
      },
    );
  };
  useEffect(loadMe, []);
  useEffect(() => {
    whenUnauthorized(() => {
      setToken(null);
      setMe({ checked: true });
      navigate('/login?error=session_ended', { replace: true });
    });
  }, []);

  // Pages that work without a session.
  if (path === '/login') return <main id="main" class="bare"><Login /></main>;
  if (path === '/auth/callback') return <main id="main" class="bare"><AuthCallback onSignedIn={loadMe} /></main>;
  if (path === '/' ) {
    navigate('/console/integrations', { replace: true });
    return null;
  }
  if (!me.checked) return <main id="main" class="bare"><Loading what="Checking your session" /></main>;
  if (me.error) return <main id="main" class="bare"><h1>Console</h1><ErrorNote error={me.error} onRetry={loadMe} /></main>;
  if (!me.user) {
    sessionStorage.setItem(AFTER_SIGN_IN, location.pathname + location.search + location.hash);
    navigate('/login', { replace: true });
    return null;
  }
  const user = me.user;
  const signOut = async () => {
    try {
      await api('POST', '/auth/logout', {});
    } catch {
      /* the token is forgotten here either way */
    }
    setToken(null);
    setMe({ checked: true });
    navigate('/login?signed_out=1');
  };
  let page: preact.JSX.Element | null = null;
  for (const r of routes) {
    const m = path.match(r.path);
    if (m) {
      page = r.admin && user.role !== 'admin'
        ? <section class="page"><h1 tabIndex={-1}>Administrators only</h1><p>This page is for the organization's administrators. Ask one if you need something changed here.</p></section>
        : r.page(m);
      break;
    }
  }
  return (
    <Me.Provider value={{ user, signOut }}>
      <Shell user={user} path={path}>
        {page ?? (
          <section class="page">
            <h1 tabIndex={-1}>Page not found</h1>
            <p>There is no console page at <code>{path}</code>. <a href="/console/integrations">Go to your integrations</a>.</p>
          </section>
        )}
      </Shell>
    </Me.Provider>
  );
}

const root = document.getElementById('app')!;
root.textContent = ''; // the boot message
render(<App />, root);

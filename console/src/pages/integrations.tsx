// Integrations: the list with status, connecting a service (OAuth round trip or a token), and
// one integration's page: errors and reconnect, sync now with live progress, run history,
// entity counts, settings, disconnect.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, del, enc, get, patch, post } from '../api';
import { navigate } from '../router';
import { Badge, ConfirmButton, Empty, ErrorNote, Field, Loaded, Loading, MoreButton, Notice, Page, Time, asApiError, bytes, useAction, useLoad, usePaged } from '../ui';

export type Integration = {
  id: string; service: string; status: 'pending' | 'active' | 'error' | 'disconnected'; scope: 'user' | 'org';
  config: { syncFrequency?: string; entities?: string[] }; errorMessage: string | null; lastSyncedAt: string | null;
  createdAt: string; updatedAt: string; owned?: boolean; grantedScopes?: string[] | null; storage?: { bytes: number; entities: number };
};
type Available = { service: string; supportedEntities: string[]; actions: string[]; oauth: boolean };
export type SyncRun = {
  id: string; status: 'pending' | 'running' | 'completed' | 'failed'; fullSync: boolean; progress: number; currentEntity: string | null;
  requestsMade: number; startedAt: string; completedAt: string | null; lastError: string | null; notes: string[]; resumeAt: string | null;
  result?: { success: boolean; recordsSynced: number; errors: unknown[] };
};

const NAMES: Record<string, string> = {
  github: 'GitHub', gmail: 'Gmail', google_calendar: 'Google Calendar', google_drive: 'Google Drive', notion: 'Notion',
  hubspot: 'HubSpot', ashby: 'Ashby', discord: 'Discord', xero: 'Xero',
};
export const serviceName = (s: string) => NAMES[s] ?? s;

export function StatusBadge({ status }: { status: Integration['status'] }) {
  const tone = status === 'active' ? 'ok' : status === 'error' ? 'bad' : status === 'pending' ? 'warn' : 'muted';
  const label = { active: 'Connected', error: 'Needs attention', pending: 'Connecting', disconnected: 'Disconnected' }[status] ?? status;
  return <Badge tone={tone}>{label}</Badge>;
}

const OAUTH_STATE = 'console.oauth';

/** Starts the OAuth round trip: the provider comes back to /console/oauth/<service>. */
async function startOAuth(service: string) {
  const redirect = `${location.origin}/console/oauth/${enc(service)}`;
  const r = await get<{ url: string; state: string }>(`/api/integrations/${enc(service)}/oauth?redirect_uri=${enc(redirect)}`);
  sessionStorage.setItem(OAUTH_STATE, JSON.stringify({ service, state: r.state, redirect }));
  location.assign(r.url);
}

export function Integrations() {
  const list = useLoad(() => get<{ integrations: Integration[] }>('/api/integrations'));
  const available = useLoad(() => get<{ services: Available[] }>('/api/integrations/available'));
  return (
    <Page title="Integrations" intro="The accounts this service keeps in sync for you and your agents.">
      <h2>Connected</h2>
      <Loaded load={list} what="your integrations">
        {(d) => d.integrations.length === 0 ? (
          <Empty><p>Nothing is connected yet. Pick a service below to connect your first account.</p></Empty>
        ) : (
          <ul class="cards">
            {d.integrations.map((i) => (
              <li key={i.id} class="card integration">
                <div class="row">
                  <h3><a href={`/console/integrations/${enc(i.id)}`}>{serviceName(i.service)}</a></h3>
                  <StatusBadge status={i.status} />
                </div>
                {i.errorMessage && i.status === 'error' && <p class="field-error">{i.errorMessage}</p>}
                <p class="muted small">
                  Last synced <TimeOrNever iso={i.lastSyncedAt} /> · syncs {i.config.syncFrequency ?? 'manually'}
                  {i.scope === 'org' && <> · shared with the organization</>}
                </p>
              </li>
            ))}
          </ul>
        )}
      </Loaded>
      <h2>Connect a service</h2>
      <Loaded load={available} what="the services">
        {(d) => <Connect services={d.services} connected={list.data?.integrations ?? []} />}
      </Loaded>
    </Page>
  );
}

function TimeOrNever({ iso }: { iso: string | null }) {
  return iso ? <Time iso={iso} /> : <span>never</span>;
}

function Connect({ services, connected }: { services: Available[]; connected: Integration[] }) {
  const [tokenFor, setTokenFor] = useState<string | null>(null);
  const oauth = useAction();
  const [oauthFor, setOauthFor] = useState<string | null>(null);
  return (
    <>
      <ul class="cards services">
        {services.map((s) => {
          const has = connected.some((c) => c.service === s.service && c.owned !== false);
          return (
            <li key={s.service} class="card">
              <div class="row">
                <h3>{serviceName(s.service)}</h3>
                {has && <Badge tone="ok">connected</Badge>}
              </div>
              <p class="muted small">Syncs {s.supportedEntities.join(', ') || 'nothing'}; {s.actions.length} actions.</p>
              <div class="row wrap">
                {s.oauth && (
                  <button type="button" disabled={oauth.busy} onClick={() => { setOauthFor(s.service); oauth.run(() => startOAuth(s.service)); }}>
                    {oauth.busy && oauthFor === s.service ? 'Opening…' : `Connect ${serviceName(s.service)}`}
                  </button>
                )}
                <button type="button" class={s.oauth ? 'secondary' : ''} aria-expanded={tokenFor === s.service} onClick={() => setTokenFor(tokenFor === s.service ? null : s.service)}>
                  {s.oauth ? 'Use a token instead' : 'Connect with a token'}
                </button>
              </div>
              {oauthFor === s.service && <ErrorNote error={oauth.error} />}
              {tokenFor === s.service && <TokenForm service={s.service} />}
            </li>
          );
        })}
      </ul>
    </>
  );
}

function TokenForm({ service }: { service: string }) {
  const [tok, setTok] = useState('');
  const [freq, setFreq] = useState('hourly');
  const act = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await act.run(() => post<{ integration: Integration }>('/api/integrations', { service, credentials: { access_token: tok.trim() }, config: { syncFrequency: freq } }));
    if (r) {
      const s = await act.run(() => post<{ syncId: string }>(`/api/integrations/${enc(r.integration.id)}/sync`, {}));
      navigate(`/console/integrations/${enc(r.integration.id)}${s ? `?sync=${enc(s.syncId)}` : ''}`);
    }
  };
  return (
    <form onSubmit={submit} class="inline-form">
      <Field label={`${serviceName(service)} access token`} name="credentials" error={act.error} hint="Checked with the provider before it is stored, encrypted.">
        {(p) => <input {...p} type="password" required value={tok} onInput={(e) => setTok(e.currentTarget.value)} autoComplete="off" />}
      </Field>
      <Field label="Sync" name="config.syncFrequency" error={act.error}>
        {(p) => (
          <select {...p} value={freq} onChange={(e) => setFreq(e.currentTarget.value)}>
            <option value="realtime">As changes happen (with an hourly check)</option>
            <option value="hourly">Every hour</option>
            <option value="daily">Every day</option>
            <option value="manual">Only when I ask</option>
          </select>
        )}
      </Field>
      <ErrorNote error={act.error && !act.error.field('credentials') ? act.error : undefined} />
      <button type="submit" disabled={act.busy}>{act.busy ? 'Checking the token…' : 'Connect'}</button>
    </form>
  );
}

/** Where the provider sends the browser back: the code is exchanged, then the first sync starts. */
export function OAuthReturn({ service }: { service: string }) {
  const [error, setError] = useState<ApiError | undefined>();
  const [step, setStep] = useState('Finishing the connection');
  useEffect(() => {
    const q = new URLSearchParams(location.search);
    history.replaceState(null, '', location.pathname);
    const saved = JSON.parse(sessionStorage.getItem(OAUTH_STATE) ?? 'null');
    sessionStorage.removeItem(OAUTH_STATE);
    if (q.get('error')) {
      setError(new ApiError(400, q.get('error')!, q.get('error') === 'access_denied' ? `You did not allow access at ${serviceName(service)}; nothing was connected.` : `${serviceName(service)} answered: ${q.get('error_description') ?? q.get('error')}`));
      return;
    }
    const code = q.get('code');
    const state = q.get('state');
    if (!code || !state || !saved || saved.state !== state || saved.service !== service) {
      setError(new ApiError(400, 'INVALID_STATE', 'This connection attempt is not the one this browser started (or it was already finished). Start again from Integrations.'));
      return;
    }
    (async () => {
      try {
        const r = await post<{ integration: Integration }>(`/api/integrations/${enc(service)}/oauth/callback`, { code, state, redirect_uri: saved.redirect });
        setStep('Starting the first sync');
        let sync = '';
        try {
          sync = (await post<{ syncId: string }>(`/api/integrations/${enc(r.integration.id)}/sync`, {})).syncId;
        } catch {
          /* a run already going (or an inactive integration) shows on its page */
        }
        navigate(`/console/integrations/${enc(r.integration.id)}${sync ? `?sync=${enc(sync)}` : ''}`, { replace: true });
      } catch (e) {
        setError(asApiError(e));
      }
    })();
  }, [service]);
  return (
    <Page title={`Connecting ${serviceName(service)}`}>
      {error ? <><ErrorNote error={error} /><p><a class="button" href="/console/integrations">Back to integrations</a></p></> : <Loading what={step} />}
    </Page>
  );
}

export function IntegrationDetail({ id }: { id: string }) {
  const one = useLoad(() => get<{ integration: Integration }>(`/api/integrations/${enc(id)}`), [id]);
  const runs = usePaged<SyncRun>((c) => get<{ syncs: SyncRun[]; cursor?: string; hasMore: boolean }>(`/api/integrations/${enc(id)}/syncs?limit=10${c ? `&cursor=${enc(c)}` : ''}`).then((r) => ({ ...r, items: r.syncs })), [id]);
  const startedSync = new URLSearchParams(location.search).get('sync');
  const [active, setActive] = useState<string | null>(startedSync);
  const act = useAction();
  const [notice, setNotice] = useState('');

  // A run already going when the page opens is followed too.
  useEffect(() => {
    const going = runs.items?.find((r) => r.status === 'pending' || r.status === 'running');
    if (going && !active) setActive(going.id);
  }, [runs.items]);

  const syncNow = async (full = false) => {
    setNotice('');
    const r = await act.run(() => post<{ syncId: string }>(`/api/integrations/${enc(id)}/sync`, full ? { fullSync: true } : {}));
    if (r) setActive(r.syncId);
    else runs.reload();
  };
  const finished = (run: SyncRun) => {
    setActive(null);
    setNotice(run.status === 'completed' ? `Sync finished: ${run.progress} records.` : `Sync failed${run.lastError ? `: ${run.lastError}` : ''}.`);
    one.reload();
    runs.reload();
  };
  const i = one.data?.integration;
  return (
    <Page title={i ? serviceName(i.service) : 'Integration'} actions={<a href="/console/integrations">All integrations</a>}>
      <Loaded load={one} what="the integration">
        {() => i && (
          <>
            <div class="card">
              <div class="row"><h2>Status</h2><StatusBadge status={i.status} /></div>
              {i.status === 'error' && <Reconnect integration={i} onDone={() => one.reload()} />}
              <dl class="facts">
                <dt>Last synced</dt><dd><TimeOrNever iso={i.lastSyncedAt} /></dd>
                <dt>Items stored</dt><dd>{i.storage ? i.storage.entities.toLocaleString() : '—'}</dd>
                <dt>Storage used</dt><dd>{bytes(i.storage?.bytes)}</dd>
                <dt>Connected</dt><dd><Time iso={i.createdAt} /></dd>
                <dt>Shared</dt><dd>{i.scope === 'org' ? 'with the whole organization' : 'only you'}</dd>
                {i.grantedScopes && <><dt>Granted access</dt><dd class="small">{i.grantedScopes.map((s) => s.replace('https://www.googleapis.com/auth/', '')).join(', ')}</dd></>}
              </dl>
            </div>
            <div class="card">
              <div class="row"><h2>Sync</h2></div>
              {active ? (
                <SyncProgress integrationId={id} syncId={active} onDone={finished} />
              ) : (
                <div class="row wrap">
                  <button type="button" disabled={act.busy || i.status !== 'active'} onClick={() => syncNow(false)}>Sync now</button>
                  <button type="button" class="secondary" disabled={act.busy || i.status !== 'active'} onClick={() => syncNow(true)}>Full re-sync</button>
                  {i.status !== 'active' && <span class="muted small">Syncing needs a working connection.</span>}
                </div>
              )}
              {notice && <Notice>{notice}</Notice>}
              <ErrorNote error={act.error} />
              <h3>History</h3>
              <RunHistory runs={runs} />
            </div>
            {i.owned !== false && <Settings integration={i} onSaved={(x) => one.set({ integration: { ...i, ...x } })} />}
          </>
        )}
      </Loaded>
    </Page>
  );
}

function Reconnect({ integration, onDone }: { integration: Integration; onDone: () => void }) {
  const act = useAction();
  const available = useLoad(() => get<{ services: Available[] }>('/api/integrations/available'));
  const oauth = available.data?.services.find((s) => s.service === integration.service)?.oauth;
  return (
    <div class="error" role="alert">
      <p><strong>This connection stopped working.</strong> {integration.errorMessage ?? ''}</p>
      <div class="row wrap">
        {oauth && <button type="button" disabled={act.busy} onClick={() => act.run(() => startOAuth(integration.service))}>Reconnect {serviceName(integration.service)}</button>}
        <button type="button" class="secondary" disabled={act.busy} onClick={async () => { if (await act.run(() => patch(`/api/integrations/${enc(integration.id)}`, { status: 'active' }))) onDone(); }}>Check again and resume</button>
      </div>
      <ErrorNote error={act.error} />
    </div>
  );
}

/** Live progress of one run, polled every second until it ends. */
function SyncProgress({ integrationId, syncId, onDone }: { integrationId: string; syncId: string; onDone: (r: SyncRun) => void }) {
  const [run, setRun] = useState<SyncRun | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const done = useRef(false);
  useEffect(() => {
    let timer: number | undefined;
    let live = true;
    const poll = async () => {
      try {
        const r = await get<SyncRun>(`/api/integrations/${enc(integrationId)}/sync/${enc(syncId)}`);
        if (!live) return;
        setRun(r);
        setError(undefined);
        if ((r.status === 'completed' || r.status === 'failed') && !done.current) {
          done.current = true;
          onDone(r);
          return;
        }
      } catch (e) {
        if (live) setError(asApiError(e));
      }
      if (live) timer = window.setTimeout(poll, 1000);
    };
    poll();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [syncId]);
  return (
    <div class="progress-box" aria-busy="true">
      <p role="status">
        <span class="spinner" aria-hidden="true" />{' '}
        {!run ? 'Starting the sync…' : run.status === 'pending' ? 'Waiting for the sync to start…' : `Syncing${run.currentEntity ? ` ${run.currentEntity}` : ''}: ${run.progress.toLocaleString()} records so far`}
      </p>
      <progress aria-label="Sync progress" />
      {run?.resumeAt && <p class="muted small">Paused by the provider's rate limit; continues <Time iso={run.resumeAt} />.</p>}
      {run?.lastError && <p class="muted small">Retrying after: {run.lastError}</p>}
      <ErrorNote error={error} />
    </div>
  );
}

function RunHistory({ runs }: { runs: ReturnType<typeof usePaged<SyncRun>> }) {
  if (runs.error && !runs.items) return <ErrorNote error={runs.error} onRetry={runs.reload} />;
  if (!runs.items) return <Loading what="Loading the run history" />;
  if (runs.items.length === 0) return <Empty><p>No syncs yet.</p></Empty>;
  return (
    <>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Sync runs, newest first</caption>
          <thead><tr><th scope="col">Started</th><th scope="col">Kind</th><th scope="col">Result</th><th scope="col">Records</th><th scope="col">Took</th></tr></thead>
          <tbody>
            {runs.items.map((r) => (
              <tr key={r.id}>
                <td><Time iso={r.startedAt} /></td>
                <td>{r.fullSync ? 'full' : 'incremental'}</td>
                <td>
                  {r.status === 'completed' ? <Badge tone="ok">completed</Badge> : r.status === 'failed' ? <Badge tone="bad">failed</Badge> : <Badge tone="info">{r.status}</Badge>}
                  {r.status === 'failed' && r.lastError && <div class="small field-error">{r.lastError}</div>}
                  {r.notes.length > 0 && <div class="small muted">{r.notes.join(' ')}</div>}
                </td>
                <td>{r.progress.toLocaleString()}</td>
                <td>{r.completedAt ? duration(r.startedAt, r.completedAt) : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <ErrorNote error={runs.error} />
      <MoreButton paged={runs} />
    </>
  );
}

function duration(a: string, b: string): string {
  const s = (new Date(b).getTime() - new Date(a).getTime()) / 1000;
  if (!(s >= 0)) return '—';
  return s < 60 ? `${s.toFixed(s < 10 ? 1 : 0)} s` : `${Math.round(s / 60)} min`;
}

function Settings({ integration, onSaved }: { integration: Integration; onSaved: (i: Partial<Integration>) => void }) {
  const [freq, setFreq] = useState(integration.config.syncFrequency ?? 'hourly');
  const save = useAction();
  const remove = useAction();
  const [saved, setSaved] = useState(false);
  return (
    <div class="card">
      <h2>Settings</h2>
      <form class="inline-form" onSubmit={async (e) => {
        e.preventDefault();
        setSaved(false);
        const r = await save.run(() => patch<{ integration: Integration }>(`/api/integrations/${enc(integration.id)}`, { config: { ...integration.config, syncFrequency: freq } }));
        if (r) { onSaved(r.integration); setSaved(true); }
      }}>
        <Field label="Sync" name="config.syncFrequency" error={save.error}>
          {(p) => (
            <select {...p} value={freq} onChange={(e) => setFreq(e.currentTarget.value)}>
              <option value="realtime">As changes happen (with an hourly check)</option>
              <option value="hourly">Every hour</option>
              <option value="daily">Every day</option>
              <option value="manual">Only when I ask</option>
            </select>
          )}
        </Field>
        <button type="submit" disabled={save.busy}>Save</button>
        {saved && <Notice>Saved.</Notice>}
        <ErrorNote error={save.error && !save.error.details.length ? save.error : undefined} />
      </form>
      <h3>Disconnect</h3>
      <p class="small">Removes the stored credentials and every item synced from this account. Agents lose access at once.</p>
      <ConfirmButton label="Disconnect" confirm="Disconnect and delete its data?" busy={remove.busy} onConfirm={async () => {
        if (await remove.run(() => del(`/api/integrations/${enc(integration.id)}`))) navigate('/console/integrations');
      }} />
      <ErrorNote error={remove.error} />
    </div>
  );
}

// The account: API tokens (a new one shown once; revoke), sign-in sessions and signing out,
// and MCP (the server URL, client configuration, authorized clients, the audit log).
import { useState } from 'preact/hooks';
import { del, enc, get, post } from '../api';
import { useMe } from '../session';
import { Badge, ConfirmButton, CopyButton, Empty, ErrorNote, Field, Loaded, Loading, MoreButton, Notice, Page, Time, useAction, useLoad, usePaged } from '../ui';

type ApiToken = { id: string; name: string; prefix: string; createdAt: string; lastUsedAt?: string; expiresAt?: string };

export function Tokens() {
  const list = useLoad(() => get<{ tokens: ApiToken[] }>('/api/api-tokens'));
  const [name, setName] = useState('');
  const [days, setDays] = useState('90');
  const [created, setCreated] = useState<(ApiToken & { token: string }) | undefined>();
  const create = useAction();
  const revoke = useAction();
  const [revoked, setRevoked] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setRevoked('');
    const expiresAt = days === 'never' ? undefined : new Date(Date.now() + Number(days) * 86400_000).toISOString();
    const r = await create.run(() => post<ApiToken & { token: string }>('/api/api-tokens', { name: name.trim(), ...(expiresAt ? { expiresAt } : {}) }));
    if (r) {
      setCreated(r);
      setName('');
      list.reload();
    }
  };
  return (
    <Page title="API tokens" intro="Tokens let scripts and agents call this service as you. Treat each like a password.">
      <form class="card" onSubmit={submit}>
        <h2>Create a token</h2>
        <div class="row wrap align-end">
          <Field label="Name (what will use it)" name="name" error={create.error}>
            {(p) => <input {...p} required maxLength={100} value={name} placeholder="e.g. laptop agent" onInput={(e) => setName(e.currentTarget.value)} />}
          </Field>
          <Field label="Expires" name="expiresAt" error={create.error}>
            {(p) => (
              <select {...p} value={days} onChange={(e) => setDays(e.currentTarget.value)}>
                <option value="7">in 7 days</option>
                <option value="30">in 30 days</option>
                <option value="90">in 90 days</option>
                <option value="365">in a year</option>
                <option value="never">never</option>
              </select>
            )}
          </Field>
          <button type="submit" disabled={create.busy}>{create.busy ? 'Creating…' : 'Create token'}</button>
        </div>
        <ErrorNote error={create.error && !create.error.details.length ? create.error : undefined} />
      </form>
      {created && (
        <div class="secret card" role="status">
          <h2>Your new token “{created.name}”</h2>
          <p><strong>Copy it now: it is shown only this once.</strong></p>
          <p class="code-line"><code data-testid="new-token">{created.token}</code> <CopyButton text={created.token} /></p>
          <button type="button" class="secondary small" onClick={() => setCreated(undefined)}>I have copied it</button>
        </div>
      )}
      {revoked && <Notice>{revoked}</Notice>}
      <h2>Your tokens</h2>
      <Loaded load={list} what="your tokens">
        {(d) => d.tokens.length === 0 ? <Empty><p>No tokens yet.</p></Empty> : (
          <div class="table-wrap">
            <table>
              <thead><tr><th scope="col">Name</th><th scope="col">Starts with</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>
                {d.tokens.map((t) => (
                  <tr key={t.id}>
                    <td>{t.name}</td>
                    <td><code>{t.prefix}…</code></td>
                    <td><Time iso={t.createdAt} /></td>
                    <td>{t.lastUsedAt ? <Time iso={t.lastUsedAt} /> : 'never'}</td>
                    <td>{t.expiresAt ? <Time iso={t.expiresAt} /> : 'never'}</td>
                    <td>
                      <ConfirmButton label="Revoke" confirm={`Revoke “${t.name}”?`} busy={revoke.busy} onConfirm={async () => {
                        if (await revoke.run(() => del(`/api/api-tokens/${enc(t.id)}`))) {
                          setRevoked(`Revoked “${t.name}”: it no longer works.`);
                          if (created?.id === t.id) setCreated(undefined);
                          list.reload();
                        }
                      }} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
      <ErrorNote error={revoke.error} />
    </Page>
  );
}

type SignIn = { id: string; provider: string; createdAt: string; expiresAt: string; lastUsedAt?: string; current: boolean };

export function Sessions() {
  const { signOut } = useMe();
  const list = useLoad(() => get<{ sessions: SignIn[] }>('/api/me/sessions'));
  const act = useAction();
  const [out, setOut] = useState(false);
  return (
    <Page title="Sign-in sessions" intro="Browsers signed in to your account. Sign out the ones you do not recognise."
      actions={<button type="button" disabled={out} onClick={async () => { setOut(true); await signOut(); }}>{out ? 'Signing out…' : 'Sign out'}</button>}>
      <Loaded load={list} what="your sessions">
        {(d) => d.sessions.length === 0 ? (
          <Empty><p>No browser sessions: you are using an API token here. Signing out forgets it in this browser.</p></Empty>
        ) : (
          <div class="table-wrap">
            <table>
              <thead><tr><th scope="col">Signed in with</th><th scope="col">Since</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
              <tbody>
                {d.sessions.map((s) => (
                  <tr key={s.id}>
                    <td>{s.provider === 'github' ? 'GitHub' : s.provider === 'google' ? 'Google' : s.provider} {s.current && <Badge tone="info">this browser</Badge>}</td>
                    <td><Time iso={s.createdAt} /></td>
                    <td>{s.lastUsedAt ? <Time iso={s.lastUsedAt} /> : '—'}</td>
                    <td><Time iso={s.expiresAt} /></td>
                    <td>
                      {s.current ? null : (
                        <ConfirmButton label="Sign out" confirm="Sign this session out?" busy={act.busy} onConfirm={async () => {
                          if (await act.run(() => del(`/api/me/sessions/${enc(s.id)}`))) list.reload();
                        }} />
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
      <ErrorNote error={act.error} />
    </Page>
  );
}

type McpClient = { clientId: string; clientName: string; createdAt: string; lastUsedAt: string | null; scopes: string[] };
type Audit = { id: string; createdAt: string; caller: { type: string; id: string }; via: string; service?: string | null; action: string; outcome: string; durationMs: number };

export function Mcp() {
  const url = `${location.origin}/mcp`;
  const [client, setClient] = useState<'claude' | 'cursor' | 'vscode'>('claude');
  const snippets = {
    claude: `claude mcp add --transport http integrations ${url} \\\n  --header "Authorization: Bearer YOUR_API_TOKEN"`,
    cursor: JSON.stringify({ mcpServers: { integrations: { url, headers: { Authorization: 'Bearer YOUR_API_TOKEN' } } } }, null, 2),
    vscode: JSON.stringify({ servers: { integrations: { type: 'http', url, headers: { Authorization: 'Bearer YOUR_API_TOKEN' } } } }, null, 2),
  };
  const where = { claude: 'Run in a terminal (Claude Code).', cursor: 'In ~/.cursor/mcp.json.', vscode: 'In .vscode/mcp.json.' };
  const clients = useLoad(() => get<{ clients: McpClient[] }>('/api/me/mcp-clients').catch((e) => {
    if (e.status === 404 || e.status === 405) return { clients: null as any };
    throw e;
  }));
  const audit = usePaged<Audit>((c) => get<{ entries: Audit[]; cursor?: string; hasMore: boolean }>(`/api/me/audit?limit=20${c ? `&cursor=${enc(c)}` : ''}`).then((r) => ({ ...r, items: r.entries })));
  const revoke = useAction();
  return (
    <Page title="MCP" intro="Agents such as Claude, Cursor or VS Code reach your integrations through this service's MCP server.">
      <div class="card">
        <h2>Server URL</h2>
        <p class="code-line"><code data-testid="mcp-url">{url}</code> <CopyButton text={url} /></p>
        <p class="small">Clients that support MCP authorization need only this URL: they open a sign-in and consent page in your browser and keep their own tokens (read-only or read and write, your choice). Others authenticate with an API token (<a href="/console/tokens">create one</a>) as a Bearer token, as below.</p>
      </div>
      <div class="card">
        <h2>Client configuration</h2>
        <div role="tablist" aria-label="Client" class="tabs">
          {(['claude', 'cursor', 'vscode'] as const).map((c) => (
            <button key={c} type="button" role="tab" aria-selected={client === c} class={client === c ? '' : 'secondary'} onClick={() => setClient(c)}>
              {{ claude: 'Claude Code', cursor: 'Cursor', vscode: 'VS Code' }[c]}
            </button>
          ))}
        </div>
        <div role="tabpanel">
          <p class="small">{where[client]} Replace YOUR_API_TOKEN with a token.</p>
          <pre><code>{snippets[client]}</code></pre>
          <CopyButton text={snippets[client]} label="Copy configuration" />
        </div>
      </div>
      <div class="card">
        <h2>Authorized clients</h2>
        <Loaded load={clients} what="authorized clients">
          {(d) => d.clients === null ? (
            <Empty><p>Not available on this deployment: it does not offer OAuth sign-in for MCP clients yet. Use an API token.</p></Empty>
          ) : d.clients.length === 0 ? (
            <Empty><p>No MCP client has been authorized through OAuth.</p></Empty>
          ) : (
            <ul class="plain">
              {d.clients.map((c: McpClient) => (
                <li key={c.clientId} class="row">
                  <span>{c.clientName} <span class="muted small">{c.scopes.includes('mcp:write') ? 'read and write' : 'read only'} · {c.lastUsedAt ? <>last used <Time iso={c.lastUsedAt} /></> : <>authorized <Time iso={c.createdAt} /></>}</span></span>
                  <ConfirmButton label="Revoke" confirm="Revoke this client?" busy={revoke.busy} onConfirm={async () => {
                    if (await revoke.run(() => del(`/api/me/mcp-clients/${enc(c.clientId)}`))) clients.reload();
                  }} />
                </li>
              ))}
            </ul>
          )}
        </Loaded>
        <ErrorNote error={revoke.error} />
      </div>
      <div class="card">
        <h2>Audit log</h2>
        <p class="small muted">Every action an agent or script took through your integrations.</p>
        {audit.error && !audit.items && <ErrorNote error={audit.error} onRetry={audit.reload} />}
        {!audit.items && !audit.error && <Loading what="Loading the audit log" />}
        {audit.items && audit.items.length === 0 && <Empty><p>No actions yet.</p></Empty>}
        {audit.items && audit.items.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Through</th><th scope="col">Outcome</th><th scope="col">Took</th></tr></thead>
              <tbody>
                {audit.items.map((a) => (
                  <tr key={a.id}>
                    <td><Time iso={a.createdAt} /></td>
                    <td>{a.service ? `${a.service}: ` : ''}{a.action}</td>
                    <td>{a.via === 'mcp' ? 'MCP' : 'API'} · {a.caller.type.replace('_', ' ')}</td>
                    <td>{a.outcome === 'ok' ? <Badge tone="ok">ok</Badge> : <Badge tone="bad">{a.outcome}</Badge>}</td>
                    <td>{a.durationMs} ms</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <MoreButton paged={audit} />
      </div>
    </Page>
  );
}

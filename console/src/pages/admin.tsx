// Administration: invites, organization sign-up settings, custom model providers, the
// organization's repositories, the webhook inbox and Slack workspaces.
import { useState } from 'preact/hooks';
import { del, enc, get, post, put } from '../api';
import { Badge, ConfirmButton, CopyButton, Empty, ErrorNote, Field, Loaded, Loading, MoreButton, Notice, Page, Time, useAction, useLoad, usePaged } from '../ui';

type Invite = { id: string; code?: string; email?: string | null; role: string; expiresAt: string; usedAt?: string | null; createdAt?: string };

export function AdminInvites() {
  const paged = usePaged<Invite>((c) => get<{ invites: Invite[]; cursor?: string; hasMore: boolean }>(`/api/admin/invites?limit=50${c ? `&cursor=${enc(c)}` : ''}`).then((r) => ({ ...r, items: r.invites })));
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('member');
  const [days, setDays] = useState('7');
  const [made, setMade] = useState<Invite | undefined>();
  const act = useAction();
  const remove = useAction();
  const link = made?.code ? `${location.origin}/login?invite=${enc(made.code)}` : '';
  return (
    <Page title="Invites" intro="Sign-up is closed to strangers: an invite lets one person in (bound to their email, or anyone holding the code).">
      <form class="card" onSubmit={async (e) => {
        e.preventDefault();
        const r = await act.run(() => post<{ invite: Invite }>('/api/admin/invites', { ...(email.trim() ? { email: email.trim() } : {}), role, expiresInDays: Number(days) }));
        if (r) { setMade(r.invite); setEmail(''); paged.reload(); }
      }}>
        <h2>Invite someone</h2>
        <div class="row wrap align-end">
          <Field label="Email (optional)" name="email" error={act.error} hint="Without one, whoever holds the code can sign up.">
            {(p) => <input {...p} type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />}
          </Field>
          <Field label="Role" name="role" error={act.error}>
            {(p) => <select {...p} value={role} onChange={(e) => setRole(e.currentTarget.value)}><option value="member">Member</option><option value="admin">Administrator</option></select>}
          </Field>
          <Field label="Valid for (days)" name="expiresInDays" error={act.error}>
            {(p) => <input {...p} type="number" min={1} max={90} value={days} onInput={(e) => setDays(e.currentTarget.value)} />}
          </Field>
          <button type="submit" disabled={act.busy}>Create invite</button>
        </div>
        <ErrorNote error={act.error && !act.error.details.length ? act.error : undefined} />
      </form>
      {made?.code && (
        <div class="secret card" role="status">
          <h2>Invite created</h2>
          <p>Send this sign-in link (or the code). <strong>It is shown only once.</strong></p>
          <p class="code-line"><code>{link}</code> <CopyButton text={link} label="Copy link" /></p>
          <p class="small">Code: <code>{made.code}</code></p>
        </div>
      )}
      <h2>Invites</h2>
      {paged.error && !paged.items && <ErrorNote error={paged.error} onRetry={paged.reload} />}
      {!paged.items && !paged.error && <Loading what="Loading invites" />}
      {paged.items?.length === 0 && <Empty><p>No invites yet.</p></Empty>}
      {paged.items && paged.items.length > 0 && (
        <div class="table-wrap"><table>
          <thead><tr><th scope="col">For</th><th scope="col">Role</th><th scope="col">State</th><th scope="col">Expires</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>{paged.items.map((i) => (
            <tr key={i.id}>
              <td>{i.email ?? <span class="muted">anyone with the code</span>}</td>
              <td>{i.role}</td>
              <td>{i.usedAt ? <Badge tone="muted">used</Badge> : new Date(i.expiresAt) < new Date() ? <Badge tone="warn">expired</Badge> : <Badge tone="ok">open</Badge>}</td>
              <td><Time iso={i.expiresAt} /></td>
              <td>{!i.usedAt && <ConfirmButton label="Delete" confirm="Delete this invite?" busy={remove.busy} onConfirm={async () => { if (await remove.run(() => del(`/api/admin/invites/${enc(i.id)}`))) paged.reload(); }} />}</td>
            </tr>
          ))}</tbody>
        </table></div>
      )}
      <ErrorNote error={remove.error} />
      <MoreButton paged={paged} />
    </Page>
  );
}

type OrgSettings = { name: string; domainGatingEnabled: boolean; allowedDomains: string[]; emailAllowlistEnabled: boolean; allowedEmails: string[] };
const lines = (s: string) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

export function AdminOrg() {
  const load = useLoad(() => get<OrgSettings>('/api/admin/org-settings'));
  return (
    <Page title="Organization" intro="Who may sign up without an invite.">
      <Loaded load={load} what="the settings">{(s) => <OrgForm initial={s} />}</Loaded>
    </Page>
  );
}

function OrgForm({ initial }: { initial: OrgSettings }) {
  const [s, setS] = useState(initial);
  const [domains, setDomains] = useState(initial.allowedDomains.join('\n'));
  const [emails, setEmails] = useState(initial.allowedEmails.join('\n'));
  const act = useAction();
  const [saved, setSaved] = useState(false);
  return (
    <form class="card" onSubmit={async (e) => {
      e.preventDefault();
      setSaved(false);
      const r = await act.run(() => put<OrgSettings>('/api/admin/org-settings', { ...s, allowedDomains: lines(domains), allowedEmails: lines(emails) }));
      if (r) setSaved(true);
    }}>
      <Field label="Organization name" name="name" error={act.error}>
        {(p) => <input {...p} value={s.name} onInput={(e) => setS({ ...s, name: e.currentTarget.value })} />}
      </Field>
      <div class="check"><input id="dg" type="checkbox" checked={s.domainGatingEnabled} onChange={(e) => setS({ ...s, domainGatingEnabled: e.currentTarget.checked })} /><label for="dg">Anyone with a verified email at these domains may sign up</label></div>
      <Field label="Domains (one per line)" name="allowedDomains" error={act.error}>
        {(p) => <textarea {...p} rows={3} value={domains} onInput={(e) => setDomains(e.currentTarget.value)} placeholder="example.com" />}
      </Field>
      <div class="check"><input id="ea" type="checkbox" checked={s.emailAllowlistEnabled} onChange={(e) => setS({ ...s, emailAllowlistEnabled: e.currentTarget.checked })} /><label for="ea">These email addresses may sign up</label></div>
      <Field label="Email addresses (one per line)" name="allowedEmails" error={act.error}>
        {(p) => <textarea {...p} rows={3} value={emails} onInput={(e) => setEmails(e.currentTarget.value)} />}
      </Field>
      <ErrorNote error={act.error && !act.error.details.length ? act.error : undefined} />
      <button type="submit" disabled={act.busy}>Save</button>
      {saved && <Notice>Saved.</Notice>}
    </form>
  );
}

type Provider = { id: string; providerId: string; displayName: string; baseUrl: string; hasKey: boolean; models: { id: string; name?: string }[]; updatedAt: string };

export function AdminProviders() {
  const list = useLoad(() => get<{ providers: Provider[] }>('/api/admin/custom-providers'));
  const [form, setForm] = useState({ providerId: '', displayName: '', baseUrl: '', models: '', apiKey: '' });
  const save = useAction();
  const other = useAction();
  const [tested, setTested] = useState('');
  return (
    <Page title="Model providers" intro="OpenAI-compatible model endpoints your agents may use, with their keys stored encrypted.">
      <Loaded load={list} what="providers">
        {(d) => d.providers.length === 0 ? <Empty><p>No custom provider yet.</p></Empty> : (
          <ul class="cards">{d.providers.map((p) => (
            <li key={p.providerId} class="card">
              <div class="row"><h3>{p.displayName} <code class="small">{p.providerId}</code></h3>{p.hasKey ? <Badge tone="ok">key stored</Badge> : <Badge tone="muted">no key</Badge>}</div>
              <p class="small"><code>{p.baseUrl}</code> · {p.models.map((m) => m.id).join(', ')}</p>
              <div class="row wrap">
                <button type="button" class="secondary small" disabled={other.busy} onClick={async () => {
                  setTested('');
                  const r = await other.run(() => post<{ ok: boolean; status: number; models: string[] }>(`/api/admin/custom-providers/${enc(p.providerId)}/test`, {}));
                  if (r) setTested(r.ok ? `${p.displayName} answered (${r.models.length} models).` : `${p.displayName} answered HTTP ${r.status}.`);
                }}>Test</button>
                <button type="button" class="secondary small" onClick={() => setForm({ providerId: p.providerId, displayName: p.displayName, baseUrl: p.baseUrl, models: p.models.map((m) => m.id).join(', '), apiKey: '' })}>Edit</button>
                <ConfirmButton label="Delete" confirm="Delete this provider?" busy={other.busy} onConfirm={async () => { if (await other.run(() => del(`/api/admin/custom-providers/${enc(p.providerId)}`))) list.reload(); }} />
              </div>
            </li>
          ))}</ul>
        )}
      </Loaded>
      {tested && <Notice>{tested}</Notice>}
      <ErrorNote error={other.error} />
      <form class="card" onSubmit={async (e) => {
        e.preventDefault();
        const r = await save.run(() => put(`/api/admin/custom-providers/${enc(form.providerId.trim())}`, {
          displayName: form.displayName.trim(), baseUrl: form.baseUrl.trim(), models: lines(form.models).map((id) => ({ id })), ...(form.apiKey ? { apiKey: form.apiKey } : {}),
        }));
        if (r) { setForm({ providerId: '', displayName: '', baseUrl: '', models: '', apiKey: '' }); list.reload(); }
      }}>
        <h2>Add or update a provider</h2>
        <Field label="Provider id" name="providerId" error={save.error} hint="Lowercase letters, digits and dashes, e.g. my-llm.">{(p) => <input {...p} required value={form.providerId} onInput={(e) => setForm({ ...form, providerId: e.currentTarget.value })} />}</Field>
        <Field label="Display name" name="displayName" error={save.error}>{(p) => <input {...p} required value={form.displayName} onInput={(e) => setForm({ ...form, displayName: e.currentTarget.value })} />}</Field>
        <Field label="Base URL" name="baseUrl" error={save.error}>{(p) => <input {...p} type="url" required value={form.baseUrl} onInput={(e) => setForm({ ...form, baseUrl: e.currentTarget.value })} placeholder="https://llm.example.com/v1" />}</Field>
        <Field label="Models (comma separated ids)" name="models" error={save.error}>{(p) => <input {...p} required value={form.models} onInput={(e) => setForm({ ...form, models: e.currentTarget.value })} />}</Field>
        <Field label="API key (leave empty to keep the stored one)" name="apiKey" error={save.error}>{(p) => <input {...p} type="password" autoComplete="off" value={form.apiKey} onInput={(e) => setForm({ ...form, apiKey: e.currentTarget.value })} />}</Field>
        <ErrorNote error={save.error && !save.error.details.length ? save.error : undefined} />
        <button type="submit" disabled={save.busy}>Save provider</button>
      </form>
    </Page>
  );
}

type Repo = { id: string; fullName: string; description?: string | null; enabled: boolean; defaultBranch?: string; language?: string | null; personaName?: string | null };

export function AdminRepos() {
  const list = useLoad(() => get<{ repos: Repo[] }>('/api/admin/repos'));
  const [name, setName] = useState('');
  const add = useAction();
  const other = useAction();
  return (
    <Page title="Repositories" intro="The organization's repositories agents may work in.">
      <form class="card" onSubmit={async (e) => {
        e.preventDefault();
        if (await add.run(() => post('/api/admin/repos', { fullName: name.trim() }))) { setName(''); list.reload(); }
      }}>
        <div class="row wrap align-end">
          <Field label="Repository (owner/name)" name="fullName" error={add.error}>{(p) => <input {...p} required pattern="[^/\s]+/[^/\s]+" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="acme/website" />}</Field>
          <button type="submit" disabled={add.busy}>Add repository</button>
        </div>
        <ErrorNote error={add.error && !add.error.field('fullName') ? add.error : undefined} />
      </form>
      <Loaded load={list} what="repositories">
        {(d) => d.repos.length === 0 ? <Empty><p>No repositories yet.</p></Empty> : (
          <div class="table-wrap"><table>
            <thead><tr><th scope="col">Repository</th><th scope="col">Default branch</th><th scope="col">Enabled</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>{d.repos.map((r) => (
              <tr key={r.id}>
                <td>{r.fullName}{r.description && <div class="small muted">{r.description}</div>}</td>
                <td>{r.defaultBranch ?? '—'}</td>
                <td><input type="checkbox" aria-label={`Enabled: ${r.fullName}`} checked={r.enabled} disabled={other.busy} onChange={async (e) => {
                  const enabled = e.currentTarget.checked;
                  if (await other.run(() => put(`/api/admin/repos/${enc(r.id)}`, { enabled }))) list.reload();
                }} /></td>
                <td><ConfirmButton label="Remove" confirm={`Remove ${r.fullName}?`} busy={other.busy} onConfirm={async () => { if (await other.run(() => del(`/api/admin/repos/${enc(r.id)}`))) list.reload(); }} /></td>
              </tr>
            ))}</tbody>
          </table></div>
        )}
      </Loaded>
      <ErrorNote error={other.error} />
    </Page>
  );
}

type Delivery = { id: string; provider: string; deliveryId: string; eventType?: string | null; receivedAt: string };

export function AdminWebhooks() {
  const [provider, setProvider] = useState('');
  const paged = usePaged<Delivery>((c) => get<{ deliveries: Delivery[]; cursor?: string; hasMore: boolean }>(`/api/admin/webhooks/inbox?limit=50${provider ? `&provider=${provider}` : ''}${c ? `&cursor=${enc(c)}` : ''}`).then((r) => ({ ...r, items: r.deliveries })), [provider]);
  return (
    <Page title="Webhook inbox" intro="Deliveries received from providers, newest first (each is acted on once).">
      <div class="field narrow">
        <label for="wh-provider">Provider</label>
        <select id="wh-provider" value={provider} onChange={(e) => setProvider(e.currentTarget.value)}>
          <option value="">All</option>
          {['github', 'slack', 'discord', 'notion', 'hubspot', 'xero'].map((p) => <option key={p} value={p}>{p}</option>)}
        </select>
      </div>
      {paged.error && !paged.items && <ErrorNote error={paged.error} onRetry={paged.reload} />}
      {!paged.items && !paged.error && <Loading what="Loading deliveries" />}
      {paged.items?.length === 0 && <Empty><p>No deliveries{provider ? ` from ${provider}` : ''} yet.</p></Empty>}
      {paged.items && paged.items.length > 0 && (
        <div class="table-wrap"><table>
          <thead><tr><th scope="col">Received</th><th scope="col">Provider</th><th scope="col">Event</th><th scope="col">Delivery id</th></tr></thead>
          <tbody>{paged.items.map((d) => (
            <tr key={d.id}><td><Time iso={d.receivedAt} /></td><td>{d.provider}</td><td>{d.eventType ?? '—'}</td><td><code class="small">{d.deliveryId}</code></td></tr>
          ))}</tbody>
        </table></div>
      )}
      <MoreButton paged={paged} />
    </Page>
  );
}

type Workspace = { teamId: string; teamName: string | null; scopes: string[]; installedBy: string | null; createdAt: string };
const SLACK_ERRORS: Record<string, string> = {
  access_denied: 'The install was cancelled in Slack.',
  invalid_state: 'That install link expired or was already used. Start again.',
  missing_params: 'Slack came back without the install details. Start again.',
  token_exchange_failed: 'Slack refused to finish the install. Check the app\'s client id and secret.',
  oauth_error: 'Slack reported an error during the install.',
};

export function AdminSlack() {
  const q = new URLSearchParams(location.search);
  const list = usePaged<Workspace>((c) => get<{ workspaces: Workspace[]; cursor?: string; hasMore: boolean }>(`/api/slack/workspaces${c ? `?cursor=${enc(c)}` : ''}`).then((r) => ({ ...r, items: r.workspaces })));
  const install = useAction();
  const remove = useAction();
  return (
    <Page title="Slack workspaces" intro="Workspaces where the Slack app is installed; their members link their own accounts from Slack.">
      {q.get('installed') && <Notice>Installed in workspace {q.get('installed')}.</Notice>}
      {q.get('error') && <div class="error" role="alert"><p><strong>{SLACK_ERRORS[q.get('error')!] ?? `The install failed (${q.get('error')}).`}</strong></p></div>}
      <p><button type="button" disabled={install.busy} onClick={async () => {
        const r = await install.run(() => get<{ url: string }>('/api/slack/install'));
        if (r) location.assign(r.url);
      }}>Add to a Slack workspace</button></p>
      <ErrorNote error={install.error} />
      {list.error && !list.items && <ErrorNote error={list.error} onRetry={list.reload} />}
      {!list.items && !list.error && <Loading what="Loading workspaces" />}
      {list.items?.length === 0 && <Empty><p>The app is not installed in any workspace yet.</p></Empty>}
      {list.items && list.items.length > 0 && (
        <ul class="cards">{list.items.map((w) => (
          <li key={w.teamId} class="card">
            <div class="row"><h3>{w.teamName ?? w.teamId}</h3>
              <ConfirmButton label="Remove" confirm="Remove the app's access to this workspace?" busy={remove.busy} onConfirm={async () => { if (await remove.run(() => del(`/api/slack/workspaces/${enc(w.teamId)}`))) list.reload(); }} />
            </div>
            <p class="small muted">Installed <Time iso={w.createdAt} /> · {w.scopes.length} scopes</p>
          </li>
        ))}</ul>
      )}
      <ErrorNote error={remove.error} />
      <MoreButton paged={list} />
    </Page>
  );
}

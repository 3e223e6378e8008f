// Chat channels: the user's Telegram bot (setup, pairing code and link), Slack accounts
// (redeeming a link code, unlinking), and the bindings of channels to sessions.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, del, enc, get, patch, post } from '../api';
import { Badge, ConfirmButton, CopyButton, Empty, ErrorNote, Field, Loaded, Loading, MoreButton, Notice, Page, Time, asApiError, useAction, useLoad, usePaged } from '../ui';

type TelegramConfig = { id: string; botUsername: string; webhookActive: boolean; paired: boolean; createdAt: string; updatedAt: string };
type Setup = { config: TelegramConfig; webhookUrl: string; pairingCode?: string; pairingLink?: string };

export function Telegram() {
  const cfg = useLoad(() => get<{ config: TelegramConfig | null }>('/api/me/telegram'));
  const [setup, setSetup] = useState<Setup | undefined>();
  const [botToken, setBotToken] = useState('');
  const act = useAction();
  const remove = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await act.run(() => post<Setup>('/api/me/telegram', { botToken: botToken.trim() }));
    if (r) {
      setSetup(r);
      setBotToken('');
      cfg.set({ config: r.config });
    }
  };
  const config = setup?.config ?? cfg.data?.config;
  return (
    <Page title="Telegram" intro="Talk to your agents through your own Telegram bot. Create one with @BotFather, paste its token here, then pair your Telegram account with it.">
      <Loaded load={cfg} what="your Telegram setup">
        {() => (
          <>
            {config && (
              <div class="card">
                <div class="title-row">
                  <h2>@{config.botUsername}</h2>
                  {config.paired ? <Badge tone="ok">paired</Badge> : <Badge tone="warn">not paired yet</Badge>}
                  {config.webhookActive ? <Badge tone="ok">receiving messages</Badge> : <Badge tone="bad">webhook inactive</Badge>}
                </div>
                {setup?.pairingCode && !config.paired && (
                  <div class="secret" aria-labelledby="pair-h">
                    <h3 id="pair-h">Pair your Telegram account</h3>
                    <p>Until it is paired, the bot answers nobody. Open the link on the device where you use Telegram and press <strong>Start</strong>, or send the bot this message:</p>
                    <p class="code-line"><code data-testid="pairing-code">/start {setup.pairingCode}</code> <CopyButton text={`/start ${setup.pairingCode}`} /></p>
                    {setup.pairingLink && <p><a class="button" href={setup.pairingLink} target="_blank" rel="noopener noreferrer">Open @{config.botUsername} in Telegram</a></p>}
                    <p class="muted small">This code is shown once. If you lose it, enter the bot token again for a new one.</p>
                  </div>
                )}
                {!setup?.pairingCode && !config.paired && (
                  <p>Not paired yet. Enter the bot token again below to get a new pairing code.</p>
                )}
                <p class="muted small">Set up <Time iso={config.createdAt} />.</p>
                <ConfirmButton label="Disconnect the bot" confirm="Stop using this bot?" busy={remove.busy} onConfirm={async () => {
                  if (await remove.run(() => del('/api/me/telegram'))) { setSetup(undefined); cfg.set({ config: null }); }
                }} />
                <ErrorNote error={remove.error} />
              </div>
            )}
            <form class="card" onSubmit={submit}>
              <h2>{config ? 'Replace or re-pair the bot' : 'Connect a bot'}</h2>
              <Field label="Bot token" name="botToken" error={act.error} hint="Looks like 123456789:AA… — from @BotFather's /newbot. Checked with Telegram, then stored encrypted.">
                {(p) => <input {...p} type="password" required value={botToken} onInput={(e) => setBotToken(e.currentTarget.value)} autoComplete="off" spellcheck={false} />}
              </Field>
              <ErrorNote error={act.error && !act.error.field('botToken') ? act.error : undefined} />
              <button type="submit" disabled={act.busy}>{act.busy ? 'Setting up the bot…' : config ? 'Set up again' : 'Connect the bot'}</button>
            </form>
          </>
        )}
      </Loaded>
    </Page>
  );
}

type SlackLinkRow = { teamId: string; teamName: string | null; slackUserId: string; slackUserName: string | null; createdAt: string };

export function SlackAccounts() {
  const links = useLoad(() => get<{ links: SlackLinkRow[] }>('/api/me/slack'));
  const act = useAction();
  return (
    <Page title="Slack" intro="Your Slack accounts linked to this service: what you write to the Slack app reaches your agents.">
      <Loaded load={links} what="your Slack links">
        {(d) => d.links.length === 0 ? (
          <Empty><p>No Slack account is linked. Write to the app in Slack: it answers with a link that brings you here to connect.</p></Empty>
        ) : (
          <ul class="cards">
            {d.links.map((l) => (
              <li key={l.teamId} class="card">
                <div class="row">
                  <h3>{l.slackUserName ?? l.slackUserId} in {l.teamName ?? l.teamId}</h3>
                  <ConfirmButton label="Unlink" confirm="Unlink this Slack account?" busy={act.busy} onConfirm={async () => {
                    if (await act.run(() => del(`/api/me/slack/${enc(l.teamId)}`))) links.reload();
                  }} />
                </div>
                <p class="muted small">Linked <Time iso={l.createdAt} /></p>
              </li>
            ))}
          </ul>
        )}
      </Loaded>
      <ErrorNote error={act.error} />
    </Page>
  );
}

const SLACK_CODE = 'console.slackCode';

/** `/slack/link#code=…`: the one-time code the Slack app sent; linking needs a click. */
export function SlackLink() {
  const [code] = useState(() => {
    const fromHash = new URLSearchParams(location.hash.slice(1)).get('code');
    if (fromHash) sessionStorage.setItem(SLACK_CODE, fromHash);
    return fromHash ?? sessionStorage.getItem(SLACK_CODE);
  });
  useEffect(() => {
    if (location.hash) history.replaceState(null, '', '/slack/link');
  }, []);
  const act = useAction();
  const [linked, setLinked] = useState<SlackLinkRow | undefined>();
  const link = async () => {
    const r = await act.run(() => post<{ link: SlackLinkRow }>('/api/me/slack/link', { code }));
    if (r) {
      setLinked(r.link);
      sessionStorage.removeItem(SLACK_CODE);
    }
  };
  const reason = (e?: ApiError) => e && (e.code === 'INVALID_CODE' ? new ApiError(e.status, e.code, 'This link expired or was already used (links last 15 minutes). Write to the app in Slack again for a new one.', [], e.requestId) : e);
  return (
    <Page title="Link your Slack account">
      {linked ? (
        <div class="card">
          <Notice>Linked. Messages from {linked.slackUserName ?? linked.slackUserId} in {linked.teamName ?? linked.teamId} now reach your agents.</Notice>
          <p><a href="/console/slack">See your Slack accounts</a></p>
        </div>
      ) : !code ? (
        <Empty><p>This page needs the link the Slack app sent you. Write to the app in Slack to get one.</p></Empty>
      ) : (
        <div class="card">
          <p>The Slack app sent you here to connect your Slack account to your account on this service. After linking, what you write to the app in Slack is handled by <strong>your</strong> agents.</p>
          <p class="small muted">Only link if you asked for this link in Slack yourself.</p>
          <button type="button" disabled={act.busy} onClick={link}>{act.busy ? 'Linking…' : 'Link my Slack account'}</button>
          <ErrorNote error={reason(act.error)} />
        </div>
      )}
    </Page>
  );
}

type Binding = { id: string; sessionId: string; channelType: string; channelId: string; scopeKey: string; queueMode: 'followup' | 'collect' | 'steer'; collectDebounceMs: number; createdAt: string };

const MODES: Record<string, string> = {
  followup: 'One after another',
  collect: 'Collect bursts into one prompt',
  steer: 'Steer the running prompt',
};

export function Bindings() {
  const paged = usePaged<Binding>((c) => get<{ bindings: Binding[]; cursor?: string; hasMore: boolean }>(`/api/channels/bindings?limit=50${c ? `&cursor=${enc(c)}` : ''}`).then((r) => ({ ...r, items: r.bindings })));
  const act = useAction();
  const [changed, setChanged] = useState('');
  return (
    <Page title="Channel bindings" intro="Which agent session answers each chat (a Telegram chat, a Slack thread, a GitHub issue), and how new messages are queued while it works.">
      {paged.error && !paged.items && <ErrorNote error={paged.error} onRetry={paged.reload} />}
      {!paged.items && !paged.error && <Loading what="Loading the bindings" />}
      {paged.items && paged.items.length === 0 && (
        <Empty><p>No chat is bound to a session yet. Bindings appear when you talk to your agents through Telegram, Slack or GitHub.</p></Empty>
      )}
      {paged.items && paged.items.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead><tr><th scope="col">Channel</th><th scope="col">Chat</th><th scope="col">Session</th><th scope="col">New messages</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {paged.items.map((b) => (
                <tr key={b.id}>
                  <td>{b.channelType}</td>
                  <td><code class="small">{b.channelId}</code></td>
                  <td><code class="small">{b.sessionId.slice(0, 8)}</code></td>
                  <td>
                    <label class="sr-only" for={`mode-${b.id}`}>Queue mode for {b.channelType} {b.channelId}</label>
                    <select id={`mode-${b.id}`} value={b.queueMode} disabled={act.busy} onChange={async (e) => {
                      const queueMode = e.currentTarget.value;
                      const r = await act.run(() => patch(`/api/channels/bindings/${enc(b.id)}`, { queueMode }));
                      if (r) { setChanged(`Saved: ${MODES[queueMode]}.`); paged.reload(); }
                    }}>
                      {Object.entries(MODES).map(([v, l]) => <option key={v} value={v}>{l}</option>)}
                    </select>
                  </td>
                  <td>
                    <ConfirmButton label="Remove" confirm="Unbind this chat?" busy={act.busy} onConfirm={async () => {
                      if (await act.run(() => del(`/api/channels/bindings/${enc(b.id)}`))) paged.reload();
                    }} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {changed && <Notice>{changed}</Notice>}
      <ErrorNote error={act.error} />
      <MoreButton paged={paged} />
    </Page>
  );
}

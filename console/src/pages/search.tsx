// Search across every integration the user may read (their own and the organization's).
import { useState } from 'preact/hooks';
import { ApiError, enc, get } from '../api';
import { Empty, ErrorNote, Field, Loading, Page, Time, asApiError, useLoad } from '../ui';
import { Integration, serviceName } from './integrations';

type Result = { integrationId: string; type: string; externalId: string; title: string; snippet: string; modifiedAt: string };

/** The snippet with its `**match**` marks as <mark>, everything else as text. */
function Snippet({ text }: { text: string }) {
  const parts = text.split('**');
  return <>{parts.map((p, i) => (i % 2 === 1 ? <mark key={i}>{p}</mark> : p))}</>;
}

export function Search() {
  const [q, setQ] = useState(new URLSearchParams(location.search).get('q') ?? '');
  const [results, setResults] = useState<Result[] | undefined>();
  const [cursor, setCursor] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [asked, setAsked] = useState('');
  const integrations = useLoad(() => get<{ integrations: Integration[] }>('/api/integrations'));
  const names = new Map((integrations.data?.integrations ?? []).map((i) => [i.id, serviceName(i.service)]));

  const run = async (more = false) => {
    const query = more ? asked : q.trim();
    if (!query) return;
    setBusy(true);
    setError(undefined);
    try {
      const r = await get<{ results: Result[]; cursor?: string; hasMore: boolean }>(`/api/search?q=${enc(query)}&limit=20${more && cursor ? `&cursor=${enc(cursor)}` : ''}`);
      setResults(more ? [...(results ?? []), ...r.results] : r.results);
      setCursor(r.hasMore ? r.cursor : undefined);
      setAsked(query);
      if (!more) history.replaceState(null, '', `/console/search?q=${enc(query)}`);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Page title="Search" intro="Find messages, issues, events and more across everything you have connected.">
      <form role="search" class="search-form" onSubmit={(e) => { e.preventDefault(); run(); }}>
        <Field label="Search for" name="q" error={error}>
          {(p) => <input {...p} type="search" value={q} onInput={(e) => setQ(e.currentTarget.value)} placeholder="e.g. invoice from:alice" maxLength={500} />}
        </Field>
        <button type="submit" disabled={busy || !q.trim()}>Search</button>
      </form>
      <ErrorNote error={error && !error.field('q') ? error : undefined} />
      {busy && !results && <Loading what="Searching" />}
      {results && (
        <section aria-live="polite" aria-label="Search results">
          <p class="muted small">{results.length === 0 ? '' : `${results.length}${cursor ? '+' : ''} result${results.length === 1 ? '' : 's'} for “${asked}”`}</p>
          {results.length === 0 ? (
            <Empty><p>Nothing matches “{asked}”. Try fewer or other words; items appear here after their integration has synced.</p></Empty>
          ) : (
            <ol class="results">
              {results.map((r) => (
                <li key={`${r.integrationId}:${r.type}:${r.externalId}`} class="card">
                  <h3 class="result-title">{r.title || `Untitled ${r.type.replace(/s$/, '')}`}</h3>
                  <p class="snippet"><Snippet text={r.snippet} /></p>
                  <p class="muted small">
                    <a href={`/console/integrations/${enc(r.integrationId)}`}>{names.get(r.integrationId) ?? 'Integration'}</a> · {r.type} · <Time iso={r.modifiedAt} />
                  </p>
                </li>
              ))}
            </ol>
          )}
          {cursor && <p><button type="button" class="secondary" disabled={busy} onClick={() => run(true)}>{busy ? 'Loading…' : 'More results'}</button></p>}
        </section>
      )}
    </Page>
  );
}

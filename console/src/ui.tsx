// Shared pieces: loading/empty/error states, forms whose errors sit next to their fields,
// dates in words, and a hook that loads a resource and reports its state.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

export type Load<T> = { data?: T; error?: ApiError; loading: boolean; reload: () => void; set: (d: T) => void };

/** Loads `fetcher()` now and on `reload()`; `deps` restart it. */
export function useLoad<T>(fetcher: () => Promise<T>, deps: unknown[] = []): Load<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean }>({ loading: true });
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    fetcher().then(
      (data) => live && setState({ data, loading: false }),
      (error) => live && setState({ error: asApiError(error), loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  return { ...state, reload: useCallback(() => setN((x) => x + 1), []), set: (data: T) => setState({ data, loading: false }) };
}

export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, 'CLIENT_ERROR', e instanceof Error ? e.message : String(e));
}

/** Runs an action: `busy` while it runs, its error kept for display. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const run = async <T,>(f: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await f();
    } catch (e) {
      setError(asApiError(e));
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(undefined) };
}

export function Page({ title, intro, children, actions }: { title: string; intro?: ComponentChildren; children: ComponentChildren; actions?: ComponentChildren }) {
  const h = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Console`;
    h.current?.focus();
  }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1} ref={h}>{title}</h1>
        {actions && <div class="page-actions">{actions}</div>}
      </div>
      {intro && <p class="intro">{intro}</p>}
      {children}
    </section>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p class="loading" role="status">
      <span class="spinner" aria-hidden="true" /> {what}…
    </p>
  );
}

/** An error as a sentence, with what to do about a few well-known ones. */
export function ErrorNote({ error, id, onRetry }: { error?: ApiError; id?: string; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div class="error" role="alert" id={id}>
      <p>
        <strong>{error.message}</strong>
        {error.details.length > 0 && (
          <ul>
            {error.details.map((d) => (
              <li key={d.field}>{d.field ? `${d.field}: ` : ''}{d.message}</li>
            ))}
          </ul>
        )}
      </p>
      <p class="muted small">
        {error.code && error.code !== 'CLIENT_ERROR' ? `Code ${error.code}` : ''}
        {error.requestId ? ` · request ${error.requestId}` : ''}
        {onRetry && (
          <>
            {' '}
            <button type="button" class="link" onClick={onRetry}>Try again</button>
          </>
        )}
      </p>
    </div>
  );
}

/** What a loaded resource shows: loading, its error (with a retry), or the content. */
export function Loaded<T>({ load, what, children }: { load: Load<T>; what: string; children: (d: T) => ComponentChildren }) {
  if (load.error && !load.data) return <ErrorNote error={load.error} onRetry={load.reload} />;
  if (load.data === undefined) return <Loading what={`Loading ${what}`} />;
  return <>{children(load.data)}</>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

let fieldSeq = 0;
/** A labelled input whose server-side problem (from `error.details`) is shown under it. */
export function Field({ label, name, error, hint, children }: { label: string; name: string; error?: ApiError; hint?: ComponentChildren; children: (props: { id: string; 'aria-invalid'?: boolean; 'aria-describedby'?: string; name: string }) => ComponentChildren }) {
  const [id] = useState(() => `f${++fieldSeq}`);
  const problem = error?.field(name);
  const described = [hint ? `${id}-hint` : '', problem ? `${id}-err` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${problem ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children({ id, name, 'aria-invalid': problem ? true : undefined, 'aria-describedby': described })}
      {hint && <p class="hint" id={`${id}-hint`}>{hint}</p>}
      {problem && <p class="field-error" id={`${id}-err`}>{problem}</p>}
    </div>
  );
}

export function Badge({ tone, children }: { tone: 'ok' | 'warn' | 'bad' | 'info' | 'muted'; children: ComponentChildren }) {
  return <span class={`badge ${tone}`}>{children}</span>;
}

export function when(iso?: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  const abs = Math.abs(s);
  const unit = abs < 60 ? [abs, 'second'] : abs < 3600 ? [Math.round(abs / 60), 'minute'] : abs < 86400 ? [Math.round(abs / 3600), 'hour'] : abs < 86400 * 30 ? [Math.round(abs / 86400), 'day'] : null;
  if (!unit) return d.toLocaleDateString();
  const [n, u] = unit as [number, string];
  if (n === 0 && u === 'second') return 'just now';
  const words = `${n} ${u}${n === 1 ? '' : 's'}`;
  return s >= 0 ? `${words} ago` : `in ${words}`;
}

export function Time({ iso }: { iso?: string | null }) {
  if (!iso) return <span class="muted">—</span>;
  return <time dateTime={iso} title={new Date(iso).toLocaleString()}>{when(iso)}</time>;
}

export function bytes(n?: number): string {
  if (n === undefined || n === null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Copies text, saying so for screen readers. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="secondary small"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          setTimeout(() => setDone(false), 2000);
        } catch {
          /* the value stays visible and selectable */
        }
      }}
    >
      <span aria-live="polite">{done ? 'Copied' : label}</span>
    </button>
  );
}

/** A destructive button that asks once more, in place (no dialog). */
export function ConfirmButton({ label, confirm, onConfirm, busy }: { label: string; confirm: string; onConfirm: () => void; busy?: boolean }) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) return <button type="button" class="danger small" disabled={busy} onClick={() => setAsking(true)}>{label}</button>;
  return (
    <span class="confirm" role="group" aria-label={confirm}>
      <span class="small">{confirm}</span>{' '}
      <button type="button" class="danger small" ref={yes} disabled={busy} onClick={() => { setAsking(false); onConfirm(); }}>Yes, {label.toLowerCase()}</button>{' '}
      <button type="button" class="secondary small" onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}

/** "More" for keyset-paginated lists: `{items, cursor, hasMore}` pages appended. */
export function usePaged<T>(fetchPage: (cursor?: string) => Promise<{ items: T[]; cursor?: string; hasMore: boolean }>, deps: unknown[] = []) {
  const [items, setItems] = useState<T[] | undefined>();
  const [cursor, setCursor] = useState<string | undefined>();
  const [hasMore, setHasMore] = useState(false);
  const [error, setError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const [n, setN] = useState(0);
  const load = async (c?: string) => {
    setBusy(true);
    setError(undefined);
    try {
      const page = await fetchPage(c);
      setItems((prev) => (c ? [...(prev ?? []), ...page.items] : page.items));
      setCursor(page.cursor);
      setHasMore(page.hasMore);
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    setItems(undefined);
    load();
  }, [...deps, n]);
  return { items, hasMore, error, busy, more: () => load(cursor), reload: () => setN((x) => x + 1) };
}

export function MoreButton({ paged }: { paged: { hasMore: boolean; busy: boolean; more: () => void } }) {
  if (!paged.hasMore) return null;
  return <p><button type="button" class="secondary" disabled={paged.busy} onClick={paged.more}>{paged.busy ? 'Loading…' : 'Show more'}</button></p>;
}

/** A status line for screen readers and sighted users (polite live region). */
export function Notice({ children, tone = 'ok' }: { children?: ComponentChildren; tone?: 'ok' | 'info' }) {
  return <div class={`notice ${tone}`} role="status">{children}</div>;
}

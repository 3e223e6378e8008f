// Signing in: GitHub or Google (with an optional invite code), or an API token; the return
// from the provider (`/auth/callback#code=…`), exchanged for a session token.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, post, setToken } from '../api';
import { navigate } from '../router';
import { AFTER_SIGN_IN } from '../session';
import { ErrorNote, Field, Loading, Notice, asApiError, useLoad } from '../ui';

const REASONS: Record<string, string> = {
  not_allowed: 'This account may not sign up here. Ask an administrator for an invite code, then sign in with it below.',
  no_email: 'Your account has no verified email address. Verify one with the provider and try again.',
  access_denied: 'Sign-in was cancelled at the provider.',
  invalid_state: 'That sign-in link expired or was already used. Start again.',
  oauth_error: 'The provider could not complete the sign-in. Try again in a moment.',
  exchange_failed: 'The provider refused the sign-in. Try again.',
  invite_invalid: 'That invite code is not valid (expired, used, or for another email).',
  session_ended: 'Your session ended. Sign in again.',
};

export function Login() {
  const q = new URLSearchParams(location.search);
  const [invite, setInvite] = useState(q.get('invite') ?? '');
  const [apiToken, setApiToken] = useState('');
  const [tokenError, setTokenError] = useState<ApiError | undefined>();
  const [busy, setBusy] = useState(false);
  const providers = useLoad(() => api<{ providers: string[] }>('GET', '/auth/providers', undefined, { auth: false }));
  const error = q.get('error');
  const start = (p: string) => `/auth/${p}${invite.trim() ? `?invite_code=${encodeURIComponent(invite.trim())}` : ''}`;
  useEffect(() => {
    document.title = 'Sign in · Console';
  }, []);

  const useToken = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setTokenError(undefined);
    setToken(apiToken.trim());
    try {
      await api('GET', '/api/me', undefined);
      finishSignIn();
    } catch (err) {
      setToken(null);
      const a = asApiError(err);
      setTokenError(a.status === 401 ? new ApiError(401, a.code, 'That token is not valid (revoked, expired, or mistyped).', [{ field: 'token', message: 'Not a valid API token' }]) : a);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin">
      <h1>Sign in to the console</h1>
      <p class="intro">Connect your accounts, watch their syncs, and manage how agents reach them.</p>
      {q.get('signed_out') && <Notice>You are signed out.</Notice>}
      {error && (
        <div class="error" role="alert">
          <p><strong>{REASONS[error] ?? `Sign-in failed (${error}).`}</strong></p>
        </div>
      )}
      <div class="card">
        <h2>With your account</h2>
        {providers.loading && <Loading what="Finding the sign-in options" />}
        {providers.error && <ErrorNote error={providers.error} onRetry={providers.reload} />}
        {providers.data && providers.data.providers.length === 0 && (
          <p>No sign-in provider is configured on this deployment (it needs <code>GITHUB_CLIENT_ID</code> or <code>GOOGLE_CLIENT_ID</code>). Use an API token below.</p>
        )}
        <div class="stack">
          {providers.data?.providers.includes('github') && <a class="button" href={start('github')}>Continue with GitHub</a>}
          {providers.data?.providers.includes('google') && <a class="button" href={start('google')}>Continue with Google</a>}
        </div>
        {(providers.data?.providers.length ?? 0) > 0 && (
          <Field label="Invite code (if you were given one)" name="invite" hint="Needed only the first time, when this deployment is invite-only.">
            {(p) => <input {...p} value={invite} onInput={(e) => setInvite(e.currentTarget.value)} autoComplete="off" spellcheck={false} />}
          </Field>
        )}
      </div>
      <form class="card" onSubmit={useToken}>
        <h2>With an API token</h2>
        <Field label="API token" name="token" error={tokenError} hint={<>From <code>npm run user:create</code> or the API tokens page.</>}>
          {(p) => <input {...p} type="password" required value={apiToken} onInput={(e) => setApiToken(e.currentTarget.value)} autoComplete="off" />}
        </Field>
        {tokenError && !tokenError.field('token') && <ErrorNote error={tokenError} />}
        <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Sign in with the token'}</button>
      </form>
    </div>
  );
}

function finishSignIn() {
  const next = sessionStorage.getItem(AFTER_SIGN_IN);
  sessionStorage.removeItem(AFTER_SIGN_IN);
  // Only console pages of this origin.
  const safe = next && /^\/(console|slack\/link|settings\/slack)/.test(next) ? next : '/console/integrations';
  if (safe.includes('#')) {
    location.assign(safe);
  } else {
    navigate(safe, { replace: true });
  }
}

export function AuthCallback({ onSignedIn }: { onSignedIn: () => void }) {
  const [error, setError] = useState<ApiError | undefined>();
  useEffect(() => {
    document.title = 'Signing in · Console';
    const params = new URLSearchParams(location.hash.slice(1));
    const code = params.get('code');
    // The one-time code leaves the address bar (and the history) at once.
    history.replaceState(null, '', '/auth/callback');
    if (!code) {
      setError(new ApiError(400, 'NO_CODE', 'This page is where sign-in returns, but it came without a sign-in code. Start again from the sign-in page.'));
      return;
    }
    post<{ token: string }>('/auth/exchange', { code }).then(
      (r) => {
        setToken(r.token);
        onSignedIn();
        finishSignIn();
      },
      (e) => {
        const a = asApiError(e);
        setError(a.code === 'INVALID_CODE' || a.status === 400 ? new ApiError(a.status, a.code, 'That sign-in code expired or was already used (codes last 60 seconds). Start again.', [], a.requestId) : a);
      },
    );
  }, []);
  return (
    <div class="signin">
      <h1>Signing you in</h1>
      {error ? (
        <>
          <ErrorNote error={error} />
          <p><a class="button" href="/login">Back to sign-in</a></p>
        </>
      ) : (
        <Loading what="Finishing sign-in" />
      )}
    </div>
  );
}

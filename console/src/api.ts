// The API client: same origin, bearer token from the sign-in (kept in localStorage), and every
// error envelope turned into an ApiError with a readable message.

const TOKEN_KEY = 'console.token';

export function token(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string | null) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

export type FieldProblem = { field: string; message: string };

export class ApiError extends Error {
  status: number;
  code: string;
  details: FieldProblem[];
  requestId?: string;
  constructor(status: number, code: string, message: string, details: FieldProblem[] = [], requestId?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }
  /** The problem with one field, if the server named it. */
  field(name: string): string | undefined {
    return this.details.find((d) => d.field === name || d.field.endsWith(`.${name}`))?.message;
  }
}

/** Called when a request answers 401 (the session ended): the app sends the user to sign in. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(f: () => void) {
  onUnauthorized = f;
}

const FRIENDLY: Record<string, string> = {
  RATE_LIMITED: 'Too many attempts; wait a moment and try again.',
  INTERNAL_ERROR: 'Something went wrong on the server.',
};

export async function api<T = any>(method: string, path: string, body?: unknown, opts: { auth?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const t = token();
  if (t && opts.auth !== false) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'NETWORK', 'Could not reach the service. Check your connection and try again.');
  }
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const code = data?.code ?? `HTTP_${res.status}`;
    let message: string = FRIENDLY[code] ?? data?.error ?? `The service answered ${res.status} ${res.statusText}`.trim();
    if (code === 'RATE_LIMITED' && res.headers.get('retry-after')) message = `Too many attempts; try again in ${res.headers.get('retry-after')} s.`;
    const details: FieldProblem[] = Array.isArray(data?.details) ? data.details.filter((d: any) => d && typeof d.message === 'string') : [];
    const err = new ApiError(res.status, code, message, details, data?.requestId ?? res.headers.get('x-request-id') ?? undefined);
    if (res.status === 401 && opts.auth !== false && t) onUnauthorized();
    throw err;
  }
  return data as T;
}

export const get = <T = any>(path: string) => api<T>('GET', path);
export const post = <T = any>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const put = <T = any>(path: string, body?: unknown) => api<T>('PUT', path, body ?? {});
export const patch = <T = any>(path: string, body?: unknown) => api<T>('PATCH', path, body ?? {});
export const del = <T = any>(path: string) => api<T>('DELETE', path);

export const enc = encodeURIComponent;

// A browser's cookies without a browser: `go(url, init)` fetches without following redirects,
// sends the cookies it holds and keeps the ones answered (Max-Age=0 removes one). Used by the MCP
// OAuth test and bench, which play the browser through sign-in and the consent form.
export function cookieJar() {
  const jar = new Map();
  const go = async (url, init = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', ...init, headers: { ...(init.headers ?? {}), ...(cookie ? { cookie } : {}) } });
    for (const c of res.headers.getSetCookie()) {
      const [k, v] = c.split(';')[0].split('=');
      if (/Max-Age=0/i.test(c)) jar.delete(k); else jar.set(k, v);
    }
    return res;
  };
  return { jar, go };
}

/** Unescapes the HTML entities the service's pages use (attribute values of hidden fields). */
export const unescapeHtml = (s) => s.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

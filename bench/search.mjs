// Search and MCP figures over the 10,000 issues `bench/sync.mjs` just synced (called from its
// `after` hook, with the service still running): search latency for a selective query (a
// handful of matches) and a broad one (every issue matches, so bm25 ranks all 10,000 before the
// first page), and the round trip of an MCP client's `tools/list` + one `tools/call` (a GitHub
// read action against the fake). Sequential requests over one keep-alive connection.

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x) => Number(x.toFixed(2));
const summary = (lat) => ({ n: lat.length, p50Ms: ms(pct(lat, 50)), p99Ms: ms(pct(lat, 99)) });

async function timed(fn, n, warmup = 5) {
  for (let i = 0; i < warmup; i++) await fn(i);
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    lat.push(performance.now() - t0);
  }
  return summary(lat);
}

export async function benchSearch({ url, token, integrationId, issues, perRepo, n = 200 }) {
  const headers = { authorization: `Bearer ${token}` };
  const search = async (q, expectSome = true) => {
    const r = await fetch(`${url}/api/integrations/${integrationId}/search?${new URLSearchParams({ q, limit: '20' })}`, { headers });
    const body = await r.json();
    if (r.status !== 200 || (expectSome && body.results.length === 0)) throw new Error(`search ${q}: ${r.status} ${JSON.stringify(body).slice(0, 300)}`);
    return body;
  };
  const broad = await search('issue');
  if (!broad.hasMore || broad.results.length !== 20) throw new Error('the broad query should match every issue');
  return {
    indexedIssues: issues,
    // "Issue 123" in issue titles: the issues numbered 123 (one per repository).
    selective: await timed((i) => search(`issue ${1 + ((i * 37) % perRepo)}`), n),
    broad: await timed(() => search('issue'), n),
    prefix: await timed((i) => search(`iss* ${1 + ((i * 53) % perRepo)}`), n),
  };
}

export async function benchMcp({ url, token, repository, n = 100 }) {
  const post = async (body) => {
    const r = await fetch(`${url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify(body),
    });
    const out = await r.json();
    if (r.status !== 200 || out.error || out.result?.isError) throw new Error(`mcp ${body.method}: ${r.status} ${JSON.stringify(out).slice(0, 300)}`);
    return out.result;
  };
  const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  if (init.protocolVersion !== '2025-06-18') throw new Error('initialize');
  let tools = 0;
  const listLat = [];
  const callLat = [];
  const both = await timed(async (i) => {
    const t0 = performance.now();
    const list = await post({ jsonrpc: '2.0', id: 2 * i + 1, method: 'tools/list' });
    const t1 = performance.now();
    tools = list.tools.length;
    await post({ jsonrpc: '2.0', id: 2 * i + 2, method: 'tools/call', params: { name: 'github_get_issue', arguments: { repository, number: 1 + (i % 50) } } });
    listLat.push(t1 - t0);
    callLat.push(performance.now() - t1);
  }, n);
  // The warm-up rounds are in listLat/callLat too: drop them.
  return { tools, roundTrip: both, toolsList: summary(listLat.slice(5)), toolsCall: summary(callLat.slice(5)) };
}

// Shared by the k6 scenarios: the plan's five requests (DESIGN.md section 11), each
// tagged with its kind so the summary reports them apart, and the token taken once
// in setup(). Environment: BASE_URL, API_KEY, COLLECTION (load), DIM (384),
// ENTITIES (1000), VUS, DURATION.
import http from 'k6/http';
import { check } from 'k6';

export const BASE = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const COLLECTION = __ENV.COLLECTION || 'load';
const DIM = parseInt(__ENV.DIM || '384');
const ENTITIES = parseInt(__ENV.ENTITIES || '1000');
const WORDS = 'graph vector retrieval fusion entity chunk index search latency throughput replica tenant document relation cluster'.split(' ');

export const KINDS = ['search', 'find', 'ingest', 'upsert', 'node'];

// Per-kind trends in the summary, and zero failures allowed.
export function thresholds() {
  const t = { http_req_failed: ['rate==0'] };
  for (const k of KINDS) t[`http_req_duration{kind:${k}}`] = ['max>=0'];
  return t;
}

export const summaryTrendStats = ['avg', 'med', 'p(95)', 'p(99)', 'max', 'count'];

// Options of a closed-loop scenario: VUS virtual users (default `vus`) for DURATION
// (default 60s), no think time.
export function closedLoop(vus) {
  return {
    vus: parseInt(__ENV.VUS || String(vus)),
    duration: __ENV.DURATION || '60s',
    thresholds: thresholds(),
    summaryTrendStats,
  };
}

export function setup() {
  const r = http.post(`${BASE}/auth/token`,
    JSON.stringify({ grant_type: 'api_key', api_key: __ENV.API_KEY }),
    { headers: { 'Content-Type': 'application/json' } });
  if (r.status !== 200) throw new Error(`POST /auth/token answered ${r.status}: ${r.body}`);
  return { token: r.json('access_token') };
}

// Vectors go out as JSON text from a pool formatted once per virtual user: building and
// encoding 384 fresh doubles in k6's JavaScript cost more CPU than the server spent on
// the request (a 10-point upsert), and on a shared machine that capped the measured
// rate. Each vector's first coordinate is drawn fresh, so no two requests repeat one
// (the server's search cache never answers them).
const TAILS = Array.from({ length: 256 }, () => {
  const v = new Array(DIM - 1);
  for (let i = 0; i < DIM - 1; i++) v[i] = (Math.random() * 2 - 1).toFixed(6);
  return v.join(',');
});
function vectorJson() {
  const tail = TAILS[(Math.random() * TAILS.length) | 0];
  return `[${(Math.random() * 2 - 1).toFixed(6)},${tail}]`;
}

// `body` is JSON text already, or a value to encode.
function post(data, path, kind, body, expected) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const r = http.post(`${BASE}${path}`, text, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${data.token}` },
    tags: { kind },
  });
  check(r, { [`${kind} ${expected}`]: (x) => x.status === expected });
  return r;
}

function randomId() {
  return Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
}

export const requests = {
  search: (d) => post(d, '/vectors/search', 'search',
    `{"collection":${JSON.stringify(COLLECTION)},"vector":${vectorJson()},"limit":10}`, 200),
  find: (d) => post(d, '/graphs/node/find', 'find',
    { label: 'LoadEntity', properties: { name: `entity-${Math.floor(Math.random() * ENTITIES)}` }, limit: 10 }, 200),
  ingest: (d) => {
    const words = [];
    for (let i = 0; i < 150; i++) {
      const w = WORDS[Math.floor(Math.random() * WORDS.length)];
      words.push(i % 7 === 0 ? w[0].toUpperCase() + w.slice(1) : w);
    }
    return post(d, '/ingest', 'ingest', { text: words.join(' '), metadata: { source: 'k6' } }, 202);
  },
  upsert: (d) => {
    const points = [];
    for (let i = 0; i < 10; i++) points.push(`{"id":${randomId()},"vector":${vectorJson()},"payload":{"source":"k6"}}`);
    return post(d, '/vectors/upsert', 'upsert',
      `{"collection":${JSON.stringify(COLLECTION)},"points":[${points.join(',')}]}`, 200);
  },
  node: (d) => post(d, '/graphs/node', 'node',
    { id: `n-${randomId()}`, labels: ['LoadNode'], properties: { source: 'k6' } }, 201),
};

// Picks a request kind by weight: [[kind, weight], ...].
export function pick(weights) {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  let x = Math.random() * total;
  for (const [kind, w] of weights) {
    if ((x -= w) < 0) return kind;
  }
  return weights[weights.length - 1][0];
}

export const MIX = [['search', 10], ['find', 5], ['ingest', 3], ['upsert', 2], ['node', 1]];

// PostgREST protocol conformance for the calls the page makes, against the
// fixture API of gateway_fixtures.sql. Runs against the gateway, and against
// real PostgREST when one is installed (run.sh does both):
//   API_URL=http://127.0.0.1:3000 API_IMPL=gateway|postgrest node --test test/conformance.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';

const base = process.env.API_URL;
const impl = process.env.API_IMPL || 'gateway';
if (!base) throw new Error('API_URL is not set');

async function call(path, { method = 'GET', body, headers = {} } = {}) {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.json).sort(), ['code', 'details', 'hint', 'message']);
  assert.equal(r.json.code, code);
  assert.equal(typeof r.json.message, 'string');
}

test('POST with named arguments returns a scalar as JSON', async () => {
  const r = await call('/rpc/add', { method: 'POST', body: { a: 2, b: 40 } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(r.json, 42);
});

test('GET with query-string arguments', async () => {
  const r = await call('/rpc/add?a=5&b=-7');
  assert.equal(r.status, 200);
  assert.equal(r.json, -2);
});

test('a TABLE function returns an array of objects, [] when empty', async () => {
  const r = await call('/rpc/items', { method: 'POST', body: { n: 3, prefix: 'p' } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, [{ id: 1, name: 'p1' }, { id: 2, name: 'p2' }, { id: 3, name: 'p3' }]);
  const empty = await call('/rpc/items?n=0');
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.json, []);
});

test('omitted arguments take their defaults', async () => {
  const r = await call('/rpc/items', { method: 'POST', body: { n: 1 } });
  assert.deepEqual(r.json, [{ id: 1, name: 'item1' }]);
  const e = await call('/rpc/echo', { method: 'POST', body: {} });
  assert.deepEqual(e.json, { box: null, label: 'none', doc: null });
});

test('SETOF scalar gives an array of values; a single composite gives an object', async () => {
  assert.deepEqual((await call('/rpc/numbers?n=3')).json, [1, 2, 3]);
  assert.deepEqual((await call('/rpc/pair', { method: 'POST', body: { l: 7 } })).json, { l: 7, r: 'r7' });
});

test('arrays, JSON documents and nulls pass as arguments', async () => {
  const r = await call('/rpc/echo', { method: 'POST', body: { box: [1, 2, 3, 4], label: null, doc: { a: [1] } } });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { box: [1, 2, 3, 4], label: null, doc: { a: [1] } });
  const g = await call('/rpc/echo?box=%7B5,6%7D&label=g');
  assert.deepEqual(g.json, { box: [5, 6], label: 'g', doc: null });
});

test('the call runs as the anonymous role, read-only for GET and non-volatile functions', async () => {
  const r = await call('/rpc/whoami');
  assert.equal(r.json.current_user, 'web_anon');
  assert.equal(r.json.session_user, 'authenticator');
  assert.equal(r.json.read_only, 'on');
  assert.match(r.json.search_path, /^"?api"?/);
  const v = await call('/rpc/whoami_volatile', { method: 'POST', body: {} });
  assert.equal(v.json.read_only, 'off');
  const vg = await call('/rpc/whoami_volatile');
  assert.equal(vg.json.read_only, 'on');
});

test("the anonymous role's statement_timeout is applied and holds", async () => {
  assert.equal((await call('/rpc/whoami')).json.statement_timeout, '1s');
  const t0 = Date.now();
  const r = await call('/rpc/slow', { method: 'POST', body: { seconds: 5 } });
  const elapsed = Date.now() - t0;
  assertError(r, 500, '57014');
  assert.ok(elapsed < 4000, `cancelled after ${elapsed} ms`);
});

test('unknown function: 404 PGRST202 naming the arguments', async () => {
  const r = await call('/rpc/nope', { method: 'POST', body: { x: 1, y: 2 } });
  assertError(r, 404, 'PGRST202');
  assert.equal(r.json.message, 'Could not find the function api.nope(x, y) in the schema cache');
  assert.equal(r.json.details,
    'Searched for the function api.nope with parameters x, y or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.');
  const g = await call('/rpc/nope');
  assertError(g, 404, 'PGRST202');
  assert.equal(g.json.message, 'Could not find the function api.nope without parameters in the schema cache');
});

test('functions outside the exposed schema are not found', async () => {
  for (const path of ['/rpc/hidden', '/rpc/pg_sleep?seconds=1', '/rpc/pg_read_file?filename=/etc/passwd',
    '/rpc/version']) {
    assertError(await call(path), 404, 'PGRST202');
  }
  assertError(await call('/rpc/pg_sleep', { method: 'POST', body: { seconds: 1 } }), 404, 'PGRST202');
});

test('wrong argument names: 404; missing required argument: 404', async () => {
  assertError(await call('/rpc/add', { method: 'POST', body: { a: 1, c: 2 } }), 404, 'PGRST202');
  assertError(await call('/rpc/add', { method: 'POST', body: { a: 1 } }), 404, 'PGRST202');
});

test('overloads are told apart by argument names; ambiguity is 300 PGRST203', async () => {
  assert.equal((await call('/rpc/over?x=1')).json, 'x');
  assert.equal((await call('/rpc/over', { method: 'POST', body: { x: 1, y: 'a' } })).json, 'xy');
  assertError(await call('/rpc/twin?a=1'), 300, 'PGRST203');
  assert.equal((await call('/rpc/twin?a=1&c=z')).json, 'ac');
});

test('invalid JSON body: 400 PGRST102', async () => {
  assertError(await call('/rpc/add', { method: 'POST', body: '{"a": 1,' }), 400, 'PGRST102');
});

test('bad argument values are PostgreSQL errors (22P02 -> 400)', async () => {
  const r = await call('/rpc/add', { method: 'POST', body: { a: 'one', b: 2 } });
  assertError(r, 400, '22P02');
});

const mapping = [
  ['P0001', 400], ['22023', 400], ['23505', 409], ['23503', 409], ['25006', 405],
  ['42501', 401], ['42883', 404], ['42P01', 404], ['53100', 503], ['53400', 500],
  ['54000', 500], ['57014', 500], ['08006', 503], ['XX000', 500], ['P0002', 500], ['PT418', 418],
];
for (const [code, status] of mapping) {
  test(`SQLSTATE ${code} -> HTTP ${status}, with message, details and hint`, async () => {
    const r = await call('/rpc/fail', { method: 'POST', body: { code } });
    assertError(r, status, code);
    assert.equal(r.json.message, 'failed on purpose');
    assert.equal(r.json.details, `detail of ${code}`);
    assert.equal(r.json.hint, `hint of ${code}`);
  });
}

test('a function the role may not execute: 401 with WWW-Authenticate', async () => {
  const r = await call('/rpc/forbidden', { method: 'POST', body: {} });
  assertError(r, 401, '42501');
  assert.equal(r.headers.get('www-authenticate'), 'Bearer');
});

test('RPC with another method: 405 PGRST101', async () => {
  for (const method of ['PUT', 'PATCH', 'DELETE']) {
    const r = await call('/rpc/add', { method, body: { a: 1, b: 2 } });
    assertError(r, 405, 'PGRST101');
    assert.equal(r.json.message, `Cannot use the ${method} method on RPC`);
  }
});

test('schema profiles: the exposed schema is accepted, others are 406 PGRST106', async () => {
  const ok = await call('/rpc/add', { method: 'POST', body: { a: 1, b: 1 }, headers: { 'Content-Profile': 'api' } });
  assert.equal(ok.json, 2);
  const okGet = await call('/rpc/add?a=1&b=2', { headers: { 'Accept-Profile': 'api' } });
  assert.equal(okGet.json, 3);
  const bad = await call('/rpc/hidden', { method: 'POST', body: {}, headers: { 'Content-Profile': 'private' } });
  assertError(bad, 406, 'PGRST106');
  assert.equal(bad.json.message, 'Invalid schema: private');
  assert.equal(bad.json.hint, 'Only the following schemas are exposed: api');
});

test('an Accept the API cannot produce: 406 PGRST107', async () => {
  assertError(await call('/rpc/add?a=1&b=2', { headers: { Accept: 'text/html' } }), 406, 'PGRST107');
  assert.equal((await call('/rpc/add?a=1&b=2', { headers: { Accept: 'application/json' } })).json, 3);
});

// postgrest.conf's server-cors-allowed-origins lists the demo page's origins
// (http://127.0.0.1:8080, http://localhost:8080): those get their origin back,
// with credentials, as PostgREST answers a listed origin; any other origin
// gets no CORS headers (the browser keeps the answer from its page).
test('CORS: the allowed origins get their own origin back; preflight requests are answered', async () => {
  const page = 'http://localhost:8080';
  const r = await call('/rpc/add?a=1&b=2', { headers: { Origin: page } });
  assert.equal(r.headers.get('access-control-allow-origin'), page);
  assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
  assert.match(r.headers.get('access-control-expose-headers'), /Content-Range/);
  const err = await call('/rpc/nope', { headers: { Origin: page } });
  assert.equal(err.headers.get('access-control-allow-origin'), page);
  const pre = await fetch(base + '/rpc/add', {
    method: 'OPTIONS',
    headers: { Origin: page, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
  });
  assert.equal(pre.status, 200);
  assert.equal(pre.headers.get('access-control-allow-origin'), page);
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  assert.match(pre.headers.get('access-control-allow-headers').toLowerCase(), /content-type/);
  assert.equal(pre.headers.get('access-control-max-age'), '86400');
});

test('CORS: another origin gets no CORS headers, on a call or a preflight', async () => {
  for (const origin of ['http://evil.example', 'http://localhost:8081', 'null']) {
    const r = await call('/rpc/add?a=1&b=2', { headers: { Origin: origin } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), null, origin);
    assert.equal(r.headers.get('access-control-allow-credentials'), null, origin);
    const pre = await fetch(base + '/rpc/add', {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(pre.headers.get('access-control-allow-origin'), null, origin);
    assert.equal(pre.headers.get('access-control-allow-methods'), null, origin);
  }
});

test('paths other than /rpc/<function> are not served', async () => {
  assertError(await call('/gallery'), 404, 'PGRST205');
  assertError(await call('/'), 404, 'PGRST126');
  // a malformed %-escape is the client's error, not the server's
  const bad = await call('/rpc/%zz');
  assert.ok(bad.status >= 400 && bad.status < 500, `status ${bad.status}`);
});

test('a body over the limit is refused with 413', { skip: impl !== 'gateway' && 'PostgREST leaves body limits to a proxy' }, async () => {
  const limit = Number(process.env.GATEWAY_MAX_BODY);
  assert.ok(limit > 0, 'GATEWAY_MAX_BODY is set');
  const big = JSON.stringify({ label: 'x'.repeat(limit) });
  const r = await call('/rpc/echo', { method: 'POST', body: big });
  assertError(r, 413, '54000');
  const fits = JSON.stringify({ label: 'y'.repeat(limit - 100) });
  assert.equal((await call('/rpc/echo', { method: 'POST', body: fits })).status, 200);
});

test('headers a function sets in response.headers are sent', async () => {
  const r = await call('/rpc/with_headers?v=hello');
  assert.equal(r.status, 200);
  assert.equal(r.json, 1);
  assert.equal(r.headers.get('x-fixture'), 'hello');
  // the gateway adds its wait for a session (PostgREST, without
  // server-timing-enabled, sends the function's header as it is)
  if (impl === 'gateway') assert.match(r.headers.get('server-timing'), /^db;dur=1\.5, queue;dur=[0-9]+\.[0-9]$/);
  else assert.equal(r.headers.get('server-timing'), 'db;dur=1.5');
  const plain = await call('/rpc/add?a=1&b=2');
  assert.equal(plain.headers.get('x-fixture'), null);
});

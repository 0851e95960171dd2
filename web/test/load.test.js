// Serving a burst (issue 22): gateways started here on the test cluster
// (run.sh's load suite), each with its own settings, and bursts of
// concurrent searches at them. Bounds are generous on purpose: the machine
// may be shared and loaded, and nothing here may flake.
//   PGDATABASE=imgsearch_web WEB_TEST_DIR=... node --test test/load.test.js
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { firstOrTied } from './ranking.js';

const web = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const manifest = fs.readFileSync(path.join(dataset, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [id, name, grp, width, height] = l.split('\t'); return { id: Number(id), name, grp, width: Number(width), height: Number(height) }; });
const image = (name) => fs.readFileSync(path.join(dataset, 'images', name)).toString('base64');
const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;

const db = new pg.Client();
await db.connect();
const gateways = [];
after(async () => {
  for (const g of gateways) g.proc.kill();
  await db.end();
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// Requests served by the cluster's model workers so far.
async function served() {
  const { rows } = await db.query('SELECT sum(served)::int AS n FROM imgsearch_model_workers()');
  return rows[0].n;
}

// Searches served since `before`, once at least `want` (or 5 s passed), and
// 300 ms more for any beyond: a worker counts a request after it sent the
// answer, so the count may lag the answers a client holds by a moment.
async function servedSince(before, want) {
  for (let t = 0; t < 50 && await served() - before < want; t++) await sleep(100);
  await sleep(300);
  return await served() - before;
}

// A gateway on free ports with these PGRST_*/GATEWAY_* settings over
// postgrest.conf; `watch` (optional) is called while it starts, with what
// /ready and the API port answer, until /ready says 200.
async function startGateway(env, watch = null) {
  const port = await freePort();
  const adminPort = await freePort();
  const proc = spawn(process.execPath, ['gateway/server.js', 'postgrest.conf'], {
    cwd: web,
    env: {
      ...process.env,
      PGRST_DB_URI: `postgresql://authenticator@${process.env.PGHOST}:${process.env.PGPORT}/${process.env.PGDATABASE}`,
      PGRST_SERVER_HOST: '127.0.0.1', PGRST_SERVER_PORT: String(port), PGRST_ADMIN_SERVER_PORT: String(adminPort),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const g = { proc, api: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}`, log: () => log };
  gateways.push(g);
  const status = (url) => fetch(url).then((r) => r.status, () => 'refused');
  for (let i = 0; i < 1200; i++) {                     // up to 2 minutes
    // the API first: the gateway says ready, then opens the API, so an API
    // probed after a 503 from /ready may have opened in between (a race of
    // the test's, not the gateway's); probed before it, it must be refused
    const apiStatus = watch ? await status(`${g.api}/rpc/stats`) : null;
    const ready = await status(`${g.admin}/ready`);
    if (ready === 200) return g;
    if (watch) watch(ready, apiStatus);
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`gateway did not get ready: ${log}`);
}

async function search(api, body) {
  const t0 = performance.now();
  const res = await fetch(`${api}/rpc/search`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await res.json();
  const queue = /(?:^|, )queue;dur=([0-9.]+)$/.exec(res.headers.get('Server-Timing') || '');
  return {
    status: res.status, body: json, ms: performance.now() - t0,
    queueMs: queue ? Number(queue[1]) : null, retryAfter: res.headers.get('Retry-After'),
  };
}

// The gateway sized for this machine: db-pool is not set in postgrest.conf.
let sized;
let sessions;

test('sessions sized for the machine, every one warmed up, and the API listens only then', async () => {
  const before = await served();
  const seen = [];
  sized = await startGateway({}, (ready, apiStatus) => seen.push([ready, apiStatus]));
  // while it warms up, /ready is 503 (or its port not open yet) and the API
  // port is not open: a load balancer sends nothing there
  for (const [ready, apiStatus] of seen) {
    assert.ok(ready === 503 || ready === 'refused', `ready ${ready}`);
    assert.equal(apiStatus, 'refused');
  }
  assert.equal((await fetch(`${sized.api}/rpc/stats`)).status, 200);
  const { rows } = await db.query(`SELECT state, query FROM pg_stat_activity
    WHERE application_name = 'imgsearch-gateway' AND datname = current_database()`);
  sessions = rows.length;
  // two per core (the server has room: max_connections 40)
  assert.equal(sessions, Math.max(2, 2 * cpus), sized.log());
  assert.match(sized.log(), new RegExp(`${sessions} sessions \\(sized for ${cpus} cores\\), ${sessions} warmed up`));
  // each ran its warm-up searches (two: the first a new session's cost, the
  // second a warm one's), all through the model workers
  for (const r of rows) assert.equal(r.query, 'COMMIT');
  assert.ok(await servedSince(before, 2 * sessions) >= 2 * sessions, 'the warm-up searches reached the model workers');
});

// Issue 22's burst: on 2 cores, 12 searches at once took 10.5-11 s for 8 of
// them (cold sessions opened under the burst), or answered 503 after 15 s.
// Now all answer, and the slowest within 3x what the same 12 extractions
// take one after the other (2x is what the issue asks; 3x leaves room for a
// machine whose load changes between the two measurements).
test('12 concurrent searches, 12 images: all 200, the slowest within 3x the 12 in a row', async (t) => {
  const picks = manifest.slice(0, 12);
  // one at a time, each image with a box: the same work, other extractions
  // (vgg16_features keeps a session's last result)
  let inRow = 0;
  for (const m of picks) {
    const a = await search(sized.api, { image: image(m.name), k: 5, box: [1, 1, m.width - 2, m.height - 2] });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    inRow += a.ms;
  }
  const answers = await Promise.all(picks.map((m) => search(sized.api, { image: image(m.name), k: 5 })));
  const slowest = Math.max(...answers.map((a) => a.ms));
  t.diagnostic(`in a row ${Math.round(inRow)} ms; at once: slowest ${Math.round(slowest)} ms (${(slowest / inRow).toFixed(2)}x), `
    + `queue waits ${answers.map((a) => Math.round(a.queueMs)).join(' ')} ms`);
  answers.forEach((a, i) => {
    assert.equal(a.status, 200, `${picks[i].name}: ${JSON.stringify(a.body)}`);
    assert.ok(firstOrTied(a.body, picks[i].id), `${picks[i].name} first`);
    assert.ok(a.queueMs !== null && a.queueMs <= a.ms, 'Server-Timing has the queue wait');
  });
  assert.ok(slowest <= 3 * inRow, `slowest ${Math.round(slowest)} ms, 12 in a row ${Math.round(inRow)} ms`);
  // more requests than sessions: some waited, and say so
  assert.ok(answers.some((a) => a.queueMs > 0), 'a queue wait is reported');
});

// 50 at once: each answered, or refused at once as busy, never an error nor
// a 503 that came after a wait (the statement timeout's PT503).
test('50 concurrent searches: 200 or a fast 503 (PGRSTX03, Retry-After), never 500', async (t) => {
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => {
    const m = manifest[i % manifest.length];
    const v = Math.floor(i / manifest.length);      // a box of its own past the first round
    return search(sized.api, v === 0 ? { image: image(m.name), k: 5 } : { image: image(m.name), k: 5, box: [v, v, m.width - 2 * v, m.height - 2 * v] })
      .then((a) => ({ ...a, m, boxed: v > 0 }));
  }));
  const ok = answers.filter((a) => a.status === 200);
  const busy = answers.filter((a) => a.status === 503);
  t.diagnostic(`${ok.length} x 200 (slowest ${Math.round(Math.max(0, ...ok.map((a) => a.ms)))} ms), `
    + `${busy.length} x 503 (${busy.map((a) => Math.round(a.ms)).join(' ')} ms)`);
  assert.equal(ok.length + busy.length, 50, `statuses ${answers.map((a) => a.status).join(' ')}`);
  assert.ok(ok.length >= sessions, 'at least as many answered as there are sessions');
  for (const a of ok) if (!a.boxed) assert.ok(firstOrTied(a.body, a.m.id), `${a.m.name} first`);
  for (const a of busy) {
    assert.equal(a.body.code, 'PGRSTX03', JSON.stringify(a.body));
    assert.match(a.body.message, /busy.*Try again in \d+ s/);
    assert.match(a.retryAfter, /^[1-9][0-9]*$/);
    assert.equal(a.queueMs, 0);
    // at once: 1 s is the aim (measured here at 0.4 s on a loaded 2-core
    // machine); 2 s for any one of them, so that a stalled test process
    // does not fail it
    assert.ok(a.ms < 2000, `503 after ${Math.round(a.ms)} ms`);
  }
  if (busy.length) {
    const median = busy.map((a) => a.ms).sort((x, y) => x - y)[busy.length >> 1];
    assert.ok(median < 1000, `median 503 after ${Math.round(median)} ms`);
  }
});

// Holds gallery.images locked while fn runs: a search that reaches its query
// waits there, holding its gateway session, for as long as the test wants.
async function withImagesLocked(fn) {
  const locker = new pg.Client();
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE gallery.images IN ACCESS EXCLUSIVE MODE');
    return await fn();
  } finally {
    await locker.query('COMMIT');
    await locker.end();
  }
}

// Waits until a gateway session waits on that lock.
async function sessionBlocked() {
  for (let i = 0; i < 300; i++) {
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = 'imgsearch-gateway' AND wait_event_type = 'Lock'`);
    if (rows[0].n > 0) return;
    await sleep(20);
  }
  throw new Error('no gateway session waits on the lock');
}

// One session and a bound of 10 ms: while the session is held, every other
// request would wait longer than that (the warm-up measured a search), so it
// is refused, at once; the one on the session completes.
test('past the bound a request is refused at once; CORS * when no origins are configured', async () => {
  const g = await startGateway({ PGRST_DB_POOL: '1', PGRST_DB_POOL_ACQUISITION_TIMEOUT: '0.01', PGRST_SERVER_CORS_ALLOWED_ORIGINS: '' });
  assert.match(g.log(), /1 sessions \(db-pool\), 1 warmed up/);
  const picks = manifest.slice(0, 5);
  let first;
  const busy = await withImagesLocked(async () => {
    first = search(g.api, { image: image(picks[0].name), k: 3 });
    await sessionBlocked();
    return Promise.all(picks.slice(1).map((m) => search(g.api, { image: image(m.name), k: 3 })));
  });
  const a = await first;
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.ok(firstOrTied(a.body, picks[0].id));
  for (const b of busy) {
    assert.equal(b.status, 503, JSON.stringify(b.body));
    assert.equal(b.body.code, 'PGRSTX03');
    assert.match(b.body.message, /^The server is busy: \d+ requests are waiting for it\. Try again in \d+ s\.$/);
    assert.match(b.body.details, /over the limit of 0\.0 s \(db-pool-acquisition-timeout\)/);
    assert.match(b.retryAfter, /^[1-9][0-9]*$/);
    assert.ok(b.ms < 2000, `503 after ${Math.round(b.ms)} ms`);
  }
  // no server-cors-allowed-origins: any origin, as PostgREST
  const r = await fetch(`${g.api}/rpc/methods`, { headers: { Origin: 'http://anywhere.example' } });
  assert.equal(r.headers.get('Access-Control-Allow-Origin'), '*');
  assert.equal(r.headers.get('Access-Control-Allow-Credentials'), null);
  assert.match(r.headers.get('Access-Control-Expose-Headers'), /Retry-After/);
});

// One session, no bound to speak of: requests are served in the order they
// came, each reports its wait, and one whose client left is not run at all.
test('the queue is first come, first served; a client that leaves gives up its place', async () => {
  const g = await startGateway({ PGRST_DB_POOL: '1', PGRST_DB_POOL_ACQUISITION_TIMEOUT: '600' });
  const picks = manifest.slice(0, 4);
  const before = await served();
  const done = [];
  const calls = [];
  const send = (i) => search(g.api, { image: image(picks[i].name), k: 3 }).then((a) => { done.push(i); return a; });
  let left;
  await withImagesLocked(async () => {
    calls.push(send(0));
    await sessionBlocked();               // the session is held: the others queue
    calls.push(send(1));
    await sleep(200);
    const controller = new AbortController();
    left = fetch(`${g.api}/rpc/search`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: controller.signal,
      body: JSON.stringify({ image: image(picks[2].name), k: 3 }),
    }).catch((e) => e);
    await sleep(200);
    controller.abort();                   // the third leaves while it waits
    await sleep(100);
    calls.push(send(3));
    await sleep(200);
  });
  const answers = await Promise.all(calls);
  assert.equal((await left).name, 'AbortError');
  for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.deepEqual(done, [0, 1, 3], 'served in the order they came');
  // the waits: the first none, the others at least the time they queued
  // behind the held session (200 ms and more)
  assert.ok(answers[0].queueMs < 100, `first waited ${answers[0].queueMs} ms`);
  assert.ok(answers[1].queueMs >= 400 && answers[2].queueMs >= 150, answers.map((a) => a.queueMs).join(' '));
  assert.equal(await servedSince(before, 3), 3, 'the search whose client left never ran');
});

// Unset db-pool takes no more sessions than the server can give the login
// (less 2): with authenticator limited to 4 connections more than it has
// now, 2 sessions, whatever the cores.
test('sessions sized within the connections the server can give', async () => {
  const gatewaySessions = async () => (await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE application_name = 'imgsearch-gateway' AND datname = current_database()`)).rows[0].n;
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = 'authenticator'`);
  const before = await gatewaySessions();     // the earlier tests' gateways
  await db.query(`ALTER ROLE authenticator CONNECTION LIMIT ${rows[0].n + 4}`);
  try {
    const g = await startGateway({});
    assert.match(g.log(), new RegExp(`: 2 sessions \\(sized for ${cpus} cores\\), 2 warmed up`));
    assert.equal(await gatewaySessions(), before + 2);
    assert.equal((await search(g.api, { image: image(manifest[0].name), k: 3 })).status, 200);
  } finally {
    await db.query('ALTER ROLE authenticator CONNECTION LIMIT -1');
  }
});

// The search API on the small test dataset (run.sh setup loads it): results
// checked against an independent ranking computed here from the stored
// features, argsort against faissflat, kdtree and lsh (approximate: recall
// against the exact ranking), box queries, errors, over SQL and HTTP.
//   API_URL=... PGDATABASE=imgsearch_web WEB_TEST_DIR=... node --test test/api.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { execFileSync } from 'node:child_process';
import { assertSameRanking, firstOrTied, l2 } from './ranking.js';
import { storedFeatures } from './common.js';

const api = process.env.API_URL;
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const manifest = fs.readFileSync(path.join(dataset, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [id, name, grp, width, height] = l.split('\t'); return { id: Number(id), name, grp, width: Number(width), height: Number(height) }; });
const queries = fs.readFileSync(path.join(dataset, 'queries.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [name, grp, x, y, w, h] = l.split('\t'); return { name, grp, box: [x, y, w, h].map(Number) }; });
const image = (name) => fs.readFileSync(path.join(dataset, 'images', name)).toString('base64');
const queryImage = (name) => fs.readFileSync(path.join(dataset, 'queries', name)).toString('base64');

let db;
let feats;   // id -> Float64Array, read from the table

before(async () => {
  db = new pg.Client();
  await db.connect();
  feats = await storedFeatures(db);
});
after(() => db.end());

// The exact k nearest, computed here: [{id, distance}] by distance, then id
// (k = manifest.length: every row).
async function expected(b64, k, box = null) {
  const { rows } = await db.query(
    box ? 'SELECT vgg16_features(decode($1, \'base64\'), $2)::real[] AS q' : 'SELECT vgg16_features(decode($1, \'base64\'))::real[] AS q',
    box ? [b64, box] : [b64]);
  const q = Float64Array.from(rows[0].q);
  return [...feats].map(([id, f]) => ({ id, distance: l2(q, f) }))
    .sort((a, b) => a.distance - b.distance || a.id - b.id).slice(0, k);
}

async function search(args) {
  const res = await fetch(`${api}/rpc/search`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args),
  });
  return { status: res.status, body: await res.json() };
}

// An answer of k rows against the exact ranking computed here, fair to ties
// (ranking.js): the distances rank by rank, each row at its own distance,
// every row nearer than the k-th; distances within 1e-4 (the server's
// against doubles here) count as equal.
async function assertExact(got, b64, k, box = null, what = '') {
  const all = await expected(b64, manifest.length, box);
  assertSameRanking(got, all.slice(0, k), {
    whole: k >= all.length, eps: 1e-4, truth: new Map(all.map((r) => [r.id, r.distance])), what,
  });
}

test('every image of the dataset is loaded with its feature', async () => {
  assert.equal(feats.size, manifest.length);
  const { rows } = await db.query('SELECT id, name, grp, width, height FROM gallery.images ORDER BY id');
  assert.deepEqual(rows.map((r) => ({ ...r, id: Number(r.id) })), manifest);
});

const METHODS = ['argsort', 'faissflat', 'kdtree', 'lsh'];

test('methods(): argsort and the faissflat, kdtree and lsh indexes the loader built', async () => {
  const res = await fetch(`${api}/rpc/methods`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  const rows = await res.json();
  assert.deepEqual(rows.map((r) => r.method), METHODS);
  assert.equal(rows[0].index_name, null);
  assert.equal(rows[1].index_name, 'images_feat_faissflat');
  assert.equal(rows[2].index_name, 'images_feat_kdtree');
  assert.equal(rows[3].index_name, 'images_feat_lsh');
  // An index on another column or of another kind is no search method.
  await db.query('CREATE INDEX images_grp_test ON gallery.images (grp)');
  try {
    const { rows: m } = await db.query('SELECT method FROM api.methods()');
    assert.deepEqual(m.map((r) => r.method), METHODS);
  } finally {
    await db.query('DROP INDEX gallery.images_grp_test');
  }
  // Nor is one whose operator class does not serve <-> (search's ORDER BY):
  // with faissflat's only index for <=>, faissflat is gone; back with <->.
  await db.query('BEGIN');
  try {
    await db.query('DROP INDEX gallery.images_feat_faissflat');
    await db.query('CREATE INDEX images_feat_cosine_test ON gallery.images USING faissflat (feat imgfeat_cosine_ops)');
    const { rows: m } = await db.query('SELECT method FROM api.methods()');
    assert.deepEqual(m.map((r) => r.method), METHODS.filter((x) => x !== 'faissflat'));
    await db.query('CREATE INDEX images_feat_l2_test ON gallery.images USING faissflat (feat imgfeat_l2_ops)');
    const { rows: m2 } = await db.query('SELECT method, index_name FROM api.methods()');
    assert.deepEqual(m2.map((r) => r.method), METHODS);
    assert.equal(m2[1].index_name, 'images_feat_l2_test');
  } finally {
    await db.query('ROLLBACK');
  }
});

test('stats(): counts agree with the dataset manifest; the model says it is random', async () => {
  const res = await fetch(`${api}/rpc/stats?`);
  const s = await res.json();
  assert.equal(s.images, manifest.length);
  assert.equal(s.with_features, manifest.length);
  assert.equal(s.groups, new Set(manifest.map((m) => m.grp)).size);
  assert.deepEqual(s.methods, METHODS);
  assert.match(s.model.weights, /^random/);
});

for (const method of ['argsort', 'faissflat', 'kdtree', 'auto']) {
  test(`search with ${method} returns the exact k nearest, a dataset image first at distance 0`, async () => {
    for (const m of [manifest[1], manifest[manifest.length - 2]]) {
      const b64 = image(m.name);
      const { status, body } = await search({ image: b64, k: 7, method });
      assert.equal(status, 200, JSON.stringify(body));
      await assertExact(body, b64, 7, null, m.name);
      // first, or tied with the first (an identical image would be)
      assert.ok(firstOrTied(body, m.id), `${m.name} first`);
      const self = body.find((r) => r.id === m.id);
      assert.ok(self.distance < 1e-4);
      assert.equal(self.grp, m.grp);
      assert.deepEqual([self.width, self.height], [m.width, m.height]);
      assert.ok(Buffer.from(self.thumb, 'base64').subarray(0, 2).equals(Buffer.from([0xff, 0xd8])), 'thumb is a JPEG');
    }
  });
}

// lsh too: on this small set its default budget covers everything (24 rows:
// ceil(sqrt(24)) = 5 buckets, within lsh.probes' 64; fewer entries than
// lsh.candidates' 1500), so its first round is exact.
for (const method of ['faissflat', 'kdtree', 'lsh']) {
  test(`argsort and ${method} return the same ids for every query, k = all images`, async () => {
    for (const q of queries.slice(0, 3)) {
      const b64 = queryImage(q.name);
      const a = (await search({ image: b64, k: manifest.length, method: 'argsort', box: q.box })).body;
      const f = (await search({ image: b64, k: manifest.length, method, box: q.box })).body;
      assert.equal(a.length, manifest.length);
      // every row: the same rows, the same distances rank by rank (ties as sets)
      assertSameRanking(f, a, { whole: true, eps: 1e-5, what: q.name });
    }
  });
}

// lsh is approximate: a row may be missing, never out of order or at a wrong
// distance. On this small set its default budget covers every row (see
// above), so it returns the exact answers; asserted here is what lsh
// promises anywhere near that: the same first row, recall@10 >= 0.9 (a row
// at the k-th row's distance counts: ties may swap places).
test('search with lsh: exact distances in order, the same first row as argsort, recall@10 >= 0.9', async () => {
  const k = 10;
  const cases = [
    ...[manifest[1], manifest[manifest.length - 2]].map((m) => ({ b64: image(m.name), box: null, first: m.id })),
    ...queries.slice(0, 3).map((q) => ({ b64: queryImage(q.name), box: q.box, first: null })),
  ];
  let found = 0;
  for (const { b64, box, first } of cases) {
    const { status, body } = await search({ image: b64, k, method: 'lsh', ...(box ? { box } : {}) });
    assert.equal(status, 200, JSON.stringify(body));
    const all = await expected(b64, manifest.length, box);
    const exact = new Map(all.map((r) => [r.id, r.distance]));
    assert.equal(body.length, k, 'LIMIT k rows');
    assert.equal(new Set(body.map((r) => r.id)).size, k, 'no row twice');
    body.forEach((r, i) => {
      assert.equal(r.rank, i + 1);
      assert.ok(Math.abs(r.distance - exact.get(r.id)) < 1e-4, `rank ${i + 1}: id ${r.id} at ${r.distance}, exact ${exact.get(r.id)}`);
      if (i > 0) assert.ok(r.distance >= body[i - 1].distance, `rank ${i + 1} is nearer than rank ${i}`);
    });
    assert.ok(Math.abs(body[0].distance - all[0].distance) < 1e-5, 'the nearest row first');
    if (first !== null) assert.ok(firstOrTied(body, first), 'a dataset image finds itself first (or tied with the first)');
    const kth = all[k - 1].distance + 1e-5;
    const hits = body.filter((r) => exact.get(r.id) <= kth).length;
    assert.ok(hits / k >= 0.9, `recall@${k} ${hits / k}`);
    found += hits;
  }
  assert.ok(found / (k * cases.length) >= 0.9, `recall@${k} over every case ${found / (k * cases.length)}`);
});

// The budget bounds a round, not the answer: a search asking for more rows
// than a round finds widens (probes and candidates x4 a round). Rows never go
// backwards, so a row the first rounds missed below the last row returned is
// lost; every row farther than the farthest one missed comes, in exact order,
// none twice. A budget of one bucket and one candidate, k = every image.
test('search with lsh under a tiny budget widens: exact order, none twice, every row past those missed', async () => {
  const c = new pg.Client();
  await c.connect();
  try {
    await c.query("LOAD 'imgsearch'");
    await c.query('SET lsh.probes = 1');
    await c.query('SET lsh.candidates = 1');
    const cases = [
      ...[manifest[1], manifest[manifest.length - 2]].map((m) => ({ b64: image(m.name), box: null })),
      ...queries.slice(0, 3).map((q) => ({ b64: queryImage(q.name), box: q.box })),
    ];
    let returned = 0;
    for (const { b64, box } of cases) {
      const { rows } = await c.query("SELECT rank, id, distance FROM api.search($1, $2, 'lsh', $3)",
        [b64, manifest.length, box]);
      const all = await expected(b64, manifest.length, box);
      const truth = new Map(all.map((r) => [r.id, r.distance]));
      const ids = rows.map((r) => Number(r.id));
      assert.equal(new Set(ids).size, ids.length, 'no row twice');
      rows.forEach((r, i) => {
        const want = truth.get(Number(r.id));
        assert.ok(Math.abs(r.distance - want) <= 1e-5 * Math.max(1, want), `row ${r.id}: ${r.distance} vs ${want}`);
        if (i > 0) assert.ok(r.distance >= rows[i - 1].distance, `rank ${i + 1} out of order`);
      });
      const missed = all.filter((r) => !ids.includes(r.id));
      const floor = Math.max(-Infinity, ...missed.map((r) => r.distance));
      for (const r of all) {
        if (r.distance > floor + 1e-5) assert.ok(ids.includes(r.id), `row ${r.id} farther than every missed one`);
      }
      returned += ids.length;
    }
    // one candidate a round: most rows still come (the widening works)
    assert.ok(returned >= 0.5 * manifest.length * cases.length, `${returned} rows in all`);
    // and at probes = candidates = 0 the search is exact: argsort's answer
    await c.query('SET lsh.probes = 0');
    await c.query('SET lsh.candidates = 0');
    for (const { b64, box } of cases) {
      const { rows } = await c.query("SELECT rank, id, distance FROM api.search($1, $2, 'lsh', $3)",
        [b64, manifest.length, box]);
      await assertExact(rows.map((r) => ({ ...r, id: Number(r.id) })), b64, manifest.length, box);
    }
  } finally {
    await c.end();
  }
});

test('box queries rank by the feature of the area', async () => {
  for (const q of queries.slice(0, 3)) {
    const b64 = queryImage(q.name);
    const { status, body } = await search({ image: b64, k: 5, method: 'faissflat', box: q.box });
    assert.equal(status, 200, JSON.stringify(body));
    await assertExact(body, b64, 5, q.box, q.name);
  }
  // The whole image as the box is the image itself: distance 0 to it.
  const m = manifest[2];
  // (every row: were another image at the same distance, either may be first)
  const whole = (await search({ image: image(m.name), k: manifest.length, box: [0, 0, m.width, m.height] })).body;
  assert.ok(firstOrTied(whole, m.id));
  assert.ok(whole[0].distance < 1e-4);
  // A part of it is another query.
  const part = (await search({ image: image(m.name), k: 1, box: [0, 0, m.width >> 1, m.height >> 1] })).body;
  assert.ok(part[0].distance > 1e-3);
});

test('search runs the chosen method: faissflat, kdtree and lsh scan their index, argsort none', async () => {
  const c = new pg.Client();
  await c.connect();
  try {
    const plans = [];
    c.on('notice', (n) => plans.push(n.message));
    await c.query("LOAD 'auto_explain'");
    await c.query("SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice");
    const b64 = image(manifest[0].name);
    const run = async (method) => {
      plans.length = 0;
      await c.query('SELECT * FROM api.search($1, 3, $2)', [b64, method]);
      return plans.join('\n');
    };
    // Repeated calls in one session, so that a plan cached under one method
    // (plpgsql switches to a generic plan after five runs) would show.
    for (let round = 0; round < 2; round++) {
      for (const method of ['faissflat', 'kdtree', 'lsh']) {
        for (let i = 0; i < 6; i++) {
          const plan = await run(method);
          assert.match(plan, new RegExp(`Index Scan using images_feat_${method}\\b`));
          assert.equal(plan.match(/images_feat_\w+/g).filter((x) => x !== `images_feat_${method}`).length, 0,
            `${method} scans no other index`);
        }
      }
      for (let i = 0; i < 6; i++) {
        const a = await run('argsort');
        assert.doesNotMatch(a, /images_feat_/);
        assert.match(a, /Seq Scan on images/);
      }
    }
    const { rows } = await c.query('SHOW imgsearch.method');
    assert.equal(rows[0]['imgsearch.method'], 'auto', 'the method does not leak out of the call');
    const { rows: seq } = await c.query('SHOW enable_seqscan');
    assert.equal(seq[0].enable_seqscan, 'on', 'nor does the sequential scan setting');
  } finally {
    await c.end();
  }
});

async function similar(args) {
  const res = await fetch(`${api}/rpc/similar`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

// The best score of several examples, computed here from the stored features
// (docs/methods.md: d+ when nearer a positive than every negative, else
// 2^290 / d-), every row ranked.
function bestScore(positives, negatives) {
  return [...feats].map(([id, f]) => {
    const dp = Math.min(...positives.map((p) => l2(f, feats.get(p))));
    const dn = negatives.length ? Math.min(...negatives.map((n) => l2(f, feats.get(n)))) : Infinity;
    return { id, distance: dp < dn ? dp : 2 ** 290 / dn };
  }).sort((a, b) => a.distance - b.distance || a.id - b.id);
}

for (const method of ['argsort', 'faissflat', 'kdtree', 'auto']) {
  test(`similar with ${method}: by stored features, one image or several examples, as computed here`, async () => {
    const ids = manifest.map((m) => m.id);
    const cases = [
      [[ids[1]], []],
      [[ids[2], ids[ids.length - 3]], []],
      [[ids[0], ids[5]], [ids[9]]],
    ];
    for (const [positives, negatives] of cases) {
      const { status, headers, body } = await similar({ positives, negatives, k: 8, method });
      assert.equal(status, 200, JSON.stringify(body));
      const all = bestScore(positives, negatives);
      // a pushed-back row's score is 2^290 / d-: compared as 1000 + 1 / d- (the same order, a tolerance that means something)
      const scale = (rows) => rows.map((r) => ({ ...r, distance: r.distance > 1e6 ? 1000 + r.distance / 2 ** 290 : r.distance }));
      assertSameRanking(scale(body), scale(all.slice(0, 8)), { eps: 1e-4, what: `${method} ${positives} / ${negatives}` });
      assert.ok(firstOrTied(body, positives[0], 1e-4) || positives.length > 1, 'a single positive comes first');
      assert.match(headers.get('x-search-method'), method === 'argsort' ? /sequential scan/ : method === 'auto' ? /scan/ : new RegExp(`^${method} index scan`));
    }
  });
}

test('similar: bad requests are 400 with plain messages', async () => {
  const cases = [
    [{}, '22004', /positives is missing/],
    [{ positives: [] }, '22004', /positives is missing/],
    [{ positives: [manifest[0].id], k: 0 }, '22023', /k must be between 1 and 1000/],
    [{ positives: [manifest[0].id], method: 'nosuch' }, '22023', /unknown method "nosuch"/],
    [{ positives: [manifest[0].id, 987654321] }, '22023', /no searchable image with id 987654321/],
    [{ positives: [manifest[0].id], negatives: [987654322] }, '22023', /no searchable image with id 987654322/],
    [{ positives: Array.from({ length: 65 }, () => manifest[0].id) }, '22023', /at most 64 examples/],
  ];
  for (const [args, code, message] of cases) {
    const { status, body } = await similar(args);
    assert.equal(status, 400, `${JSON.stringify(args)}: ${JSON.stringify(body)}`);
    assert.equal(body.code, code);
    assert.match(body.message, message);
  }
});

test('bad requests get a clear 400 error over HTTP', async () => {
  const b64 = image(manifest[0].name);
  const cases = [
    [{ image: b64, k: 0 }, '22023', /k must be between 1 and 1000/],
    [{ image: b64, k: 1001 }, '22023', /k must be between 1 and 1000/],
    [{ image: b64, method: 'nosuch' }, '22023', /unknown method "nosuch"/],
    [{ image: b64, box: [1, 2, 3] }, '22023', /box must be/],
    [{ image: '@@not base64@@' }, '22023', /not valid base64/],
  ];
  for (const [args, code, message] of cases) {
    const { status, body } = await search(args);
    assert.equal(status, 400, JSON.stringify(body));
    assert.equal(body.code, code);
    assert.match(body.message, message);
  }
  const { body } = await search({ image: b64, method: 'hash' });   // an access method without an index here
  assert.equal(body.hint, 'Use auto or one of: argsort, faissflat, kdtree, lsh.');
  const junk = await search({ image: Buffer.from('this is not an image at all').toString('base64') });
  assert.ok(junk.status >= 400 && junk.status < 600, 'a non-image is refused');
  assert.equal(typeof junk.body.message, 'string');
});

test('the loader is idempotent and resumes: it extracts only missing features, the same again', async () => {
  const { spawnSync } = await import('node:child_process');
  const loader = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'tools', 'load_dataset.py');
  const ids = [manifest[1].id, manifest[4].id, manifest[9].id];
  await db.query('UPDATE gallery.images SET feat = NULL WHERE id = ANY($1)', [ids]);
  const run = spawnSync('/usr/bin/python3', [loader, dataset, '--batch', '2'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`${manifest.length} images \\(0 new\\)`));
  assert.match(run.stderr, /features: 100%\|[^|]*\| 3\/3 /);
  // 3 new features of 24 rows: over a tenth, so kdtree and lsh are rebuilt
  for (const am of ['kdtree', 'lsh']) {
    assert.match(run.stdout, new RegExp(`added 3 of the ${manifest.length} features after the ${am} index was built: REINDEX`));
  }
  const { rows } = await db.query('SELECT id, feat::real[] AS f FROM gallery.images');
  assert.equal(rows.length, manifest.length);
  for (const r of rows) assert.ok(l2(Float64Array.from(r.f), feats.get(Number(r.id))) < 1e-5, `image ${r.id}`);
});

// The scan the plan of a search ran, read independently: auto_explain's
// log of the same call in SQL ("Index Scan using <index>" or "Seq Scan on
// images"), the index's access method from the catalog.
async function plannedScan(c, b64, k, method) {
  const plans = [];
  const onNotice = (n) => plans.push(n.message);
  c.on('notice', onNotice);
  try {
    await c.query('SELECT * FROM api.search($1, $2, $3)', [b64, k, method]);
  } finally {
    c.off('notice', onNotice);
  }
  const plan = plans.join('\n');
  const idx = /Index (?:Only )?Scan using (\w+) on images/.exec(plan);
  if (idx) {
    const { rows } = await c.query(`SELECT am.amname FROM pg_class i JOIN pg_am am ON am.oid = i.relam
      WHERE i.relname = $1 AND i.relnamespace = 'gallery'::regnamespace`, [idx[1]]);
    return `${rows[0].amname} index scan`;
  }
  assert.match(plan, /Seq Scan on images/);
  return 'sequential scan';
}

test('search says which scan ran (X-Search-Method, as the plan has it) and splits its time (Server-Timing)', async () => {
  const c = new pg.Client();
  await c.connect();
  try {
    await c.query("LOAD 'auto_explain'");
    await c.query('SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice');
    const b64 = image(manifest[3].name);
    const seen = new Set();
    for (const [method, k] of [['argsort', 5], ['faissflat', 5], ['kdtree', 5], ['lsh', 5], ['auto', 5], ['auto', 24]]) {
      const res = await fetch(`${api}/rpc/search`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'http://localhost:8080' },
        body: JSON.stringify({ image: b64, k, method }),
      });
      assert.equal(res.status, 200);
      const ran = res.headers.get('X-Search-Method');
      assert.equal(ran, await plannedScan(c, b64, k, method), `${method}, k = ${k}`);
      if (method !== 'auto') assert.equal(ran, method === 'argsort' ? 'sequential scan' : `${method} index scan`);
      seen.add(ran);
      const timing = res.headers.get('Server-Timing');
      // the gateway adds its own: the wait for a session
      assert.match(timing, /^model;dur=[0-9.]+, db;dur=[0-9.]+, queue;dur=[0-9.]+$/);
      // the page, on another origin (postgrest.conf allows it), may read both
      const exposed = res.headers.get('Access-Control-Expose-Headers');
      assert.match(exposed, /X-Search-Method/);
      assert.match(exposed, /Server-Timing/);
    }
    assert.equal(seen.size, 4);
  } finally {
    await c.end();
  }
});

// Issue 22: a search without its image was 404 "function not found"
// (PostgREST's answer when no function has the arguments given); search's
// image has a default now, so the function itself says what is missing.
test('a search without an image: 400 22004 "image is missing", by POST and by GET', async () => {
  for (const [what, res] of [
    ['POST {}', await fetch(`${api}/rpc/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })],
    ['POST {k, method}', await fetch(`${api}/rpc/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"k": 5, "method": "auto"}' })],
    ['POST no body', await fetch(`${api}/rpc/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' } })],
    ['GET ?k=5', await fetch(`${api}/rpc/search?k=5`)],
  ]) {
    const body = await res.json();
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(body)}`);
    assert.equal(body.code, '22004', what);
    assert.equal(body.message, 'image is missing', what);
    assert.match(body.hint, /base64 in "image"/, what);
  }
  // a null image is the same mistake
  const res = await fetch(`${api}/rpc/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"image": null}' });
  assert.equal(res.status, 400);
  assert.equal((await res.json()).code, '22004');
});

// JPEGs made with PIL; the server's pixel limit (imgsearch.max_pixels) is
// 50 million by default.
function makeJpeg(width, height) {
  return execFileSync('/usr/bin/python3', ['-c', `
import io, sys
from PIL import Image
b = io.BytesIO()
Image.new('RGB', (${width}, ${height}), (10, 120, 200)).save(b, 'JPEG', quality=70)
sys.stdout.buffer.write(b.getvalue())
`], { maxBuffer: 64 << 20 });
}

test('user mistakes are 4xx with plain messages, never 500: too many pixels, too many bytes', async () => {
  const { rows } = await db.query('SHOW imgsearch.max_pixels');
  assert.equal(rows[0]['imgsearch.max_pixels'], '50000000');
  const huge = await search({ image: makeJpeg(8000, 7000).toString('base64'), k: 3 });
  assert.equal(huge.status, 413, JSON.stringify(huge.body));
  assert.equal(huge.body.code, 'PT413');
  assert.equal(huge.body.message, 'The image has too many pixels for the server.');
  assert.match(huge.body.details, /8000x7000 pixels is over the limit of 50000000 pixels/);
  const heavy = await search({ image: Buffer.alloc(9_000_000, 7).toString('base64'), k: 3 });
  assert.equal(heavy.status, 413, JSON.stringify(heavy.body));
  assert.equal(heavy.body.code, 'PT413');
  assert.equal(heavy.body.message, 'The image is too large: 8.6 MB; the limit is 8 MB.');
  // within the limits it is searched
  const fine = await search({ image: makeJpeg(3000, 2000).toString('base64'), k: 3 });
  assert.equal(fine.status, 200, JSON.stringify(fine.body));
  assert.equal(fine.body.length, 3);
});

test('stats() names the model file, not its path on the server', async () => {
  const { rows } = await db.query('SHOW imgsearch.model');
  const modelPath = rows[0]['imgsearch.model'];
  assert.ok(modelPath.includes('/'));
  const s = await (await fetch(`${api}/rpc/stats`)).json();
  assert.equal(s.model.file, path.basename(modelPath));
  assert.equal(s.model.path, undefined);
  const text = JSON.stringify(s);
  assert.ok(!text.includes(path.dirname(modelPath)), text);
  assert.doesNotMatch(text, /"\/|\/tmp|\/home|\/root|\/var/);
});

// 12 searches at once on a 2-core machine, each a different image: every
// one completes (with the right first row) or is refused as busy (503), none
// is an internal error.
test('12 concurrent searches: 200 or 503 busy, never 500', async (t) => {
  const picks = manifest.slice(0, 12);
  const answers = await Promise.all(picks.map((m) => search({ image: image(m.name), k: 5, method: 'auto' })));
  const statuses = answers.map((a) => a.status);
  t.diagnostic(`statuses: ${statuses.join(' ')}`);
  answers.forEach((a, i) => {
    assert.ok(a.status === 200 || a.status === 503, `${picks[i].name}: ${a.status} ${JSON.stringify(a.body)}`);
    if (a.status === 200) assert.ok(firstOrTied(a.body, picks[i].id), `${picks[i].name} first`);
    else assert.match(a.body.message, /busy.*Try again/);
  });
  assert.ok(statuses.includes(200), 'some complete');
});

// The page's Cancel aborts its request; the gateway then cancels the
// statement, so that the search does not hold a session for nothing. The
// session's last statement tells: ROLLBACK (canceled) or COMMIT (ran out).
test('a search whose client leaves is canceled in the database', async () => {
  const running = async () => (await db.query(`SELECT pid FROM pg_stat_activity
    WHERE application_name = 'imgsearch-gateway' AND state = 'active' AND query LIKE '%pgrst_source%'`)).rows;
  const controller = new AbortController();
  const call = fetch(`${api}/rpc/search`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: controller.signal,
    body: JSON.stringify({ image: makeJpeg(1999, 1333).toString('base64'), k: 3 }),
  }).catch((e) => e);
  let pids = [];
  for (let i = 0; i < 200 && pids.length === 0; i++) {
    pids = await running();
    if (pids.length === 0) await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(pids.length, 1, 'the search is seen running');
  controller.abort();
  assert.equal((await call).name, 'AbortError');
  let last;
  for (let i = 0; i < 300; i++) {
    const { rows } = await db.query('SELECT state, query FROM pg_stat_activity WHERE pid = $1', [pids[0].pid]);
    last = rows[0];
    if (last.state === 'idle') break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(last.state, 'idle');
  assert.equal(last.query, 'ROLLBACK');
});

// --- duplicate groups (api.duplicates; their other thumbnails come from api.thumbs) ---

async function call(fn, args) {
  const res = await fetch(`${api}/rpc/${fn}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args),
  });
  return { status: res.status, body: await res.json() };
}

// The groups at distance d computed here: the pairs within d from SQL over
// the whole table with the plain operator (a join, no index), then their
// connected components by union-find; groups of two or more, each as its
// sorted ids, largest first, then by smallest id (the order the API
// promises).
async function expectedGroups(d) {
  const { rows } = await db.query(`SELECT a.id AS a, b.id AS b FROM gallery.images a JOIN gallery.images b ON a.id < b.id
    WHERE a.feat <-> b.feat <= $1`, [d]);
  const parent = new Map([...feats.keys()].map((id) => [id, id]));
  const find = (x) => { while (parent.get(x) !== x) x = parent.get(x); return x; };
  for (const r of rows) parent.set(find(Number(r.a)), find(Number(r.b)));
  const groups = new Map();
  for (const id of feats.keys()) {
    const root = find(id);
    if (!groups.has(root)) groups.set(root, []);
    groups.get(root).push(id);
  }
  return [...groups.values()].filter((g) => g.length > 1).map((g) => g.sort((x, y) => x - y))
    .sort((x, y) => y.length - x.length || x[0] - y[0]);
}

// Every group at distance d over HTTP, page by page (lim per request).
async function allGroups(d, lim) {
  const rows = [];
  for (let off = 0; ; off += lim) {
    const res = await call('duplicates', { max_distance: d, lim, off });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    rows.push(...res.body);
    if (res.body.length === 0 || res.body[0].groups <= off + lim) break;
  }
  return rows;
}

test('duplicates(d): the connected components of the pairs within d, as SQL computes them over the whole table', async () => {
  const { rows: q } = await db.query(`SELECT percentile_disc(ARRAY[0.02, 0.1, 0.3]) WITHIN GROUP (ORDER BY a.feat <-> b.feat) AS p
    FROM gallery.images a JOIN gallery.images b ON a.id < b.id`);
  const distances = [0, ...q[0].p.filter((d) => d <= 0.5)];
  let sawGroups = 0;
  for (const d of distances) {
    const want = await expectedGroups(d);
    for (const lim of [200, 2]) {
      const rows = await allGroups(d, lim);
      const got = [];
      for (const r of rows) {
        if (got.length === 0 || got[got.length - 1].no !== r.group_no) got.push({ no: r.group_no, size: r.group_size, rows: [] });
        got[got.length - 1].rows.push(r);
      }
      assert.deepEqual(got.map((g) => g.rows.map((r) => r.id)), want, `groups at ${d}, ${lim} a page`);
      assert.deepEqual(got.map((g) => g.no), want.map((_, i) => i + 1), `numbered from 1 at ${d}`);
      for (const g of got) {
        assert.ok(g.rows.every((r) => r.group_size === g.rows.length), `group_size at ${d}`);
        assert.deepEqual(g.rows.map((r) => r.thumb !== null), g.rows.map((_, i) => i < 6), 'thumbnails of the first 6');
      }
      for (const r of rows) {
        assert.equal(r.groups, want.length);
        assert.equal(r.images, want.reduce((s, g) => s + g.length, 0));
        const m = manifest.find((x) => x.id === r.id);
        assert.deepEqual([r.name, r.grp], [m.name, m.grp]);
      }
    }
    if (want.length > 0) sawGroups++;
    if (want.length > 0) {
      const first = (await allGroups(d, 200))[0];
      const { rows: t } = await db.query("SELECT encode(thumb, 'base64') AS t FROM gallery.images WHERE id = $1", [first.id]);
      assert.equal(first.thumb, t[0].t);
    }
  }
  assert.ok(sawGroups >= 2, `groups at ${sawGroups} of the distances ${distances}`);
});

test('duplicates refuses bad arguments with 400 and the SQLSTATE', async () => {
  const cases = [
    ['duplicates', {}, '22004'],
    ['duplicates', { max_distance: null }, '22004'],
    ['duplicates', { max_distance: -0.01 }, '22023'],
    ['duplicates', { max_distance: 0.51 }, '22023'],
    ['duplicates', { max_distance: 'NaN' }, '22023'],
    ['duplicates', { max_distance: 0.03, lim: 0 }, '22023'],
    ['duplicates', { max_distance: 0.03, lim: 201 }, '22023'],
    ['duplicates', { max_distance: 0.03, off: -1 }, '22023'],
    ['duplicates', { max_distance: 0.03, lim: null }, '22004'],
  ];
  for (const [fn, args, code] of cases) {
    const res = await call(fn, args);
    assert.equal(res.status, 400, `${fn} ${JSON.stringify(args)}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, code, `${fn} ${JSON.stringify(args)}`);
  }
});

test('duplicates needs the kdtree index (0A000), and answers its statement timeout with 503 (PT503)', async () => {
  const anon = new pg.Client({ user: 'authenticator' });
  await anon.connect();
  const locker = new pg.Client();
  await locker.connect();
  try {
    await anon.query('SET ROLE web_anon');
    const code = async (sql) => { try { await anon.query(sql); return 'no error'; } catch (e) { return e.code; } };
    // Without a kdtree index (dropped in a transaction that rolls back).
    await locker.query('BEGIN');
    await locker.query('DROP INDEX gallery.images_feat_kdtree');
    await locker.query('SET LOCAL ROLE web_anon');
    let c;
    try { await locker.query('SELECT * FROM api.duplicates(0.03)'); c = 'no error'; } catch (e) { c = e.code; }
    assert.equal(c, '0A000');
    await locker.query('ROLLBACK');
    // The table locked by another transaction: the call waits until its
    // statement timeout ends it, and says so.
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE gallery.images IN ACCESS EXCLUSIVE MODE');
    await anon.query("SET statement_timeout = '300ms'");
    assert.equal(await code('SELECT * FROM api.duplicates(0.03)'), 'PT503');
    await locker.query('ROLLBACK');
    await anon.query('RESET statement_timeout');
    assert.equal(await code('SELECT * FROM api.duplicates(0.03)'), 'no error');
  } finally {
    await locker.query('ROLLBACK').catch(() => {});
    await Promise.all([anon.end(), locker.end()]);
  }
});

test('duplicates, thumbs and can_write: executable by web_anon and imgsearch_writer, not by PUBLIC', async () => {
  for (const fn of ['api.duplicates(float8, int, int)', 'api.thumbs(bigint[])', 'api.can_write()']) {
    const { rows } = await db.query(`SELECT has_function_privilege('public', $1, 'EXECUTE') AS p,
      has_function_privilege('web_anon', $1, 'EXECUTE') AS a, has_function_privilege('imgsearch_writer', $1, 'EXECUTE') AS w,
      (SELECT r.rolname FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE p.oid = $1::regprocedure) AS owner`, [fn]);
    assert.deepEqual(rows[0], { p: false, a: true, w: true, owner: 'imgsearch_api' }, fn);
  }
});

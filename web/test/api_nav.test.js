// The API of the page's ways in, links and examples, on the small test
// dataset (run.sh setup loads it): api.gallery, api.thumbs, api.try_these
// against the table; api.search keeping uploads (gallery.uploads, its
// bounds), api.search_upload and api.upload_image, api.similar's upload
// examples against rankings computed here from the features; the errors
// and who may call what.
//   API_URL=... PGDATABASE=imgsearch_web WEB_TEST_DIR=... node --test test/api_nav.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { assertExamplesRanking, examplesRanking } from './ranking.js';
import { sqlFeature, storedFeatures } from './common.js';

const api = process.env.API_URL;
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const imageNames = fs.readdirSync(path.join(dataset, 'images')).sort();
const queryNames = fs.readdirSync(path.join(dataset, 'queries')).sort();
const imageFile = (name) => fs.readFileSync(path.join(dataset, 'images', name));
const queryFile = (name) => fs.readFileSync(path.join(dataset, 'queries', name));
const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

let db;
let feats;   // id -> Float64Array, read from the table

before(async () => {
  db = new pg.Client();
  await db.connect();
  feats = await storedFeatures(db);
});
after(() => db.end());

async function rpc(fn, args) {
  const res = await fetch(`${api}/rpc/${fn}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

const featureOf = (bytes, box = null) => sqlFeature(db, bytes, box);
const ranking = (positives, negatives = []) => examplesRanking(feats, positives, negatives);
const assertRanking = assertExamplesRanking;

function assertError(r, status, code, what) {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.code, code, what);
}

test('api.gallery: every image once, in id order, a page at a time, with the total; its bad arguments', async () => {
  const { rows: table } = await db.query('SELECT id, name, grp, width, height, feat IS NOT NULL AS searchable FROM gallery.images ORDER BY id');
  const seen = [];
  for (let page = 1; ; page++) {
    const r = await rpc('gallery', { page, page_size: 7 });
    assert.equal(r.status, 200);
    if (r.body.length === 0) { assert.equal(page, Math.ceil(table.length / 7) + 1); break; }
    assert.ok(r.body.length <= 7);
    for (const row of r.body) assert.equal(Number(row.total), table.length);
    seen.push(...r.body.map(({ total, ...x }) => x));
  }
  assert.deepEqual(seen, table.map((x) => ({ ...x, id: Number(x.id) })));
  const one = await rpc('gallery', {});
  assert.deepEqual(one.body.map((x) => x.id), table.slice(0, 24).map((x) => Number(x.id)));
  assertError(await rpc('gallery', { page: 0 }), 400, '22023', 'page 0');
  assertError(await rpc('gallery', { page_size: 0 }), 400, '22023', 'page_size 0');
  assertError(await rpc('gallery', { page_size: 101 }), 400, '22023', 'page_size 101');
  assertError(await rpc('gallery', { page: null }), 400, '22004', 'page null');
});

test('api.thumbs: the table\'s thumbnails by id, unknown ids left out; at most 100', async () => {
  const { rows } = await db.query("SELECT id, name, grp, encode(thumb, 'base64') AS thumb FROM gallery.images WHERE id IN (2, 5) ORDER BY id");
  const r = await rpc('thumbs', { ids: [5, 2, 987654] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, rows.map((x) => ({ ...x, id: Number(x.id) })));
  assertError(await rpc('thumbs', { ids: Array.from({ length: 101 }, (_, i) => i) }), 400, '22023', '101 ids');
  assertError(await rpc('thumbs', { ids: [1, null] }), 400, '22004', 'a null id');
  assertError(await rpc('thumbs', {}), 400, '22004', 'no ids');
});

test('api.try_these: the first searchable image of each photograph', async () => {
  const { rows } = await db.query('SELECT DISTINCT ON (grp) id, name, grp FROM gallery.images WHERE feat IS NOT NULL ORDER BY grp, id');
  const r = await rpc('try_these', { n: 24 });
  assert.deepEqual(r.body.map(({ thumb, ...x }) => x), rows.map((x) => ({ ...x, id: Number(x.id) })));
  assert.equal((await rpc('try_these', { n: 2 })).body.length, Math.min(2, rows.length));
  assertError(await rpc('try_these', { n: 0 }), 400, '22023', 'n 0');
  assertError(await rpc('try_these', { n: 25 }), 400, '22023', 'n 25');
});

test('api.search keeps the upload by its sha256; api.search_upload searches with it again, whole or an area', async () => {
  const bytes = queryFile(queryNames[0]);
  const hash = sha256(bytes);
  await db.query("DELETE FROM gallery.uploads WHERE sha256 = decode($1, 'hex')", [hash]);
  const s = await rpc('search', { image: bytes.toString('base64'), k: 24, method: 'argsort' });
  assert.equal(s.status, 200);
  assert.equal(s.headers.get('x-upload-sha256'), hash);
  const { rows: [row] } = await db.query("SELECT img, feat IS NOT NULL AS has_feat FROM gallery.uploads WHERE sha256 = decode($1, 'hex')", [hash]);
  assert.equal(Buffer.compare(row.img, bytes), 0, 'the bytes sent are kept');
  assert.equal(row.has_feat, true, 'the whole image\'s feature is kept');
  const whole = ranking([await featureOf(bytes)]);
  assertRanking(s.body, whole, 'search');

  for (const method of ['argsort', 'faissflat', 'kdtree']) {
    const u = await rpc('search_upload', { sha256: hash.toUpperCase(), k: 10, method });
    assert.equal(u.status, 200, JSON.stringify(u.body));
    assert.match(u.headers.get('server-timing'), /model;dur=/);
    assertRanking(u.body, whole, `search_upload ${method}`);
  }
  const box = [10, 5, 120, 90];
  const a = await rpc('search_upload', { sha256: hash, k: 8, box });
  assertRanking(a.body, ranking([await featureOf(bytes, box)]), 'search_upload with an area');

  const img = await rpc('upload_image', { sha256: hash });
  assert.equal(img.status, 200);
  assert.equal(Buffer.compare(Buffer.from(img.body.image, 'base64'), bytes), 0);
  assert.equal(img.body.sha256, hash);
  assert.ok(Date.parse(img.body.expires) > Date.now() + 23 * 3600e3, 'kept for a day');
});

test('an upload no longer kept: 410 PT410 with a message; a malformed hash 400; bad k, method, box 400', async () => {
  const bytes = queryFile(queryNames[1]);
  const hash = sha256(bytes);
  assert.equal((await rpc('search', { image: bytes.toString('base64'), k: 1 })).status, 200);
  assert.equal((await rpc('search_upload', { sha256: hash, k: 1 })).status, 200);
  await db.query("UPDATE gallery.uploads SET kept_at = now() - interval '24 hours 1 second' WHERE sha256 = decode($1, 'hex')", [hash]);
  for (const [fn, args] of [['search_upload', { sha256: hash }], ['upload_image', { sha256: hash }],
    ['similar', { positive_uploads: [hash] }], ['search_upload', { sha256: '0'.repeat(64) }]]) {
    const r = await rpc(fn, args);
    assertError(r, 410, 'PT410', `${fn} expired`);
    assert.match(r.body.message, /no longer kept on the server/);
    assert.equal(r.body.hint, 'Upload the image again.');
  }
  assertError(await rpc('search_upload', { sha256: 'abc' }), 400, '22023', 'short hash');
  assertError(await rpc('search_upload', { sha256: `${'g'.repeat(64)}` }), 400, '22023', 'not hex');
  assertError(await rpc('search_upload', {}), 400, '22004', 'no hash');
  assertError(await rpc('upload_image', {}), 400, '22004', 'no hash');
  const { rows: [live] } = await db.query('SELECT encode(sha256, \'hex\') AS h FROM gallery.uploads ORDER BY kept_at DESC LIMIT 1');
  assertError(await rpc('search_upload', { sha256: live.h, k: 0 }), 400, '22023', 'k 0');
  assertError(await rpc('search_upload', { sha256: live.h, k: 1001 }), 400, '22023', 'k 1001');
  assertError(await rpc('search_upload', { sha256: live.h, method: 'nosuch' }), 400, '22023', 'method');
  assertError(await rpc('search_upload', { sha256: live.h, box: [1, 2, 3] }), 400, '22023', 'box of 3');
  assertError(await rpc('search_upload', { sha256: live.h, box: [1, 2, null, 4] }), 400, '22023', 'box with a null');
  // a search again keeps it again
  const again = await rpc('search', { image: bytes.toString('base64'), k: 1 });
  assert.equal(again.headers.get('x-upload-sha256'), hash);
  assert.equal((await rpc('search_upload', { sha256: hash, k: 1 })).status, 200);
});

test('api.similar with upload examples: the score of ids and uploads (whole, an area) against the features', async () => {
  const q = queryFile(queryNames[2]);
  const hash = sha256(q);
  assert.equal((await rpc('search', { image: q.toString('base64'), k: 1 })).status, 200);
  const box = [0, 0, 100, 80];
  const r = await rpc('similar', { positives: [3], negatives: [9], positive_uploads: [hash], negative_uploads: [`${hash}:${box.join(',')}`], k: 24 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const fq = await featureOf(q);
  const fa = await featureOf(q, box);
  assertRanking(r.body, ranking([feats.get(3), fq], [feats.get(9), fa]), 'ids and uploads');
  const only = await rpc('similar', { positive_uploads: [hash], k: 5 });
  assertRanking(only.body, ranking([fq]), 'an upload alone');
  assert.match(only.headers.get('server-timing'), /^model;dur=/);

  assertError(await rpc('similar', { positive_uploads: ['nothash'] }), 400, '22023', 'a malformed ref');
  assertError(await rpc('similar', { positive_uploads: [`${hash}:1,2,3`] }), 400, '22023', 'a box of 3');
  assertError(await rpc('similar', { positive_uploads: Array(9).fill(hash) }), 400, '22023', '9 uploads');
  assertError(await rpc('similar', { positives: Array(60).fill(1), negative_uploads: Array(5).fill(hash) }), 400, '22023', '65 examples');
  assertError(await rpc('similar', { negative_uploads: [hash] }), 400, '22004', 'no positive');
  assertError(await rpc('similar', { positives: [1], positive_uploads: null }), 400, '22004', 'null uploads');
});

test('gallery.uploads stays within its bounds: age, count and bytes (settings web.upload_max_*)', async () => {
  const c = new pg.Client();
  await c.connect();
  try {
    const search = (bytes) => c.query("SELECT count(*) FROM api.search(encode($1::bytea, 'base64'), 1)", [bytes]);
    const kept = async () => (await c.query("SELECT encode(sha256, 'hex') AS h FROM gallery.uploads ORDER BY kept_at, sha256")).rows.map((x) => x.h);
    const imgs = imageNames.slice(0, 4).map(imageFile);
    await c.query('DELETE FROM gallery.uploads');
    // count: the latest 2
    await c.query('SET web.upload_max_count = 2');
    for (const b of imgs.slice(0, 3)) await search(b);
    assert.deepEqual(new Set(await kept()), new Set(imgs.slice(1, 3).map(sha256)));
    // age: one kept too long goes at the next keep; until then the readers refuse it
    await c.query('SET web.upload_max_count = 100');
    await c.query("SET web.upload_max_age = '1 hour'");
    await c.query("UPDATE gallery.uploads SET kept_at = now() - interval '2 hours' WHERE sha256 = decode($1, 'hex')", [sha256(imgs[1])]);
    await assert.rejects(c.query('SELECT * FROM api.search_upload($1)', [sha256(imgs[1])]), { code: 'PT410' });
    await search(imgs[3]);
    assert.deepEqual(new Set(await kept()), new Set([imgs[2], imgs[3]].map(sha256)));
    // bytes: none but the newest when the bound is 0 MB
    await c.query('SET web.upload_max_mb = 0');
    await search(imgs[0]);
    assert.deepEqual(await kept(), [sha256(imgs[0])]);
    // a read-only transaction (a GET, a standby) keeps nothing and searches all the same
    await c.query('RESET web.upload_max_mb');
    await c.query('BEGIN READ ONLY');
    assert.equal((await search(imgs[1])).rows[0].count, '1');
    await c.query('COMMIT');
    assert.deepEqual(await kept(), [sha256(imgs[0])]);
  } finally {
    await c.end();
  }
});

test('who may call what: web_anon the api functions, not the helpers, nor the kept uploads', async () => {
  const check = async (sql) => (await db.query(sql)).rows[0].ok;
  for (const f of ['api.gallery(int, int)', 'api.thumbs(bigint[])', 'api.try_these(int)',
    'api.search_upload(text, int, text, int[])', 'api.upload_image(text)',
    'api.similar(bigint[], bigint[], int, text, text[], text[])']) {
    assert.equal(await check(`SELECT has_function_privilege('web_anon', '${f}', 'EXECUTE') AS ok`), true, f);
  }
  for (const f of ['gallery.keep_upload(bytea, imgfeat)', 'gallery.kept_upload(text)', 'gallery.nearest(anyelement, int, text, float8)',
    'gallery.upload_features(text, int[])', 'gallery.features(bytea, int[])', 'gallery.upload_ref_features(text[])']) {
    assert.equal(await check(`SELECT has_function_privilege('web_anon', '${f}', 'EXECUTE') AS ok`), false, f);
    assert.equal(await check(`SELECT has_function_privilege('public', '${f}', 'EXECUTE') AS ok`), false, f);
  }
  for (const p of ['SELECT', 'INSERT', 'UPDATE', 'DELETE']) {
    assert.equal(await check(`SELECT has_table_privilege('web_anon', 'gallery.uploads', '${p}') AS ok`), false, p);
  }
  // over HTTP a helper is no function of the API
  assert.equal((await rpc('keep_upload', { img: 'AAAA' })).status, 404);
});

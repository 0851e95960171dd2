// Adding images: api.add_image and api.image_status, which web_anon may not
// call (42501; over HTTP 401, as PostgREST answers for the anonymous role),
// imgsearch_writer may. An image added (in SQL as imgsearch_writer, and over
// HTTP once web_anon is granted imgsearch_writer) gets its feature from the
// database's ingest worker (status pending, then done) and a search with
// the same image finds it at distance 0, with the rows tied there; a row
// whose image the worker cannot read is failed, with its error. The rows
// added are deleted at the end (api.test.js checks the table against the
// dataset's manifest).
//   API_URL=... PGDATABASE=imgsearch_web WEB_TEST_DIR=... node --test test/write.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';

const api = process.env.API_URL;
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const manifest = fs.readFileSync(path.join(dataset, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [id, name] = l.split('\t'); return { id: Number(id), name }; });
const image = (name) => fs.readFileSync(path.join(dataset, 'images', name)).toString('base64');
const DONE_WITHIN_MS = 120000;   // the ingest worker, on a loaded machine
// Distance 0: the same image's features, from the model workers in other
// batches and threads, and the server's floats against doubles here.
const EPS = 1e-4;

let admin;    // the test cluster's superuser
let anon;     // authenticator, SET ROLE web_anon (as PostgREST does)
let writer;   // authenticator, SET ROLE imgsearch_writer (a JWT's role)
let firstNewId;
const added = [];

before(async () => {
  admin = new pg.Client();
  await admin.connect();
  anon = new pg.Client({ user: 'authenticator' });
  await anon.connect();
  await anon.query('SET ROLE web_anon');
  writer = new pg.Client({ user: 'authenticator' });
  await writer.connect();
  await writer.query('SET ROLE imgsearch_writer');
  const { rows } = await admin.query('SELECT max(id) AS m FROM gallery.images');
  firstNewId = Number(rows[0].m) + 1;
});

after(async () => {
  await admin.query('REVOKE imgsearch_writer FROM web_anon');
  await admin.query('DELETE FROM gallery.images WHERE id = ANY ($1) OR id >= $2', [added, firstNewId]);
  await admin.query("DELETE FROM imgsearch_ingest_errors WHERE relid = 'gallery.images'::regclass AND key::bigint >= $1",
    [firstNewId]);
  await Promise.all([anon.end(), writer.end()]);
  await admin.end();
});

async function sqlError(client, sql, params = []) {
  try {
    await client.query(sql, params);
  } catch (e) {
    return e.code;
  }
  return 'no error';
}

async function rpc(fn, args) {
  const res = await fetch(`${api}/rpc/${fn}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(args),
  });
  return { status: res.status, body: await res.json() };
}

const count = async () => Number((await admin.query('SELECT count(*) AS n FROM gallery.images')).rows[0].n);

// Polls status(id) until its state is no longer pending.
async function settled(status, id) {
  const t0 = Date.now();
  for (;;) {
    const s = await status(id);
    assert.ok(['pending', 'done', 'failed'].includes(s.state), JSON.stringify(s));
    if (s.state !== 'pending') return s;
    assert.ok(Date.now() - t0 < DONE_WITHIN_MS, `image ${id} still pending after ${DONE_WITHIN_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const sqlStatus = async (id) => (await writer.query('SELECT api.image_status($1) AS s', [id])).rows[0].s;
const httpStatus = async (id) => {
  const res = await rpc('image_status', { id });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
};

// The ids at distance 0 from image id's feature, computed here from the
// stored features: the original image and its copies.
async function atZero(id) {
  const { rows } = await admin.query('SELECT id, feat::real[] AS f FROM gallery.images WHERE feat IS NOT NULL');
  const q = rows.find((r) => Number(r.id) === id).f;
  return new Set(rows.filter((r) => Math.sqrt(r.f.reduce((s, v, i) => s + (v - q[i]) ** 2, 0)) <= EPS)
    .map((r) => Number(r.id)));
}

// A search with the image finds id at distance 0, with every row tied there
// (as a set: api.search orders a tie by id, nothing else does).
async function assertFound(b64, id) {
  const want = await atZero(id);
  assert.ok(want.has(id) && want.size < 10, [...want].join(','));
  const res = await rpc('search', { image: b64, k: 10, method: 'argsort' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const got = new Set(res.body.filter((r) => r.distance <= EPS).map((r) => r.id));
  assert.deepEqual([...got].sort((a, b) => a - b), [...want].sort((a, b) => a - b));
}

test('web_anon may not add images nor ask their status, in SQL and over HTTP', async () => {
  const before = await count();
  const b64 = image(manifest[0].name);
  assert.equal(await sqlError(anon, 'SELECT api.add_image($1)', [b64]), '42501');
  assert.equal(await sqlError(anon, 'SELECT api.image_status(1)'), '42501');
  const { rows } = await admin.query(`SELECT has_function_privilege('web_anon', 'api.add_image(text, text, text)', 'EXECUTE') AS a,
    has_function_privilege('web_anon', 'api.image_status(bigint)', 'EXECUTE') AS s,
    has_table_privilege('imgsearch_api', 'gallery.images', 'UPDATE') OR has_table_privilege('imgsearch_api', 'gallery.images', 'DELETE') AS more`);
  assert.deepEqual(rows[0], { a: false, s: false, more: false });
  for (const [fn, args] of [['add_image', { image: b64 }], ['image_status', { id: 1 }]]) {
    const res = await rpc(fn, args);
    assert.equal(res.status, 401, `${fn}: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.code, '42501', fn);
  }
  assert.equal(await count(), before);
});

test('imgsearch_writer adds an image in SQL: pending, then done, then found by a search', async () => {
  const src = manifest[1];
  const b64 = image(src.name);
  const { rows } = await writer.query('SELECT api.add_image($1) AS id', [b64]);
  const id = Number(rows[0].id);
  added.push(id);
  assert.ok(!manifest.some((m) => m.id === id), `id ${id} is a manifest id`);
  const row = (await admin.query('SELECT i.name, i.grp, i.width, i.height, i.img = decode($2, \'base64\') AS same, i.feat IS NULL AS nofeat, '
    + 't.format AS tformat, t.width AS twidth, t.height AS theight '
    + 'FROM gallery.images i, imgsearch_image_info(i.thumb) t WHERE i.id = $1', [id, b64])).rows[0];
  const orig = (await admin.query('SELECT width, height FROM gallery.images WHERE id = $1', [src.id])).rows[0];
  assert.equal(row.name, `upload-${id}`);
  assert.equal(row.grp, 'uploads');
  assert.equal(row.same, true);
  assert.deepEqual([row.width, row.height], [orig.width, orig.height]);
  assert.equal(row.nofeat, true);   // the ingest worker's to fill
  assert.equal(row.tformat, 'JPEG');
  assert.equal(Math.max(row.twidth, row.theight), Math.min(256, Math.max(row.width, row.height)));
  const s = await settled(sqlStatus, id);
  assert.deepEqual(s, { id, state: 'done', error: null });
  await assertFound(b64, id);
  assert.ok((await atZero(id)).has(src.id), 'the original is at distance 0 too');
});

test('add_image refuses bad input at once, with its SQLSTATE', async () => {
  const before = await count();
  const cases = [
    ['SELECT api.add_image($1)', ['not base64!'], '22023'],
    ['SELECT api.add_image($1)', [Buffer.from('plain text, not an image').toString('base64')], '22P03'],
    ['SELECT api.add_image($1)', [Buffer.from(image(manifest[0].name), 'base64').subarray(0, 2000).toString('base64')], '22P03'],
    ['SELECT api.add_image($1)', [''], '22P03'],
    ['SELECT api.add_image(NULL)', [], '22004'],
    ['SELECT api.add_image($1, $2)', [image(manifest[0].name), manifest[0].name], '23505'],
    ['SELECT api.add_image($1, $2)', [image(manifest[0].name), 'a\nb'], '22023'],
    ['SELECT api.add_image($1, grp => $2)', [image(manifest[0].name), ''], '22023'],
    ['SELECT api.add_image($1)', [Buffer.alloc(8 * 1024 * 1024 + 1).toString('base64')], 'PT413'],
    ['SELECT api.image_status(NULL)', [], '22004'],
  ];
  for (const [sql, params, code] of cases) {
    assert.equal(await sqlError(writer, sql, params), code, `${sql} ${String(params[1] ?? params[0]).slice(0, 40)}`);
  }
  const res = await rpc('add_image', { image: Buffer.from('GIF89a').toString('base64') });
  assert.equal(res.status, 401);   // web_anon, not granted
  assert.equal(await count(), before);
  assert.deepEqual(await sqlStatus(-5), { id: -5, state: 'missing', error: null });
});

test('an image the ingest worker cannot read is failed, with its error', async () => {
  // Inserted directly (add_image refuses it): a PNG signature and nothing more.
  const id = firstNewId + 1000;
  added.push(id);
  await admin.query(`INSERT INTO gallery.images (id, name, grp, width, height, img, thumb)
    VALUES ($1, 'broken-upload', 'uploads', 1, 1, '\\x89504e470d0a1a0a'::bytea, ''::bytea)`, [id]);
  const s = await settled(sqlStatus, id);
  assert.equal(s.state, 'failed', JSON.stringify(s));
  assert.equal(s.error.sqlstate, '22P03');
  assert.match(s.error.message, /PNG/);
});

test('with imgsearch_writer granted to web_anon, HTTP adds an image, polls its status and finds it', async () => {
  await admin.query('GRANT imgsearch_writer TO web_anon');
  const src = manifest[2];
  const b64 = image(src.name);
  const res = await rpc('add_image', { image: b64, name: 'http upload', grp: 'http' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const id = res.body;
  assert.equal(typeof id, 'number');
  added.push(id);
  const s = await settled(httpStatus, id);
  assert.deepEqual(s, { id, state: 'done', error: null });
  await assertFound(b64, id);
  const row = (await admin.query('SELECT name, grp FROM gallery.images WHERE id = $1', [id])).rows[0];
  assert.deepEqual(row, { name: 'http upload', grp: 'http' });
  // errors as HTTP statuses
  const bad = await rpc('add_image', { image: Buffer.from('plain text').toString('base64') });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, '22P03');
  const taken = await rpc('add_image', { image: b64, name: 'http upload' });
  assert.equal(taken.status, 409);
  assert.equal(taken.body.code, '23505');
  assert.deepEqual(await httpStatus(-1), { id: -1, state: 'missing', error: null });
  await admin.query('REVOKE imgsearch_writer FROM web_anon');
  const refused = await rpc('add_image', { image: b64 });
  assert.equal(refused.status, 401);
});

test('ids: the sequence moves past ids taken meanwhile', async () => {
  // The loader's next id, taken before the sequence hands it out.
  const next = Number((await admin.query("SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END AS n FROM gallery.images_id_seq")).rows[0].n);
  added.push(next, next + 1);
  await admin.query(`INSERT INTO gallery.images (id, name, grp, width, height, img, thumb)
    SELECT $1 + d, 'taken-' || d, 'x', width, height, img, thumb FROM gallery.images, generate_series(0, 1) d WHERE id = $2`,
  [next, manifest[0].id]);
  const { rows } = await writer.query('SELECT api.add_image($1) AS id', [image(manifest[3].name)]);
  const id = Number(rows[0].id);
  added.push(id);
  assert.ok(id > next + 1, `${id} after ${next + 1}`);
});

// The page offers "Add to the collection" only where api.can_write() says
// so: it answers for the role the request runs as, as the privilege on
// add_image that the catalog gives that role.
test('can_write(): whether the caller may execute add_image, in SQL and over HTTP', async () => {
  const privilege = async (role) => (await admin.query(
    "SELECT has_function_privilege($1, 'api.add_image(text, text, text)', 'EXECUTE') AS p", [role])).rows[0].p;
  const sqlCan = async (client) => (await client.query('SELECT api.can_write() AS c')).rows[0].c;
  const httpCan = async () => {
    const res = await rpc('can_write', {});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  assert.equal(await privilege('web_anon'), false);
  assert.equal(await sqlCan(anon), false);
  assert.equal(await httpCan(), false);
  assert.equal(await privilege('imgsearch_writer'), true);
  assert.equal(await sqlCan(writer), true);
  await admin.query('GRANT imgsearch_writer TO web_anon');
  try {
    assert.equal(await privilege('web_anon'), true);
    assert.equal(await sqlCan(anon), true);
    assert.equal(await httpCan(), true);
  } finally {
    await admin.query('REVOKE imgsearch_writer FROM web_anon');
  }
  assert.equal(await httpCan(), false);
});

// What the anonymous web role can reach: in SQL (logged in as authenticator,
// switched to web_anon as PostgREST does) and over HTTP.
//   API_URL=... PGDATABASE=imgsearch_web WEB_TEST_DIR=... node --test test/security.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';

const api = process.env.API_URL;
let anon;    // authenticator, SET ROLE web_anon
let admin;   // the superuser of the test cluster

before(async () => {
  admin = new pg.Client();
  await admin.connect();
  anon = new pg.Client({ user: 'authenticator' });
  await anon.connect();
  await anon.query('SET ROLE web_anon');
});
after(async () => { await anon.end(); await admin.end(); });

async function sqlError(client, sql, params = []) {
  try {
    await client.query(sql, params);
  } catch (e) {
    return e.code;
  }
  return 'no error';
}

test('web_anon can call the api functions', async () => {
  const { rows } = await anon.query('SELECT method FROM api.methods()');
  assert.ok(rows.length >= 1);
  const s = await anon.query('SELECT api.stats()');
  assert.ok(s.rows[0].stats.images > 0);
});

test('web_anon reads no table', async () => {
  for (const t of ['gallery.images', 'gallery.queries', 'gallery.settings']) {
    assert.equal(await sqlError(anon, `SELECT count(*) FROM ${t}`), '42501', t);
  }
  assert.equal(await sqlError(anon, 'SELECT count(*) FROM pg_authid'), '42501');
});

test('web_anon calls no other function', async () => {
  const calls = [
    'SELECT pg_sleep(0)',
    "SELECT pg_sleep_for('0 s')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('/etc/passwd')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT public.vgg16_features('\\x00'::bytea)",
    "SELECT public.l2_distance('[1]', '[2]')",
    "SELECT set_config('imgsearch.model', '/tmp/evil.pt', false)",
  ];
  for (const sql of calls) assert.equal(await sqlError(anon, sql), '42501', sql);
});

test('web_anon creates nothing and becomes no one else', async () => {
  for (const sql of ['CREATE TABLE public.t (x int)', 'CREATE TEMP TABLE t (x int)', 'CREATE SCHEMA s',
    'CREATE FUNCTION api.f() RETURNS int LANGUAGE sql AS $$SELECT 1$$',
    "COPY (SELECT 1) TO PROGRAM 'true'", 'SET ROLE imgsearch_api', 'SET ROLE postgres']) {
    assert.equal(await sqlError(anon, sql), '42501', sql);
  }
});

test('authenticator on its own holds no privilege (NOINHERIT)', async () => {
  const c = new pg.Client({ user: 'authenticator' });
  await c.connect();
  try {
    assert.equal(await sqlError(c, 'SELECT * FROM api.methods()'), '42501');
    assert.equal(await sqlError(c, 'SELECT count(*) FROM gallery.images'), '42501');
  } finally {
    await c.end();
  }
});

test('a statement timeout bounds web_anon in SQL sessions and in HTTP requests', async () => {
  const { rows } = await admin.query(`
    SELECT r.rolname, cfg FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) cfg
     WHERE r.rolname IN ('web_anon', 'authenticator') AND cfg LIKE 'statement_timeout=%' AND s.setdatabase = 0
     ORDER BY 1`);
  assert.deepEqual(rows.map((r) => r.rolname), ['authenticator', 'web_anon']);
  const login = new pg.Client({ user: 'authenticator' });
  await login.connect();
  try {
    const t = await login.query('SHOW statement_timeout');
    assert.notEqual(t.rows[0].statement_timeout, '0', 'a login as authenticator is bounded');
  } finally {
    await login.end();
  }
  // Over HTTP the role's setting is applied per request: lowered here for this
  // database only, a search (a VGG16 forward pass) cannot finish in time.
  await admin.query("ALTER ROLE web_anon IN DATABASE imgsearch_web SET statement_timeout = '20ms'");
  try {
    const img = (await admin.query("SELECT encode(img, 'base64') AS b FROM gallery.images ORDER BY id LIMIT 1")).rows[0].b;
    const res = await fetch(`${api}/rpc/search`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ image: img, k: 5 }),
    });
    const body = await res.json();
    // api.search answers a timeout as "busy" (503), not as an internal error.
    assert.equal(res.status, 503);
    assert.equal(body.code, 'PT503');
    assert.match(body.message, /busy.*Try again/);
    assert.match(body.details, /statement timeout/);
  } finally {
    await admin.query('ALTER ROLE web_anon IN DATABASE imgsearch_web RESET statement_timeout');
  }
});

test('over HTTP only api functions are reachable', async () => {
  for (const path of ['/rpc/pg_sleep?seconds=5', '/rpc/pg_read_file?filename=/etc/passwd',
    '/rpc/vgg16_features?img=x', '/rpc/l2_distance?a=[1]&b=[2]']) {
    const res = await fetch(api + path);
    assert.equal(res.status, 404, path);
    assert.equal((await res.json()).code, 'PGRST202');
  }
  for (const path of ['/images', '/gallery.images', '/queries']) {
    const res = await fetch(api + path);
    assert.equal(res.status, 404, path);
  }
  const res = await fetch(`${api}/rpc/search`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Profile': 'gallery' }, body: '{"image": ""}',
  });
  assert.equal(res.status, 406);
});

test('an oversized body is refused with 413 before it reaches the database', async () => {
  const big = JSON.stringify({ image: 'A'.repeat(13 * 1024 * 1024), k: 1 });
  const res = await fetch(`${api}/rpc/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: big });
  assert.equal(res.status, 413);
  const body = await res.json();
  assert.equal(body.code, '54000');
  assert.equal(body.message, 'The image is too large to upload: the limit is 12 MB.');
});

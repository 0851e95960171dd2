// The page's writing and its honest parts, in Debian's chromium, against the
// gateway and the loaded test dataset: adding an image until it is
// searchable, the duplicate groups, groups of results that expand, a
// truncated JPEG, a mistaken file, the larger view's keyboard focus, the
// disabled Search button's contrast. Rows added are deleted at the end.
//   PAGE_URL=... API_URL=... WEB_TEST_DIR=... PGDATABASE=... node --test test/browser_write.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { launchChromium } from './common.js';

const pageUrl = process.env.PAGE_URL;
const apiUrl = process.env.API_URL;
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const shots = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'log', 'browser');
const manifest = fs.readFileSync(path.join(dataset, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [id, name, grp, width, height] = l.split('\t'); return { id: Number(id), name, grp, width: Number(width), height: Number(height) }; });
const file = (m) => path.join(dataset, 'images', m.name);
const b64 = (m) => fs.readFileSync(file(m)).toString('base64');
const DONE_WITHIN_MS = 120000;   // the ingest worker, on a loaded machine
const EPS = 1e-4;                // distance 0: the server's floats against its doubles

let context;
let page;
let admin;
let firstNewId;
const added = [];   // ids of the images the page added
const consoleErrors = [];

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  admin = new pg.Client();
  await admin.connect();
  firstNewId = Number((await admin.query('SELECT max(id) AS m FROM gallery.images')).rows[0].m) + 1;
  ({ context, page } = await launchChromium());
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(pageUrl);
  await page.waitForSelector('[data-testid=method] option[value=kdtree]', { state: 'attached' });
});

after(async () => {
  await context?.close();
  await admin.query('REVOKE imgsearch_writer FROM web_anon');
  // the sequence may hand out ids below the loader's (an id not in its manifest)
  await admin.query('DELETE FROM gallery.images WHERE id >= $1 OR id = ANY ($2)', [firstNewId, added]);
  await admin.query("DELETE FROM imgsearch_ingest_errors WHERE relid = 'gallery.images'::regclass AND (key::bigint >= $1 OR key::bigint = ANY ($2))",
    [firstNewId, added]);
  await admin.end();
});

const areaStartsWith = (name) => page.waitForFunction((n) => document.querySelector('.area')?.textContent.startsWith(n), name);

// Clicks Search; returns {sent, status, rows} once the page shows the answer.
async function search() {
  const request = page.waitForRequest((r) => r.url().endsWith('/rpc/search') && r.method() === 'POST');
  const response = page.waitForResponse((r) => r.url().endsWith('/rpc/search') && r.request().method() === 'POST');
  await page.getByTestId('search').click();
  const sent = (await request).postDataJSON();
  const answer = await response;
  const rows = answer.ok() ? await answer.json() : null;
  await page.waitForSelector('section.results[aria-busy=false]');
  return { sent, status: answer.status(), rows };
}

const shownNames = () => page.locator('[data-testid=results] li .name').allTextContents();

// WCAG's contrast ratio of two CSS colours "rgb(r, g, b)".
function contrast(a, b) {
  const lum = (css) => {
    const [r, g, bl] = css.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

test('the disabled Search button has a contrast of at least 4.5:1 (computed styles), as has the enabled one', async () => {
  const colours = async () => page.getByTestId('search').evaluate((b) => {
    const s = getComputedStyle(b);
    return [s.color, s.backgroundColor];
  });
  assert.equal(await page.getByTestId('search').isDisabled(), true, 'no image yet');
  const [fg, bg] = await colours();
  assert.ok(!/rgba\(.*, 0\)/.test(bg), `an opaque background: ${bg}`);
  const disabled = contrast(fg, bg);
  assert.ok(disabled >= 4.5, `disabled: ${fg} on ${bg} is ${disabled.toFixed(2)}:1`);
  await page.getByTestId('file').setInputFiles(file(manifest[0]));
  await areaStartsWith(manifest[0].name);
  assert.equal(await page.getByTestId('search').isDisabled(), false);
  const enabled = contrast(...await colours());
  assert.ok(enabled >= 4.5, `enabled: ${enabled.toFixed(2)}:1`);
});

test('a mistaken file (.txt, HEIC) keeps the query and its results, and says why', async () => {
  const m = manifest[5];
  await page.getByTestId('file').setInputFiles(file(m));
  await areaStartsWith(m.name);
  const first = await search();
  const names = await shownNames();
  assert.ok(names.length > 0);
  for (const bad of [{ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello'), says: /notes\.txt is not an image/ },
    { name: 'photo.heic', mimeType: 'image/heic', buffer: Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypheic'), Buffer.alloc(64)]), says: /cannot show photo\.heic/ }]) {
    await page.getByTestId('file').setInputFiles({ name: bad.name, mimeType: bad.mimeType, buffer: bad.buffer });
    await page.waitForFunction((re) => new RegExp(re).test(document.querySelector('[role=alert]')?.textContent ?? ''), bad.says.source);
    assert.ok((await page.locator('.area').textContent()).startsWith(m.name), `${bad.name}: the query stays`);
    assert.equal(await page.getByTestId('preview').count(), 1);
    assert.deepEqual(await shownNames(), names, `${bad.name}: the results stay`);
    assert.equal(await page.getByTestId('search').isDisabled(), false);
  }
  const again = await search();
  assert.equal(again.sent.image, first.sent.image, 'Search searches the kept query');
  assert.equal(await page.getByRole('alert').count(), 0, 'a search clears the error');
});

test('a truncated JPEG that the browser shows is re-encoded and searched, where the server refuses it as is', async () => {
  const m = manifest[8];
  const whole = fs.readFileSync(file(m));
  const cut = whole.subarray(0, Math.floor(whole.length * 0.6));
  // the premise: the server refuses the file as it is
  const raw = await fetch(`${apiUrl}/rpc/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ image: cut.toString('base64'), k: 3 }) });
  assert.equal(raw.status, 400);
  assert.equal((await raw.json()).code, '22P03');
  await page.getByTestId('file').setInputFiles({ name: 'cut.jpg', mimeType: 'image/jpeg', buffer: cut });
  await areaStartsWith('cut.jpg');
  assert.match(await page.locator('.area').textContent(), new RegExp(`sent as ${m.width}×${m.height} JPEG \\(the file is incomplete`));
  const { sent, status, rows } = await search();
  assert.equal(status, 200);
  const bytes = Buffer.from(sent.image, 'base64');
  assert.ok(!bytes.equals(cut), 'not the file as it is');
  assert.ok(bytes.subarray(0, 2).equals(Buffer.from([0xff, 0xd8])) && bytes.subarray(-2).equals(Buffer.from([0xff, 0xd9])), 'a whole JPEG');
  assert.equal(rows.length, Math.min(sent.k, manifest.length));
  assert.equal(await page.getByRole('alert').count(), 0);
});

test('the larger view keeps the keyboard focus; Escape closes it and the focus returns to the result', async () => {
  const opener = page.locator('[data-testid=results] li button.open').nth(1);
  const label = await opener.getAttribute('aria-label');
  await opener.focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('lightbox').waitFor();
  const inside = () => page.evaluate(() => document.querySelector('[data-testid=lightbox]').contains(document.activeElement));
  assert.equal(await inside(), true, 'the dialog takes the focus');
  await page.waitForSelector('[data-testid=lightbox-img][data-full=yes]');   // both buttons enabled
  const seen = new Set();
  for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
    await page.keyboard.press(key);
    assert.equal(await inside(), true, `after ${key}`);
    seen.add(await page.evaluate(() => document.activeElement.dataset.testid));
  }
  assert.deepEqual([...seen].sort(), ['close', 'search-this'], 'Tab cycles through the dialog\'s buttons');
  await page.keyboard.press('Escape');
  assert.equal(await page.getByTestId('lightbox').count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), label, 'the focus is back on the result');
});

test('grouped results: "+N more views" expands the group in place, and hides it again', async () => {
  const m = manifest[2];
  await page.getByTestId('file').setInputFiles(file(m));
  await areaStartsWith(m.name);
  await page.getByTestId('method').selectOption('argsort');
  await page.getByTestId('k').fill(String(manifest.length));
  const { rows } = await search();
  await page.getByTestId('group').check();
  const cards = page.locator('[data-testid=results] li');
  const groups = [...new Set(rows.map((r) => r.grp))];
  assert.equal(await cards.count(), groups.length);
  const g = groups[0];
  const members = rows.filter((r) => r.grp === g);
  assert.ok(members.length > 1);
  const more = cards.first().getByTestId('more');
  assert.equal(await more.evaluate((e) => e.tagName), 'BUTTON', 'it is a button, and does something');
  assert.equal(await more.getAttribute('aria-expanded'), 'false');
  await more.click();
  assert.equal(await more.getAttribute('aria-expanded'), 'true');
  assert.equal(await cards.count(), groups.length + members.length - 1);
  const shown = await cards.evaluateAll((ls) => ls.map((l) => [l.dataset.group, l.querySelector('.name').textContent]));
  assert.deepEqual(shown.slice(0, members.length), members.map((r) => [g, r.name]), 'the group\'s views in rank order, in place');
  assert.equal(shown[members.length][0], groups[1]);
  await page.screenshot({ path: path.join(shots, 'grouped-expanded-1280.png'), fullPage: true });
  await more.click();
  assert.equal(await cards.count(), groups.length);
  await page.getByTestId('group').uncheck();
  await page.getByTestId('k').fill('10');
});

// The groups at distance d computed here: pairs within d from SQL over the
// whole table with the plain operator, then connected components; each as
// its ids joined by commas, the set of them.
async function expectedGroups(d) {
  const { rows: ids } = await admin.query('SELECT id FROM gallery.images WHERE feat IS NOT NULL');
  const { rows } = await admin.query(`SELECT a.id AS a, b.id AS b FROM gallery.images a JOIN gallery.images b ON a.id < b.id
    WHERE a.feat <-> b.feat <= $1`, [d]);
  const parent = new Map(ids.map((r) => [Number(r.id), Number(r.id)]));
  const find = (x) => { while (parent.get(x) !== x) x = parent.get(x); return x; };
  for (const r of rows) parent.set(find(Number(r.a)), find(Number(r.b)));
  const groups = new Map();
  for (const id of parent.keys()) {
    if (!groups.has(find(id))) groups.set(find(id), []);
    groups.get(find(id)).push(id);
  }
  return [...groups.values()].filter((x) => x.length > 1).map((x) => x.sort((p, q) => p - q).join(',')).sort();
}

// The smallest distance (on the slider's 0.001 steps) at which some group
// has more than 6 images (the ones shown before a group expands).
async function distanceOfALargeGroup() {
  for (let d = 0.001; d <= 0.2; d = Math.round((d + 0.001) * 1000) / 1000) {
    if ((await expectedGroups(d)).some((g) => g.split(',').length > 6)) return d;
  }
  throw new Error('no group of more than 6 images up to 0.2');
}

test('duplicate groups: as SQL computes them, a slider and a number set the distance, groups expand', async () => {
  const requests = [];
  page.on('request', (r) => { if (r.url().endsWith('/rpc/duplicates')) requests.push(r.postDataJSON().max_distance); });
  await page.getByTestId('dup-toggle').click();
  const d = await distanceOfALargeGroup();
  const shown = async (dist) => {
    await page.waitForSelector(`[data-testid=dup-summary][data-distance="${dist}"]`);
    await page.waitForFunction(() => !document.querySelector('.duplicates .stale'));
    return (await page.getByTestId('dup-group').evaluateAll((gs) => gs.map((g) => g.dataset.ids))).sort();
  };
  await page.getByTestId('dup-distance').fill(String(d));
  const want = await expectedGroups(d);
  assert.deepEqual(await shown(d), want, `groups at ${d}`);
  const images = want.reduce((s, g) => s + g.split(',').length, 0);
  assert.match(await page.getByTestId('dup-summary').textContent(), new RegExp(`^${want.length} groups? holding ${images} images within ${d} `));

  // The keyboard moves the slider one step.
  await page.getByTestId('dup-slider').focus();
  await page.keyboard.press('ArrowLeft');
  const d2 = Math.round((d - 0.001) * 1000) / 1000;
  assert.equal(await page.getByTestId('dup-distance').inputValue(), String(d2));
  assert.deepEqual(await shown(d2), await expectedGroups(d2), `groups at ${d2}`);

  // Back to d: from the page's cache, no request.
  const asked = requests.length;
  await page.getByTestId('dup-distance').fill(String(d));
  assert.deepEqual(await shown(d), want);
  assert.equal(requests.length, asked, 'a distance seen before is not asked again');

  // The largest group shows 6 images, then all of them.
  const big = page.getByTestId('dup-group').filter({ has: page.getByTestId('dup-expand') }).first();
  const ids = (await big.getAttribute('data-ids')).split(',');
  assert.ok(ids.length > 6);
  assert.equal(await big.locator('img').count(), 6);
  assert.equal(await big.getByTestId('dup-expand').textContent(), `+${ids.length - 6} more`);
  await big.getByTestId('dup-expand').click();
  await big.locator('img').nth(ids.length - 1).waitFor();
  assert.deepEqual(await big.getByTestId('dup-member').evaluateAll((ms) => ms.map((m) => m.dataset.id)), ids);
  const { rows: thumbs } = await admin.query("SELECT id, encode(thumb, 'base64') AS t FROM gallery.images WHERE id = ANY ($1) ORDER BY id", [ids.map(Number)]);
  // (PostgreSQL's base64 has line breaks, which a data: URL keeps as %0A)
  assert.deepEqual(await big.locator('img').evaluateAll((is) => is.map((i) => decodeURIComponent(i.src.replace(/^data:image\/jpeg;base64,/, '')).replace(/\s/g, ''))),
    thumbs.map((r) => r.t.replace(/\s/g, '')), 'each image its stored thumbnail');
  await page.screenshot({ path: path.join(shots, 'duplicates-1280.png'), fullPage: true });

  // A distance out of the slider's range: said on the page, nothing asked.
  const before = requests.length;
  await page.getByTestId('dup-distance').fill('0.3');
  assert.equal(await page.getByTestId('dup-distance-error').count(), 1);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(requests.length, before);
  await page.getByTestId('dup-toggle').click();
});

// Poll until the added image's state is no longer pending; returns it.
async function settledState() {
  const status = page.getByTestId('add-status');
  await page.waitForFunction(() => ['done', 'failed', 'missing'].includes(document.querySelector('[data-testid=add-status]')?.dataset.state),
    null, { timeout: DONE_WITHIN_MS });
  return status.getAttribute('data-state');
}

test('adding an image: offered only when the API says the caller may write; pending, then searchable, then searched', async () => {
  // web_anon may not write: no offer.
  await page.getByTestId('file').setInputFiles(file(manifest[1]));
  await areaStartsWith(manifest[1].name);
  assert.equal(await page.getByTestId('add-image').count(), 0, 'no "Add" for web_anon');

  await admin.query('GRANT imgsearch_writer TO web_anon');
  const canWrite = page.waitForResponse((r) => r.url().endsWith('/rpc/can_write'));
  await page.reload();
  assert.equal(await (await canWrite).json(), true);
  // A new image: a dataset image mirrored here, under a name of its own.
  const m = manifest[3];
  const name = `browser-added-${process.pid}.png`;
  const png = execFileSync('/usr/bin/python3', ['-c', `
import io, sys
from PIL import Image, ImageOps
b = io.BytesIO()
ImageOps.mirror(Image.open(sys.argv[1]).convert('RGB')).save(b, 'PNG')
sys.stdout.buffer.write(b.getvalue())
`, file(m)]);
  await page.getByTestId('file').setInputFiles({ name, mimeType: 'image/png', buffer: png });
  await areaStartsWith(name);
  await page.getByTestId('add-image').waitFor();
  assert.equal(await page.getByTestId('add-name').inputValue(), name);
  const addRequest = page.waitForRequest((r) => r.url().endsWith('/rpc/add_image'));
  await page.getByTestId('add').click();
  const sentAdd = (await addRequest).postDataJSON();
  assert.deepEqual(sentAdd, { image: png.toString('base64'), name });
  await page.waitForSelector('[data-testid=add-status][data-id]:not([data-id=""])');
  const id = Number(await page.getByTestId('add-status').getAttribute('data-id'));
  added.push(id);
  const row = (await admin.query('SELECT name, img = decode($2, \'base64\') AS same FROM gallery.images WHERE id = $1', [id, png.toString('base64')])).rows[0];
  assert.deepEqual(row, { name, same: true });
  assert.equal(await settledState(), 'done');
  assert.match(await page.getByTestId('add-status').textContent(), new RegExp(`^Added and searchable \\(id ${id}\\)`));
  await page.screenshot({ path: path.join(shots, 'added-1280.png'), fullPage: true });

  // "Search with it": the image finds itself, with the rows at its distance
  // 0 as SQL finds them from the stored features (a set: ties by id).
  const request = page.waitForRequest((r) => r.url().endsWith('/rpc/search'));
  const response = page.waitForResponse((r) => r.url().endsWith('/rpc/search'));
  await page.getByTestId('search-added').click();
  assert.equal((await request).postDataJSON().image, png.toString('base64'));
  const rows = await (await response).json();
  await page.waitForSelector('section.results[aria-busy=false] [data-testid=results] li');
  const { rows: zero } = await admin.query(`SELECT i.id FROM gallery.images i, gallery.images a
    WHERE a.id = $1 AND i.feat <-> a.feat <= $2`, [id, EPS]);
  const want = zero.map((r) => Number(r.id)).sort((a, b) => a - b);
  assert.ok(want.includes(id));
  assert.deepEqual(rows.filter((r) => r.distance <= EPS).map((r) => r.id).sort((a, b) => a - b), want);
  assert.ok((await shownNames()).slice(0, want.length).includes(name), 'the added image is shown first, or tied first');

  // The same name again: refused (409), said on the page.
  await page.getByTestId('file').setInputFiles({ name, mimeType: 'image/png', buffer: png });
  await areaStartsWith(name);
  await page.getByTestId('add').click();
  await page.getByTestId('add-error').waitFor();
  assert.match(await page.getByTestId('add-error').textContent(), /exists already.*HTTP 409 · 23505/);
  await admin.query('REVOKE imgsearch_writer FROM web_anon');
});

test('no errors in the browser console', () => {
  // the 400s of the truncated JPEG's premise and the 409, the mistaken files
  const unexpected = consoleErrors.filter((e) => !/status of (400|409)|ERR_FAILED|ERR_ABORTED|blob:/.test(e));
  assert.deepEqual(unexpected, []);
});

// The page's ways in and links, in Debian's chromium against the gateway and
// the loaded test dataset: the gallery (paged, lazy thumbnails, a click
// searches by id), things to try, the search in the URL (reload, back, a
// link in a fresh page), several examples as chips, an expired upload.
// Results are checked against rankings computed here from the stored
// features (ranking.js: ties as sets).
//   PAGE_URL=... API_URL=... PGDATABASE=imgsearch_web WEB_TEST_DIR=... node --test test/browser_nav.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { assertExamplesRanking, examplesRanking } from './ranking.js';
import { dragOnPreview, launchChromium, sqlFeature, storedFeatures } from './common.js';

const pageUrl = process.env.PAGE_URL;
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const manifest = fs.readFileSync(path.join(dataset, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [id, name, grp] = l.split('\t'); return { id: Number(id), name, grp }; })
  .sort((a, b) => a.id - b.id);
const queryFiles = fs.readdirSync(path.join(dataset, 'queries')).sort();

let context;
let page;
let db;
let feats;          // id -> Float64Array, read from the table
const pageErrors = [];

before(async () => {
  db = new pg.Client();
  await db.connect();
  feats = await storedFeatures(db);
  ({ context, page } = await launchChromium({ width: 1280, height: 300 }));
  page.on('pageerror', (e) => pageErrors.push(String(e)));
});
after(async () => { await context?.close(); await db?.end(); });

const featureOf = (bytes, box = null) => sqlFeature(db, bytes, box);
const ranking = (positives, negatives = []) => examplesRanking(feats, positives, negatives);
const assertRanking = assertExamplesRanking;

// Runs action; returns what the page sent to /rpc/fn and the rows answered,
// once the page shows them.
async function call(fn, action, p = page) {
  const request = p.waitForRequest((r) => r.url().endsWith(`/rpc/${fn}`) && r.method() === 'POST');
  const response = p.waitForResponse((r) => r.url().endsWith(`/rpc/${fn}`) && r.request().method() === 'POST');
  await action();
  const sent = (await request).postDataJSON();
  const res = await response;
  const rows = await res.json();
  if (res.ok()) {
    await p.waitForFunction((n) => document.querySelectorAll('[data-testid=results] li').length === n
      && document.querySelector('section.results')?.getAttribute('aria-busy') === 'false', rows.length);
  }
  return { sent, rows, res };
}

const params = (p = page) => new URL(p.url()).searchParams;
const shownNames = (p = page) => p.$$eval('[data-testid=results] li .name', (els) => els.map((e) => e.textContent));
const card = (id) => page.locator(`[data-testid=gallery-card][data-id="${id}"]`);
const resultCard = (name) => page.locator('[data-testid=results] li').filter({ has: page.locator(`.name[title="${name}"]`) });

test('the empty page: things to try, and the collection a page at a time, thumbnails as they come into view', async () => {
  const thumbCalls = [];
  page.on('request', (r) => { if (r.url().endsWith('/rpc/thumbs')) thumbCalls.push(r.postDataJSON().ids); });
  // a phone-sized window: the gallery in two columns, ten rows of cards
  await page.setViewportSize({ width: 420, height: 300 });
  await page.goto(pageUrl);
  // One image of each photograph (the first by id), at most 6.
  await page.getByTestId('try-one').first().waitFor();
  const groups = [...new Set(manifest.map((m) => m.grp))].sort();
  const tries = await page.getByTestId('try-one').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')));
  assert.deepEqual(tries, groups.slice(0, 6).map((g) => `Search with ${manifest.find((m) => m.grp === g).name}`));

  await page.getByTestId('gallery-card').first().waitFor();
  const pages = Math.ceil(manifest.length / 20);
  assert.equal(await page.getByTestId('gallery-page').textContent(), `Page 1 of ${pages} · ${manifest.length} images`);
  const ids = await page.getByTestId('gallery-card').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
  assert.deepEqual(ids, manifest.slice(0, 20).map((m) => m.id));
  // With the first cards in view, the last ones are rows below: no thumbnails yet.
  await card(ids[0]).scrollIntoViewIfNeeded();
  await card(ids[0]).getByTestId('gallery-thumb').waitFor();
  assert.equal(await card(ids[ids.length - 1]).getByTestId('gallery-thumb').count(), 0, 'a thumbnail loaded before it came into view');
  await card(ids[ids.length - 1]).scrollIntoViewIfNeeded();
  await card(ids[ids.length - 1]).getByTestId('gallery-thumb').waitFor();
  assert.ok(thumbCalls.length >= 2, 'the thumbnails came in one request');
  const asked = thumbCalls.flat();
  assert.equal(new Set(asked).size, asked.length, 'a thumbnail asked for twice');
  assert.ok(asked.every((id) => ids.includes(id)), 'a thumbnail of another page');
  assert.ok(asked.length < ids.length, 'every thumbnail asked for, not only those that came into view');
  // The thumbnail is the table's.
  const { rows: [t] } = await db.query("SELECT encode(thumb, 'base64') AS b FROM gallery.images WHERE id = $1", [ids[0]]);
  const src = await card(ids[0]).locator('img').getAttribute('src');
  assert.equal(Buffer.from(src.split(',')[1], 'base64').compare(Buffer.from(t.b, 'base64')), 0);

  await page.getByTestId('gallery-next').click();
  await page.waitForFunction((p) => document.querySelector('[data-testid=gallery-page]').textContent.startsWith(`Page ${p} of`), 2);
  const ids2 = await page.getByTestId('gallery-card').evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
  assert.deepEqual(ids2, manifest.slice(20, 40).map((m) => m.id));
  assert.equal(await page.getByTestId('gallery-next').isDisabled(), pages === 2);
  await page.getByTestId('gallery-prev').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=gallery-page]').textContent.startsWith('Page 1 of'));
  page.removeAllListeners('request');
});

test('a click in the gallery searches by id with the stored feature; the URL holds it; reload, back and forward restore it', async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.getByTestId('method').selectOption('faissflat');
  await page.getByTestId('k').fill('5');
  const a = manifest[6];
  await card(a.id).scrollIntoViewIfNeeded();
  const first = await call('similar', () => card(a.id).locator('button.open').click());
  assert.deepEqual(first.sent, { positives: [a.id], k: 5, method: 'faissflat' });
  assertRanking(first.rows, ranking([feats.get(a.id)]), 'gallery click');
  assert.equal(params().get('id'), String(a.id));
  assert.equal(params().get('method'), 'faissflat');
  assert.equal(params().get('k'), '5');
  assert.ok(params().get('api'), 'the page keeps its ?api=');
  const names = await shownNames();

  const again = await call('similar', () => page.reload());
  assert.deepEqual(again.sent, first.sent);
  assert.deepEqual(await shownNames(), names);
  assert.equal(await page.getByTestId('k').inputValue(), '5');
  assert.equal(await page.getByTestId('method').inputValue(), 'faissflat');

  const b = manifest[12];
  await card(b.id).scrollIntoViewIfNeeded();
  const second = await call('similar', () => card(b.id).locator('button.open').click());
  assert.deepEqual(second.sent.positives, [b.id]);
  assert.equal(params().get('id'), String(b.id));
  const back = await call('similar', () => page.goBack());
  assert.deepEqual(back.sent, first.sent);
  assert.equal(params().get('id'), String(a.id));
  assert.deepEqual(await shownNames(), names);
  const forward = await call('similar', () => page.goForward());
  assert.deepEqual(forward.sent.positives, [b.id]);
  assertRanking(forward.rows, ranking([feats.get(b.id)]), 'forward');
});

let kept;   // {hash, box, url}: the upload of the next test

test('an upload with an area: the server keeps it by its hash, and a link opened in a fresh page searches with it', async () => {
  const file = path.join(dataset, 'queries', queryFiles[0]);
  const bytes = fs.readFileSync(file);
  await page.getByTestId('file').setInputFiles(file);
  await page.getByTestId('preview').locator('img').waitFor();
  await dragOnPreview(page, null, null, 0.8, 0.7);
  await page.getByTestId('method').selectOption('argsort');
  const s = await call('search', () => page.getByTestId('search').click());
  const hash = crypto.createHash('sha256').update(bytes).digest('hex');
  assert.equal(s.res.headers()['x-upload-sha256'], hash);
  assert.equal(s.sent.image, bytes.toString('base64'));
  assert.equal(s.sent.box.length, 4);
  const q = await featureOf(bytes, s.sent.box);
  assertRanking(s.rows, ranking([q]), 'upload with an area');
  assert.equal(params().get('upload'), hash);
  assert.equal(params().get('box'), s.sent.box.join(','));
  kept = { hash, box: s.sent.box, url: page.url() };

  const fresh = await context.newPage();
  try {
    const f = await call('search_upload', () => fresh.goto(kept.url), fresh);
    assert.deepEqual(f.sent, { sha256: hash, k: 5, method: 'argsort', box: s.sent.box });
    assert.deepEqual(f.rows.map((x) => [x.id, x.distance]), s.rows.map((x) => [x.id, x.distance]));
    assert.deepEqual(await shownNames(fresh), await shownNames());
    // the query image is the kept one
    await fresh.getByTestId('preview').locator('img').waitFor();
    assert.equal(await fresh.getByTestId('box').count(), 1);
    assert.equal(params(fresh).get('upload'), hash);
  } finally {
    await fresh.close();
  }
});

test('several examples: more and less like results and uploads, shown as chips that remove, in the URL', async () => {
  const a = manifest[0];
  await call('similar', () => page.goto(`${pageUrl}&id=${a.id}&k=8`));
  const rows = await page.$$eval('[data-testid=results] li .name', (els) => els.map((e) => e.textContent));
  const byName = (n) => manifest.find((m) => m.name === n);
  const b = byName(rows[2]);
  const c = byName(rows[4]);

  const more = await call('similar', () => resultCard(b.name).getByTestId('more-like').click());
  assert.deepEqual(more.sent, { positives: [a.id, b.id], negatives: [], k: 8, method: 'auto' });
  assertRanking(more.rows, ranking([feats.get(a.id), feats.get(b.id)]), 'more like b');
  const less = await call('similar', () => resultCard(c.name).getByTestId('less-like').click());
  assert.deepEqual(less.sent, { positives: [a.id, b.id], negatives: [c.id], k: 8, method: 'auto' });
  assertRanking(less.rows, ranking([feats.get(a.id), feats.get(b.id)], [feats.get(c.id)]), 'less like c');
  const chips = () => page.getByTestId('chip').evaluateAll((els) => els.map((e) => [e.dataset.sign, e.dataset.ref]));
  assert.deepEqual(await chips(), [['more', String(b.id)], ['less', String(c.id)]]);
  assert.deepEqual(params().getAll('more'), [String(b.id)]);
  assert.deepEqual(params().getAll('less'), [String(c.id)]);

  // a reload brings the chips back, and the same search
  const again = await call('similar', () => page.reload());
  assert.deepEqual(again.sent, less.sent);
  assert.deepEqual(await chips(), [['more', String(b.id)], ['less', String(c.id)]]);

  // removing a chip searches without it
  const removed = await call('similar', () => page.getByTestId('chip').filter({ hasText: b.name }).getByTestId('chip-remove').click());
  assert.deepEqual(removed.sent, { positives: [a.id], negatives: [c.id], k: 8, method: 'auto' });
  assertRanking(removed.rows, ranking([feats.get(a.id)], [feats.get(c.id)]), 'b removed');
  assert.deepEqual(await chips(), [['less', String(c.id)]]);
  assert.deepEqual(params().getAll('more'), []);

  // an upload as an example, by its kept hash: chosen, searched, kept
  const file = path.join(dataset, 'queries', queryFiles[1]);
  const bytes = fs.readFileSync(file);
  await page.getByTestId('file').setInputFiles(file);
  await page.getByTestId('preview').locator('img').waitFor();
  const searched = await call('similar', () => page.getByTestId('search').click());
  const hash = crypto.createHash('sha256').update(bytes).digest('hex');
  assert.deepEqual(searched.sent, { positives: [], negatives: [c.id], k: 8, method: 'auto', positive_uploads: [hash] });
  const q = await featureOf(bytes);
  assertRanking(searched.rows, ranking([q], [feats.get(c.id)]), 'upload and less like c');
  const keptUp = await call('similar', () => page.getByTestId('keep-query').click());
  assert.deepEqual(keptUp.sent, searched.sent);
  assert.deepEqual(await chips(), [['less', String(c.id)], ['more', hash]]);
  assert.equal(params().get('upload'), null);
  assert.deepEqual(params().getAll('more'), [hash]);

  await page.getByTestId('chips-clear').click();
  assert.equal(await page.getByTestId('chip').count(), 0);
  assert.deepEqual(pageErrors, []);
});

test('an expired or unknown upload: a clear message, and the page still works', async () => {
  assert.ok(kept, 'the upload test ran');
  await db.query("UPDATE gallery.uploads SET kept_at = now() - interval '25 hours' WHERE sha256 = decode($1, 'hex')", [kept.hash]);
  for (const url of [kept.url, `${pageUrl}&upload=${'0'.repeat(64)}`]) {
    const res = page.waitForResponse((r) => r.url().endsWith('/rpc/upload_image'));
    await page.goto(url);
    assert.equal((await res).status(), 410);
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const text = await alert.textContent();
    assert.match(text, /no longer kept on the server/);
    assert.match(text, /Upload the image again/);
    assert.match(text, /PT410/);
    // the way in is there still
    await page.getByTestId('try-one').first().waitFor();
    await page.getByTestId('gallery-card').first().waitFor();
  }
  assert.deepEqual(pageErrors, []);
});

// The page in Debian's chromium (never a downloaded browser), against the
// gateway and the loaded test dataset. Screenshots go to log/browser/.
//   PAGE_URL=... API_URL=... WEB_TEST_DIR=... node --test test/browser.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const pageUrl = process.env.PAGE_URL;
const dataset = path.join(process.env.WEB_TEST_DIR, 'dataset');
const shots = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'log', 'browser');
const manifest = fs.readFileSync(path.join(dataset, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [id, name, grp, width, height] = l.split('\t'); return { id: Number(id), name, grp, width: Number(width), height: Number(height) }; });

let context;
let page;
const consoleErrors = [];

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'imgsearch-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(pageUrl);
  await page.waitForSelector('[data-testid=method] option[value=lsh]', { state: 'attached' });
});
after(async () => { await context?.close(); });

// Drags on the preview from (x0, y0) to (x1, y1), fractions of its size;
// null for x0 or y0: its first pixel.
async function drag(x0, y0, x1, y1) {
  const r = await page.getByTestId('preview').boundingBox();
  x0 ??= 1 / r.width;
  y0 ??= 1 / r.height;
  await page.mouse.move(r.x + r.width * x0, r.y + r.height * y0);
  await page.mouse.down();
  await page.mouse.move(r.x + r.width * ((x0 + x1) / 2), r.y + r.height * ((y0 + y1) / 2), { steps: 4 });
  await page.mouse.move(r.x + r.width * x1, r.y + r.height * y1, { steps: 4 });
  await page.mouse.up();
}

// Clicks Search; returns the arguments sent, once the page shows the answer.
async function searchAndCapture() {
  const request = page.waitForRequest((r) => r.url().endsWith('/rpc/search') && r.method() === 'POST');
  const response = page.waitForResponse((r) => r.url().endsWith('/rpc/search') && r.request().method() === 'POST');
  await page.getByTestId('search').click();
  const sent = (await request).postDataJSON();
  await response;
  await page.waitForSelector('section.results[aria-busy=false]');
  return sent;
}

test('upload, select the whole image, faissflat, k=10: the image itself comes first', async () => {
  const m = manifest.find((x) => x.name.endsWith('_001.jpg'));
  await page.getByTestId('file').setInputFiles(path.join(dataset, 'images', m.name));
  await page.getByTestId('preview').locator('img').waitFor();
  await page.screenshot({ path: path.join(shots, 'query-1280.png'), fullPage: true });
  // From the top left corner to beyond the bottom right one: the whole image.
  await drag(null, null, 1.1, 1.1);
  await page.getByTestId('method').selectOption('faissflat');
  await page.getByTestId('k').fill('10');
  const sent = await searchAndCapture();
  assert.equal(sent.method, 'faissflat');
  assert.equal(sent.k, 10);
  assert.deepEqual(sent.box, [0, 0, m.width, m.height]);
  assert.equal(sent.image, fs.readFileSync(path.join(dataset, 'images', m.name)).toString('base64'));

  const cards = page.locator('[data-testid=results] li');
  assert.equal(await cards.count(), 10);
  assert.equal(await cards.first().getAttribute('data-group'), m.grp);
  assert.equal(await cards.first().locator('.name').textContent(), m.name);
  assert.match(await cards.first().locator('.dist').textContent(), /^0\.000\d$/);
  assert.match(await page.getByTestId('timing').textContent(), /^10 results in \d+ ms · faissflat, k = 10/);
  assert.equal(await page.getByTestId('random-notice').count(), 1, 'the page says the model is random');
  await page.screenshot({ path: path.join(shots, 'results-1280.png'), fullPage: true });
});

test('the method select offers every method; kdtree returns what faissflat returned', async () => {
  const options = await page.locator('[data-testid=method] option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, ['auto', 'argsort', 'faissflat', 'kdtree', 'lsh']);
  assert.equal(await page.locator('[data-testid=method] option[value=lsh]').textContent(),
    'lsh (hashing index, approximate)');
  const cards = page.locator('[data-testid=results] li');
  const shown = async () => cards.evaluateAll((ls) => ls.map((l) => l.querySelector('.name').textContent));
  const flat = await shown();
  assert.equal(flat.length, 10);
  await page.getByTestId('method').selectOption('kdtree');
  const sent = await searchAndCapture();
  assert.equal(sent.method, 'kdtree');
  assert.equal(sent.k, 10);
  assert.deepEqual(await shown(), flat);
  assert.match(await page.getByTestId('timing').textContent(), /^10 results in \d+ ms · kdtree, k = 10/);
});

// lsh is approximate; on the small test set its default budget finds the
// same first image and at least 9 of the 10 shown (kdtree's, which are
// faissflat's).
test('lsh returns nearly what faissflat returned, the same image first', async () => {
  const cards = page.locator('[data-testid=results] li');
  const shown = async () => cards.evaluateAll((ls) => ls.map((l) => l.querySelector('.name').textContent));
  const flat = await shown();
  assert.equal(flat.length, 10);
  await page.getByTestId('method').selectOption('lsh');
  const sent = await searchAndCapture();
  assert.equal(sent.method, 'lsh');
  assert.equal(sent.k, 10);
  const got = await shown();
  assert.equal(got.length, 10);
  assert.equal(got[0], flat[0]);
  assert.ok(got.filter((n) => flat.includes(n)).length >= 9, `${got} against ${flat}`);
  assert.match(await page.getByTestId('timing').textContent(), /^10 results in \d+ ms · lsh, k = 10/);
});

test('a dragged area is sent in the image pixels', async () => {
  const name = (await page.locator('.area').textContent()).split(' · ')[0];
  const m = manifest.find((x) => x.name === name);
  await drag(0.25, 0.2, 0.75, 0.6);
  const sent = await searchAndCapture();
  const [x, y, w, h] = sent.box;
  const near = (a, b) => Math.abs(a - b) <= 3;
  assert.ok(near(x, m.width * 0.25) && near(y, m.height * 0.2), `${sent.box}`);
  assert.ok(near(w, m.width * 0.5) && near(h, m.height * 0.4), `${sent.box}`);
  assert.equal(await page.locator('[data-testid=results] li').count(), 10);
});

test('the page works at 390 px', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no horizontal scrolling (${width} px)`);
  await page.screenshot({ path: path.join(shots, 'results-390.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('keyboard only: select an area with the arrows, search with Enter', async () => {
  await page.getByTestId('preview').focus();
  await page.keyboard.press('Escape');
  assert.equal(await page.getByTestId('box').count(), 0);
  await page.keyboard.press('ArrowRight');               // the central half
  await page.keyboard.press('Shift+ArrowDown');
  assert.equal(await page.getByTestId('box').count(), 1);
  const focused = async () => page.evaluate(() => document.activeElement.dataset.testid);
  for (let i = 0; i < 4 && (await focused()) !== 'k'; i++) await page.keyboard.press('Tab');
  assert.equal(await focused(), 'k');
  await page.keyboard.press('Control+a');
  await page.keyboard.type('4');
  const request = page.waitForRequest((r) => r.url().endsWith('/rpc/search'));
  await page.keyboard.press('Enter');
  const sent = (await request).postDataJSON();
  assert.equal(sent.k, 4);
  assert.equal(sent.box.length, 4);
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=results] li').length === 4);
});

test("the API's error message is shown", async () => {
  await page.getByTestId('k').fill('5000');
  await page.getByTestId('search').click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /k must be between 1 and 1000, not 5000/);
  assert.match(await alert.textContent(), /HTTP 400 · 22023/);
  await page.screenshot({ path: path.join(shots, 'error-1280.png'), fullPage: true });
});

test('no errors in the browser console', () => {
  const unexpected = consoleErrors.filter((e) => !/status of 400/.test(e));
  assert.deepEqual(unexpected, []);
});

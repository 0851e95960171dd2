// What the API and page suites share: the stored features to rank against
// (ranking.js ranks them), the server's feature of a query, and the browser
// (Debian's chromium, never a downloaded one).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

// id -> Float64Array: every gallery image's stored feature (db: a connected pg.Client).
export async function storedFeatures(db) {
  const { rows } = await db.query('SELECT id, feat::real[] AS f FROM gallery.images');
  return new Map(rows.map((r) => [Number(r.id), Float64Array.from(r.f)]));
}

// Headless chromium in a fresh profile, at the viewport's size: { context, page }.
export async function launchChromium(viewport = { width: 1280, height: 900 }) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'imgsearch-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport,
  });
  return { context, page: context.pages()[0] || await context.newPage() };
}

// The query's feature as the server computes it (vgg16_features in SQL,
// of an area box = [x, y, w, h] when given): a reference's query.
export async function sqlFeature(db, bytes, box = null) {
  const { rows } = await db.query(box ? 'SELECT vgg16_features($1::bytea, $2::int[])::real[] AS q' : 'SELECT vgg16_features($1::bytea)::real[] AS q',
    box ? [bytes, box] : [bytes]);
  return Float64Array.from(rows[0].q);
}

// Drags the mouse across the query preview from (x0, y0) to (x1, y1),
// fractions of its size (null for x0 or y0: its first pixel); resolves once
// the page shows the area. The mouse works in viewport pixels, so the preview
// is first scrolled into view, its image decoded and its place the same over
// two frames: a rectangle read while the image still lays out (or while the
// page scrolls) sent the drag elsewhere, and the search went without an area.
export async function dragOnPreview(page, x0, y0, x1, y1) {
  const preview = page.getByTestId('preview');
  await preview.scrollIntoViewIfNeeded();
  await preview.locator('img').evaluate((img) => img.decode());
  const frame = () => page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done())));
  let r = await preview.boundingBox();
  for (let i = 0; i < 50; i++) {
    await frame();
    const now = await preview.boundingBox();
    if (['x', 'y', 'width', 'height'].every((k) => now[k] === r[k])) break;
    r = now;
  }
  x0 ??= 1 / r.width;
  y0 ??= 1 / r.height;
  const at = (fx, fy) => [r.x + r.width * fx, r.y + r.height * fy];
  await page.mouse.move(...at(x0, y0));
  await page.mouse.down();
  await page.mouse.move(...at((x0 + x1) / 2, (y0 + y1) / 2), { steps: 4 });
  await page.mouse.move(...at(x1, y1), { steps: 4 });
  await page.mouse.up();
  await preview.getByTestId('box').waitFor();
}

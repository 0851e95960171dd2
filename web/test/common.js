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

#!/usr/bin/env node
// Bursts of concurrent searches against the HTTP API (the gateway, or
// PostgREST), as a crowd would send them: issue 22's "serving a burst".
//
//   node bench/web_burst_bench.js [--api http://127.0.0.1:3000] [--images DIR]
//        [--bursts 12,50] [--rounds 3] [--k 30] [--json FILE]
//
// Per round: the --bursts[0] searches one at a time ("in a row": what the
// same extractions cost without contention), then each burst: N searches sent
// at once, each with an image of its own (the files of DIR, JPEG/PNG; where
// DIR has fewer than N, the same file with another box, which is another
// extraction of the same cost). Reported per burst size over all rounds:
// answers by HTTP status, latency p50/p95/max of the 200s, of the 503s (the
// gateway's fast refusal), and the queue wait the gateway reports
// (Server-Timing queue;dur). Needs Node 18 (fetch); nothing else.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const api = opt('api', 'http://127.0.0.1:3000').replace(/\/+$/, '');
const imagesDir = opt('images', path.join(path.dirname(new URL(import.meta.url).pathname), '..', '.demo', 'dataset', 'images'));
const bursts = opt('bursts', '12,50').split(',').map(Number);
const rounds = Number(opt('rounds', '3'));
const k = Number(opt('k', '30'));
const jsonOut = opt('json', null);

const files = fs.readdirSync(imagesDir).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
if (files.length === 0) throw new Error(`no images in ${imagesDir}`);
const images = files.map((f) => fs.readFileSync(path.join(imagesDir, f)).toString('base64'));

// Request i of a set: its own image, or its own box (variant v) on one.
function request(i, variant) {
  const body = { image: images[i % images.length], k };
  const v = variant + Math.floor(i / images.length);
  if (v > 0) body.box = [v, v, 160, 120];
  return body;
}

async function search(body) {
  const t0 = performance.now();
  try {
    const res = await fetch(`${api}/rpc/search`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    const timing = res.headers.get('Server-Timing') || '';
    const q = /queue;dur=([0-9.]+)/.exec(timing);
    return { status: res.status, ms: performance.now() - t0, queueMs: q ? Number(q[1]) : null };
  } catch (e) {
    return { status: 0, ms: performance.now() - t0, queueMs: null, error: String(e.cause || e) };
  }
}

const pct = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const summary = (xs) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95), max: pct(xs, 100) });
const sec = (ms) => (ms === null ? '-' : (ms / 1000).toFixed(2));

const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');
const result = { api, images: imagesDir, files: files.length, k, rounds, cpus: os.cpus().length, runs: [] };
console.log(`api ${api}, ${files.length} images, k = ${k}, ${rounds} rounds, load average ${load()}`);

let variant = 1;   // every set of requests new extractions: none is a repeat
for (let r = 0; r < rounds; r++) {
  const n0 = bursts[0];
  const seq = [];
  for (let i = 0; i < n0; i++) seq.push(await search(request(i, variant)));
  variant += 1 + Math.floor(n0 / images.length);
  const inRow = seq.reduce((s, a) => s + a.ms, 0);
  const run = { round: r + 1, loadBefore: load(), inRowMs: inRow, inRowStatuses: seq.map((a) => a.status), bursts: {} };
  console.log(`round ${r + 1}: ${n0} in a row ${sec(inRow)} s (statuses ${[...new Set(run.inRowStatuses)].join(',')})`);
  for (const n of bursts) {
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => search(request(i, variant))));
    variant += 1 + Math.floor(n / images.length);
    const wall = performance.now() - t0;
    run.bursts[n] = { wallMs: wall, answers };
    const by = {};
    for (const a of answers) by[a.status] = (by[a.status] || 0) + 1;
    const ok = summary(answers.filter((a) => a.status === 200).map((a) => a.ms));
    const busy = summary(answers.filter((a) => a.status === 503).map((a) => a.ms));
    console.log(`  ${n} at once: ${JSON.stringify(by)}; 200 p50 ${sec(ok.p50)} p95 ${sec(ok.p95)} max ${sec(ok.max)} s`
      + `${busy.n ? `; 503 max ${sec(busy.max)} s` : ''}; slowest / in a row ${(ok.max / inRow).toFixed(2)}`);
  }
  result.runs.push(run);
}

// Over all rounds, per burst size.
result.summary = {};
for (const n of bursts) {
  const all = result.runs.flatMap((r) => r.bursts[n].answers);
  const by = {};
  for (const a of all) by[a.status] = (by[a.status] || 0) + 1;
  const ok = all.filter((a) => a.status === 200);
  result.summary[n] = {
    statuses: by,
    ok: summary(ok.map((a) => a.ms)),
    busy: summary(all.filter((a) => a.status === 503).map((a) => a.ms)),
    queue: summary(ok.map((a) => a.queueMs).filter((x) => x !== null)),
    slowestOverInRow: result.runs.map((r) => Math.max(...r.bursts[n].answers.filter((a) => a.status === 200).map((a) => a.ms)) / r.inRowMs),
  };
}
result.loadAfter = load();
console.log('\nburst | answers | 200 p50 | 200 p95 | 200 max | 503 max | queue p50 | queue p95 | slowest / in a row (per round)');
for (const n of bursts) {
  const s = result.summary[n];
  console.log(`${n} | ${JSON.stringify(s.statuses)} | ${sec(s.ok.p50)} | ${sec(s.ok.p95)} | ${sec(s.ok.max)} | ${sec(s.busy.max)} | `
    + `${sec(s.queue.p50)} | ${sec(s.queue.p95)} | ${s.slowestOverInRow.map((x) => x.toFixed(2)).join(', ')}`);
}
console.log(`in a row (${bursts[0]}): ${result.runs.map((r) => sec(r.inRowMs)).join(', ')} s; load average after ${result.loadAfter}`);
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(result, null, 1) + '\n');

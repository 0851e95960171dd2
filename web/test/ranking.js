// Rankings compared fair to ties, for the API and page suites. A ranking
// defines no order among rows at the same distance (api.search orders them
// by id, but two rankings may see a tie differently: one computed here in
// doubles, or one whose k rows stop inside a tie), and under a LIMIT k any
// of the rows tied with the k-th may come. Two right answers agree on:
// the distances, rank by rank; the rows nearer than the k-th distance; and
// at the k-th distance as many distinct rows. Distances within eps of each
// other count as equal (0: exactly equal).
import assert from 'node:assert/strict';

// got: [{rank?, id, distance}] as answered; want: the reference's first k
// rows [{id, distance}], nearest first. whole: want is every row (no
// LIMIT), so got must be the same rows. truth: a Map id -> distance of
// every row, to check that each row returned is at its own distance.
export function assertSameRanking(got, want, { whole = false, eps = 0, truth = null, what = '' } = {}) {
  const pre = what ? `${what}: ` : '';
  const at = (i) => `${pre}rank ${i + 1}`;
  assert.equal(got.length, want.length, `${pre}${got.length} rows, the reference's ${want.length}`);
  assert.equal(new Set(got.map((r) => r.id)).size, got.length, `${pre}a row twice`);
  got.forEach((r, i) => {
    if (r.rank !== undefined) assert.equal(r.rank, i + 1, at(i));
    assert.ok(Math.abs(r.distance - want[i].distance) <= eps, `${at(i)}: at ${r.distance}, the reference's at ${want[i].distance}`);
    if (i > 0) assert.ok(r.distance >= got[i - 1].distance, `${at(i)} is nearer than the rank before`);
    if (truth) {
      assert.ok(truth.has(r.id), `${at(i)}: id ${r.id} is no row`);
      assert.ok(Math.abs(r.distance - truth.get(r.id)) <= eps, `${at(i)}: id ${r.id} at ${r.distance}, its distance is ${truth.get(r.id)}`);
    }
  });
  if (want.length === 0) return;
  const kth = want[want.length - 1].distance;
  const ids = new Set(got.map((r) => r.id));
  for (const r of want) {
    if (whole || r.distance < kth - eps) {
      assert.ok(ids.has(r.id), `${pre}row ${r.id} at ${r.distance} is missing${whole ? '' : ` (the k-th is at ${kth})`}`);
    }
  }
}

// How many of got's rows lie within the reference's k-th distance (want:
// its first k rows): recall's hits, a row tied with the k-th counting.
export function hitsWithin(got, want, eps = 0) {
  const kth = want[want.length - 1].distance;
  return Math.min(got.filter((r) => r.distance <= kth + eps).length, want.length);
}

// Whether id is among the rows tied with the first (the nearest): where it
// must come first, unless another row is at the same distance.
export function firstOrTied(rows, id, eps = 0) {
  return rows.some((r) => r.id === id && Math.abs(r.distance - rows[0].distance) <= eps);
}

// L2 distance, in doubles.
export const l2 = (a, b) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));

// Every row of feats (id -> feature) by the score of several examples
// (docs/methods.md): d+ if d+ < d-, else 2^290 / d-; then by id.
// positives, negatives: features.
export function examplesRanking(feats, positives, negatives = []) {
  const score = (f) => {
    const dp = Math.min(...positives.map((p) => l2(p, f)));
    const dn = Math.min(...negatives.map((n) => l2(n, f)));
    return negatives.length === 0 || dp < dn ? dp : 2 ** 290 / dn;
  };
  return [...feats].map(([id, f]) => ({ id, distance: score(f) })).sort((a, b) => a.distance - b.distance || a.id - b.id);
}

// got (the API's rows) against examplesRanking's want, fair to ties. Scores
// past every distance (2^290 / d-) compare by their logarithm; JSON's
// "Infinity" (a negative example itself) as the farthest.
export function assertExamplesRanking(got, want, what) {
  const t = (d) => (d === Infinity || d === 'Infinity' ? 1e9 : d > 1e30 ? 1e6 + Math.log2(d) : d);
  assertSameRanking(got.map((r) => ({ ...r, distance: t(Number(r.distance)) })),
    want.slice(0, got.length).map((r) => ({ ...r, distance: t(r.distance) })),
    { whole: got.length >= want.length, eps: 1e-4, truth: new Map(want.map((r) => [r.id, t(r.distance)])), what });
}

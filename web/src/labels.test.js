import { describe, expect, test } from 'vitest';
import { SAME, groupResults, labelFor, labelTitle, labelsFor, noCloseText } from './labels.js';
import measured from './thresholds.json';

const th = { model: { layer: 'pool', weights: 'random (seed 0)' }, same_photograph: 0.05, precision: 0.93, recall: 0.61 };

describe('labels', () => {
  test('apply only to the model they were measured with', () => {
    expect(labelsFor({ layer: 'pool', weights: 'random (seed 0)', sha256: 'x' }, th)).toBe(th);
    expect(labelsFor({ layer: 'pool', weights: 'random (seed 1)' }, th)).toBeNull();
    expect(labelsFor({ layer: 'fc7', weights: 'random (seed 0)' }, th)).toBeNull();
    expect(labelsFor(null, th)).toBeNull();
    expect(labelsFor({ ...measured.model })).toBe(measured);
  });
  test('by distance: same photograph up to the measured distance, then none', () => {
    expect(labelFor(0, th)).toBe(SAME);
    expect(labelFor(0.05, th)).toBe(SAME);
    expect(labelFor(0.0501, th)).toBeNull();
    expect(labelFor(0, null)).toBeNull();
    expect(labelFor(0, { ...th, same_photograph: null })).toBeNull();   // the data could not separate
  });
  test('the texts give the measured figures', () => {
    expect(labelTitle(th)).toMatch(/up to 0\.05: .* 93% of the pairs .* 61% of the pairs of views/);
    expect(noCloseText(0.0712, th)).toMatch(/^No image within 0\.05, .* distance 0\.071\. .* 61% .* may still be/);
  });
  test('the measured label is a range with its precision and recall, or none', () => {
    if (measured.same_photograph === null) {
      expect(measured.precision).toBeNull();
    } else {
      expect(measured.same_photograph).toBeGreaterThan(0);
      expect(measured.precision).toBeGreaterThan(0.5);
      expect(measured.recall).toBeGreaterThanOrEqual(0.5);   // it holds most views of one photograph
    }
  });
});

describe('groupResults', () => {
  test('keeps rank order within a group, groups by best rank', () => {
    const rows = [{ rank: 1, grp: 'a' }, { rank: 2, grp: 'b' }, { rank: 3, grp: 'a' }, { rank: 4, grp: 'c' }, { rank: 5, grp: 'b' }];
    expect(groupResults(rows)).toEqual([
      { grp: 'a', rows: [rows[0], rows[2]] },
      { grp: 'b', rows: [rows[1], rows[4]] },
      { grp: 'c', rows: [rows[3]] },
    ]);
  });
});

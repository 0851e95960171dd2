import { describe, expect, test } from 'vitest';
import { groupResults, labelFor, labelsFor } from './labels.js';
import measured from './thresholds.json';

const th = { model: { layer: 'pool', weights: 'random (seed 0)' }, identical: 0.001, near_duplicate: 0.3 };

describe('labels', () => {
  test('apply only to the model they were measured with', () => {
    expect(labelsFor({ layer: 'pool', weights: 'random (seed 0)', sha256: 'x' }, th)).toBe(th);
    expect(labelsFor({ layer: 'pool', weights: 'random (seed 1)' }, th)).toBeNull();
    expect(labelsFor({ layer: 'fc7', weights: 'random (seed 0)' }, th)).toBeNull();
    expect(labelsFor(null, th)).toBeNull();
    expect(labelsFor({ ...measured.model })).toBe(measured);
  });
  test('by distance: identical, near-duplicate, none', () => {
    expect(labelFor(0, th)).toBe('identical');
    expect(labelFor(0.001, th)).toBe('identical');
    expect(labelFor(0.2, th)).toBe('near-duplicate');
    expect(labelFor(0.31, th)).toBeNull();
    expect(labelFor(0, null)).toBeNull();
  });
  test('the measured thresholds are ordered', () => {
    expect(measured.identical).toBeGreaterThanOrEqual(0);
    expect(measured.near_duplicate).toBeGreaterThan(measured.identical);
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

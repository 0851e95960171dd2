import { describe, expect, test } from 'vitest';
import { groupRows, parseDistance } from './Duplicates.jsx';

describe('duplicates', () => {
  test('rows of api.duplicates become groups, in order', () => {
    const rows = [{ group_no: 1, group_size: 2, id: 4 }, { group_no: 1, group_size: 2, id: 9 }, { group_no: 2, group_size: 1, id: 3 }];
    expect(groupRows(rows)).toEqual([
      { no: 1, size: 2, members: [rows[0], rows[1]] },
      { no: 2, size: 1, members: [rows[2]] },
    ]);
    expect(groupRows([])).toEqual([]);
  });
  test('a distance is a number from 0 to 0.2', () => {
    expect(parseDistance('0.03')).toBe(0.03);
    expect(parseDistance('.5')).toBeNull();
    expect(parseDistance('0')).toBe(0);
    expect(parseDistance('0.2')).toBe(0.2);
    expect(parseDistance('0.21')).toBeNull();
    expect(parseDistance('-0.1')).toBeNull();
    expect(parseDistance('')).toBeNull();
    expect(parseDistance('abc')).toBeNull();
    expect(parseDistance('1e-2')).toBeNull();
  });
});

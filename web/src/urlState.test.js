import { describe, expect, test } from 'vitest';
import { parseRef, readUrlState, refToken, searchCall, writeUrlState } from './urlState.js';

const H = 'ab'.repeat(32);
const H2 = '0f'.repeat(32);

describe('readUrlState', () => {
  test('an empty query string: nothing to search, the defaults', () => {
    expect(readUrlState('')).toEqual({ query: null, box: null, method: 'auto', k: 30, more: [], less: [], ignored: [] });
  });
  test('a collection id, method and k', () => {
    const s = readUrlState('?api=http://x:3000&id=12&method=faissflat&k=50');
    expect(s.query).toEqual({ id: 12 });
    expect([s.method, s.k]).toEqual(['faissflat', 50]);
  });
  test('an upload with a box (upper-case hex is the same hash)', () => {
    const s = readUrlState(`?upload=${H.toUpperCase()}&box=1,2,30,40`);
    expect(s.query).toEqual({ upload: H });
    expect(s.box).toEqual([1, 2, 30, 40]);
  });
  test('examples, repeated, in order, each once', () => {
    const s = readUrlState(`?id=1&more=40&more=${H}:0,0,5,5&less=7&more=40&less=${H2}`);
    expect(s.more).toEqual([{ id: 40 }, { upload: H, box: [0, 0, 5, 5] }]);
    expect(s.less).toEqual([{ id: 7 }, { upload: H2, box: null }]);
  });
  test('what does not parse is ignored, named, and the defaults stay', () => {
    const s = readUrlState('?id=-3&k=0&method=a;b&more=xyz&less=12:1,2,3,4&box=1,2,3,4');
    expect(s.query).toBe(null);
    expect([s.method, s.k, s.more, s.less]).toEqual(['auto', 30, [], []]);
    expect(s.ignored.sort()).toEqual(['box', 'id', 'k', 'less', 'method', 'more']);
    expect(readUrlState('?k=1001').k).toBe(30);
    expect(readUrlState('?k=1000').k).toBe(1000);
    expect(readUrlState(`?upload=${H}1`).query).toBe(null);
    expect(readUrlState(`?upload=${H}&box=1,2,0,4`).box).toBe(null);       // an empty area
    expect(readUrlState('?id=99999999999999999999').query).toBe(null);      // past bigint
  });
  test('a box without an upload is ignored (a collection image has its stored feature)', () => {
    expect(readUrlState('?id=3&box=1,2,3,4').box).toBe(null);
  });
});

describe('writeUrlState', () => {
  test('round trip, keeping ?api= first and leaving defaults out', () => {
    const state = { query: { upload: H }, box: [1, 2, 3, 4], method: 'lsh', k: 30, more: [{ id: 4 }, { upload: H2, box: [0, 0, 9, 9] }], less: [{ id: 7 }] };
    const search = writeUrlState(state, '?api=http%3A%2F%2F127.0.0.1%3A3000&id=99');
    expect(search.startsWith('?api=http%3A%2F%2F127.0.0.1%3A3000&upload=')).toBe(true);
    expect(search).not.toContain('k=');
    const back = readUrlState(search);
    expect({ ...back, ignored: undefined }).toEqual({ ...state, ignored: undefined });
  });
  test('an id query has no box; nothing at all is the empty string', () => {
    expect(writeUrlState({ query: { id: 5 }, box: [1, 1, 1, 1], method: 'auto', k: 7, more: [], less: [] })).toBe('?id=5&k=7');
    expect(writeUrlState({ query: null, box: null, method: 'auto', k: 30, more: [], less: [] })).toBe('');
  });
});

describe('refs', () => {
  test('tokens', () => {
    expect(parseRef('12')).toEqual({ id: 12 });
    expect(refToken({ upload: H, box: [1, 2, 3, 4] })).toBe(`${H}:1,2,3,4`);
    expect(parseRef(`${H}:1,2,3`)).toBe(null);
    expect(parseRef(`${H}:1,2,3,4:5`)).toBe(null);
    expect(parseRef('')).toBe(null);
  });
});

describe('searchCall', () => {
  const base = { method: 'auto', k: 10, box: null, more: [], less: [] };
  test('one query: search, search_upload or similar by id', () => {
    expect(searchCall({ ...base, query: { image: 'AAAA' }, box: [1, 2, 3, 4] })).toEqual({ fn: 'search', args: { image: 'AAAA', k: 10, method: 'auto', box: [1, 2, 3, 4] } });
    expect(searchCall({ ...base, query: { upload: H } })).toEqual({ fn: 'search_upload', args: { sha256: H, k: 10, method: 'auto' } });
    expect(searchCall({ ...base, query: { id: 3 } })).toEqual({ fn: 'similar', args: { positives: [3], k: 10, method: 'auto' } });
    expect(searchCall({ ...base, query: null })).toBe(null);
  });
  test('examples: similar with the query among the positives', () => {
    expect(searchCall({ ...base, query: { upload: H }, box: [0, 0, 4, 4], more: [{ id: 2 }], less: [{ id: 9 }, { upload: H2, box: null }] }))
      .toEqual({ fn: 'similar', args: { positives: [2], negatives: [9], k: 10, method: 'auto', positive_uploads: [`${H}:0,0,4,4`], negative_uploads: [H2] } });
    expect(searchCall({ ...base, query: null, more: [{ id: 2 }], less: [{ id: 3 }] }))
      .toEqual({ fn: 'similar', args: { positives: [2], negatives: [3], k: 10, method: 'auto' } });
    expect(searchCall({ ...base, query: { image: 'AAAA' }, less: [{ id: 3 }] })).toBe(null);   // keep it first
  });
});

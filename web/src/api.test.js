import { describe, expect, test } from 'vitest';
import { ApiError, apiBase, bytesToBase64, errorFromResponse, rpc } from './api.js';

describe('apiBase', () => {
  const loc = (search = '') => ({ search, protocol: 'http:', hostname: 'example.org' });
  test('defaults to port 3000 of the page host', () => {
    expect(apiBase(loc(), undefined)).toBe('http://example.org:3000');
  });
  test('build-time URL, then ?api= override; trailing slashes dropped', () => {
    expect(apiBase(loc(), 'http://db:3001/')).toBe('http://db:3001');
    expect(apiBase(loc('?api=http%3A%2F%2F127.0.0.1%3A4000'), 'http://db:3001')).toBe('http://127.0.0.1:4000');
  });
});

describe('errorFromResponse', () => {
  test('carries PostgREST error bodies', () => {
    const e = errorFromResponse(400, 'Bad Request',
      JSON.stringify({ code: '22023', message: 'k must be between 1 and 1000, not 0', details: null, hint: 'h' }));
    expect(e).toBeInstanceOf(ApiError);
    expect(e.message).toBe('k must be between 1 and 1000, not 0');
    expect([e.status, e.code, e.details, e.hint]).toEqual([400, '22023', null, 'h']);
  });
  test('falls back to the HTTP status for other bodies', () => {
    const e = errorFromResponse(502, 'Bad Gateway', '<html>oops</html>');
    expect(e.message).toBe('The API answered 502 Bad Gateway');
    expect(e.code).toBeNull();
  });
});

describe('rpc', () => {
  test('POSTs JSON named arguments to /rpc/fn', async () => {
    let seen;
    const fake = async (url, init) => {
      seen = { url, init };
      return { ok: true, status: 200, text: async () => '[{"id":1}]' };
    };
    expect(await rpc('http://h:3000', 'search', { k: 5 }, fake)).toEqual([{ id: 1 }]);
    expect(seen.url).toBe('http://h:3000/rpc/search');
    expect(seen.init.method).toBe('POST');
    expect(seen.init.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(seen.init.body)).toEqual({ k: 5 });
  });
  test('turns error responses and network failures into ApiError', async () => {
    const bad = async () => ({ ok: false, status: 404, statusText: 'Not Found', text: async () => '{"code":"PGRST202","message":"no such function"}' });
    await expect(rpc('http://h', 'x', {}, bad)).rejects.toMatchObject({ message: 'no such function', code: 'PGRST202', status: 404 });
    const down = async () => { throw new TypeError('fetch failed'); };
    await expect(rpc('http://h', 'x', {}, down)).rejects.toMatchObject({ message: 'Cannot reach the API at http://h' });
  });
});

test('bytesToBase64 matches Node for all byte values and large inputs', () => {
  const all = new Uint8Array(256).map((_, i) => i);
  expect(bytesToBase64(all)).toBe(Buffer.from(all).toString('base64'));
  const big = new Uint8Array(100003).map((_, i) => (i * 7919) & 255);
  expect(bytesToBase64(big)).toBe(Buffer.from(big).toString('base64'));
  expect(bytesToBase64(new Uint8Array(0))).toBe('');
});

describe('timingSplit', () => {
  test('splits a search\'s time; the gateway\'s queue wait is its own, not transfer', async () => {
    const { timingSplit } = await import('./api.js');
    expect(timingSplit({ ms: 1000, model: 300, db: 20 }))
      .toBe(' (model 300 ms, database 20 ms, transfer and page 680 ms)');
    expect(timingSplit({ ms: 1000, model: 300, db: 20, queue: 600.4 }))
      .toBe(' (queued 600 ms, model 300 ms, database 20 ms, transfer and page 80 ms)');
    expect(timingSplit({ ms: 100, model: 300, db: 20, queue: 0 }))
      .toBe(' (queued 0 ms, model 300 ms, database 20 ms, transfer and page 0 ms)');
    expect(timingSplit({ ms: 100 })).toBe('');
  });
});

describe('parseServerTiming', () => {
  test('reads each duration by name', async () => {
    const { parseServerTiming } = await import('./api.js');
    expect(parseServerTiming('model;dur=12.5, db;dur=3')).toEqual({ model: 12.5, db: 3 });
    expect(parseServerTiming('db;desc="x";dur=0.4')).toEqual({ db: 0.4 });
    expect(parseServerTiming(null)).toEqual({});
    expect(parseServerTiming('junk, x;dur=abc')).toEqual({});
  });
});

import { expect, test } from 'vitest';
import { base64ToBytes, boxFromArray, hashOf, serverBox } from './nav.js';

test('serverBox: in the pixels of the image sent (scaled down), else as drawn', () => {
  const area = { x: 10, y: 20, w: 100, h: 50 };
  expect(serverBox({ sent: null }, area)).toEqual([10, 20, 100, 50]);
  expect(serverBox({ sent: { width: 1000, height: 500 }, natural: { width: 2000, height: 2000 } }, area)).toEqual([5, 5, 50, 13]);
  expect(serverBox({ sent: null }, null)).toBe(null);
  expect(boxFromArray([1, 2, 3, 4])).toEqual({ x: 1, y: 2, w: 3, h: 4 });
});

test('hashOf: the server\'s X-Upload-Sha256, else the sha256 of the bytes sent', async () => {
  const h = 'c'.repeat(64);
  expect(await hashOf(new Headers({ 'X-Upload-Sha256': h }), 'AAAA')).toBe(h);
  // sha256("abc"), the FIPS 180-2 example; where there is no WebCrypto (Node 18
  // has no global crypto, a page on plain http elsewhere than localhost) none
  expect(await hashOf(new Headers(), btoa('abc'))).toBe(globalThis.crypto?.subtle
    ? 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' : null);
  expect(await hashOf(new Headers({ 'X-Upload-Sha256': 'not a hash' }), btoa('abc'))).not.toBe('not a hash');
  expect([...base64ToBytes(btoa('abc'))]).toEqual([97, 98, 99]);
});

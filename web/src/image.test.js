import { describe, expect, test } from 'vitest';
import { MAX_SIDE, looksComplete, sendPlan } from './image.js';

describe('sendPlan', () => {
  test('a small JPEG or PNG goes as it is', () => {
    expect(sendPlan('image/jpeg', 200000, 640, 480)).toEqual({ reencode: false });
    expect(sendPlan('image/png', 10, 1, 1)).toEqual({ reencode: false });
  });
  test('types the server cannot decode are re-encoded at their size', () => {
    expect(sendPlan('image/gif', 5000, 300, 200)).toEqual({ reencode: true, width: 300, height: 200 });
    expect(sendPlan('image/svg+xml', 900, 512, 512)).toEqual({ reencode: true, width: 512, height: 512 });
    expect(sendPlan('', 900, 64, 32)).toEqual({ reencode: true, width: 64, height: 32 });
  });
  test('large images are scaled so that the longer side is MAX_SIDE, keeping the aspect', () => {
    expect(sendPlan('image/jpeg', 3e6, 6000, 4000)).toEqual({ reencode: true, width: MAX_SIDE, height: Math.round(4000 * MAX_SIDE / 6000) });
    expect(sendPlan('image/png', 1e5, 1000, 9000)).toEqual({ reencode: true, width: Math.round(1000 * MAX_SIDE / 9000), height: MAX_SIDE });
  });
  test('a heavy file within the pixel limit is re-encoded at its size', () => {
    expect(sendPlan('image/png', 6e6, 2000, 1500)).toEqual({ reencode: true, width: 2000, height: 1500 });
  });
});

describe('looksComplete', () => {
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
  const pngEnd = [0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];
  const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, ...pngEnd]);
  test('a JPEG ends with EOI (padding after it allowed); a truncated one does not', () => {
    expect(looksComplete('image/jpeg', jpeg)).toBe(true);
    expect(looksComplete('image/jpeg', Uint8Array.from([...jpeg, 0, 0, 0x0a]))).toBe(true);
    expect(looksComplete('image/jpeg', jpeg.subarray(0, 7))).toBe(false);
    expect(looksComplete('image/jpeg', new Uint8Array(0))).toBe(false);
  });
  test('a PNG ends with IEND; a truncated one does not', () => {
    expect(looksComplete('image/png', png)).toBe(true);
    expect(looksComplete('image/png', png.subarray(0, png.length - 1))).toBe(false);
    expect(looksComplete('image/png', png.subarray(0, 12))).toBe(false);
  });
  test('other types are left to the server', () => {
    expect(looksComplete('image/webp', new Uint8Array(3))).toBe(true);
  });
  test('an incomplete file is re-encoded at its size', () => {
    expect(sendPlan('image/jpeg', 200000, 640, 480, false)).toEqual({ reencode: true, width: 640, height: 480 });
  });
});

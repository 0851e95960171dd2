import { describe, expect, test } from 'vitest';
import { MAX_SIDE, sendPlan } from './image.js';

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

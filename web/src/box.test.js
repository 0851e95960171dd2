import { describe, expect, test } from 'vitest';
import { boxFromDrag, boxFromKey, boxToArray, boxToView } from './box.js';

const view = { width: 300, height: 200 };     // preview at half size
const image = { width: 600, height: 400 };

describe('boxFromDrag', () => {
  test('maps preview pixels to image pixels', () => {
    expect(boxFromDrag({ x: 30, y: 20 }, { x: 130, y: 70 }, view, image)).toEqual({ x: 60, y: 40, w: 200, h: 100 });
  });
  test('any drag direction gives the same box', () => {
    const a = boxFromDrag({ x: 130, y: 70 }, { x: 30, y: 20 }, view, image);
    const b = boxFromDrag({ x: 30, y: 70 }, { x: 130, y: 20 }, view, image);
    expect(a).toEqual({ x: 60, y: 40, w: 200, h: 100 });
    expect(b).toEqual(a);
  });
  test('clamps to the image', () => {
    expect(boxFromDrag({ x: -50, y: -10 }, { x: 400, y: 500 }, view, image)).toEqual({ x: 0, y: 0, w: 600, h: 400 });
  });
  test('a click is no selection', () => {
    expect(boxFromDrag({ x: 10, y: 10 }, { x: 11, y: 11 }, view, image)).toBeNull();
  });
  test('non-uniform scales round per axis', () => {
    const b = boxFromDrag({ x: 3, y: 3 }, { x: 4.5, y: 5 }, { width: 10, height: 10 }, { width: 33, height: 71 }, 1);
    expect(b).toEqual({ x: 10, y: 21, w: 5, h: 15 });
  });
  test('edges within 2 preview pixels snap to the border', () => {
    expect(boxFromDrag({ x: 1.5, y: 0.5 }, { x: 298.2, y: 199 }, view, image)).toEqual({ x: 0, y: 0, w: 600, h: 400 });
    expect(boxFromDrag({ x: 2.5, y: 3 }, { x: 297, y: 197 }, view, image)).toEqual({ x: 5, y: 6, w: 589, h: 388 });
  });
});

test('boxToView is the inverse scale', () => {
  expect(boxToView({ x: 60, y: 40, w: 200, h: 100 }, view, image)).toEqual({ left: 30, top: 20, width: 100, height: 50 });
});

describe('boxFromKey', () => {
  test('starts with the central half', () => {
    expect(boxFromKey(null, 'ArrowRight', false, image)).toEqual({ x: 150, y: 100, w: 300, h: 200 });
  });
  test('arrows move by 2% and stay inside', () => {
    const b = { x: 0, y: 0, w: 100, h: 100 };
    expect(boxFromKey(b, 'ArrowRight', false, image)).toEqual({ x: 12, y: 0, w: 100, h: 100 });
    expect(boxFromKey(b, 'ArrowLeft', false, image)).toEqual(b);
    expect(boxFromKey({ x: 500, y: 300, w: 100, h: 100 }, 'ArrowDown', false, image)).toEqual({ x: 500, y: 300, w: 100, h: 100 });
  });
  test('shift+arrows resize, never past the image or below 4 px', () => {
    const b = { x: 10, y: 10, w: 100, h: 6 };
    expect(boxFromKey(b, 'ArrowRight', true, image)).toEqual({ x: 10, y: 10, w: 112, h: 6 });
    expect(boxFromKey(b, 'ArrowUp', true, image)).toEqual({ x: 10, y: 10, w: 100, h: 4 });
    expect(boxFromKey({ x: 550, y: 0, w: 50, h: 50 }, 'ArrowRight', true, image).w).toBe(50);
  });
  test('other keys leave the box alone', () => {
    const b = { x: 1, y: 2, w: 3, h: 4 };
    expect(boxFromKey(b, 'a', false, image)).toBe(b);
  });
});

test('boxToArray gives the API order x, y, width, height', () => {
  expect(boxToArray({ x: 1, y: 2, w: 3, h: 4 })).toEqual([1, 2, 3, 4]);
  expect(boxToArray(null)).toBeNull();
});

import { describe, expect, test } from 'vitest';
import { nextFocus } from './focus.js';

describe('nextFocus', () => {
  const [a, b, c] = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
  test('Tab moves forward and wraps from the last to the first', () => {
    expect(nextFocus([a, b, c], a, false)).toBe(b);
    expect(nextFocus([a, b, c], c, false)).toBe(a);
  });
  test('Shift+Tab moves backward and wraps from the first to the last', () => {
    expect(nextFocus([a, b, c], b, true)).toBe(a);
    expect(nextFocus([a, b, c], a, true)).toBe(c);
  });
  test('from outside the dialog: its first (or, backward, its last) element', () => {
    expect(nextFocus([a, b, c], { id: 'x' }, false)).toBe(a);
    expect(nextFocus([a, b, c], null, true)).toBe(c);
  });
  test('nothing focusable: null; one element: itself', () => {
    expect(nextFocus([], a, false)).toBeNull();
    expect(nextFocus([a], a, false)).toBe(a);
    expect(nextFocus([a], a, true)).toBe(a);
  });
});

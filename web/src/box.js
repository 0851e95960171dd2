// Selection boxes: {x, y, w, h} in the decoded image's pixels (what the API's
// box = {x, y, width, height} means), made from drags on the scaled preview.

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

// A drag from point a to point b, both in preview pixels, on a preview of
// size view showing an image of size image. Edges within 2 preview pixels of
// the image's border snap to it (so the whole image is easy to select). Null
// when the drag is too small to be a selection (a click).
export function boxFromDrag(a, b, view, image, minSide = 4) {
  const sx = image.width / view.width;
  const sy = image.height / view.height;
  const edge = (v, s, size) => {
    const p = clamp(v * s, 0, size);
    return p < 2 * s ? 0 : p > size - 2 * s ? size : p;
  };
  const x0 = edge(Math.min(a.x, b.x), sx, image.width);
  const x1 = edge(Math.max(a.x, b.x), sx, image.width);
  const y0 = edge(Math.min(a.y, b.y), sy, image.height);
  const y1 = edge(Math.max(a.y, b.y), sy, image.height);
  const x = Math.round(x0);
  const y = Math.round(y0);
  const w = Math.round(x1) - x;
  const h = Math.round(y1) - y;
  if (w < minSide || h < minSide) return null;
  return { x, y, w, h };
}

// The box drawn on a preview of size view (CSS pixels).
export function boxToView(box, view, image) {
  const sx = view.width / image.width;
  const sy = view.height / image.height;
  return { left: box.x * sx, top: box.y * sy, width: box.w * sx, height: box.h * sy };
}

// Keyboard editing: arrows move the box, with Shift they resize it; a step is
// 2% of the image side. Without a box, any arrow starts with the central half.
export function boxFromKey(box, key, shift, image) {
  const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (!dirs[key]) return box;
  if (!box) {
    const w = Math.round(image.width / 2);
    const h = Math.round(image.height / 2);
    return { x: Math.round((image.width - w) / 2), y: Math.round((image.height - h) / 2), w, h };
  }
  const [dx, dy] = dirs[key];
  const stepX = Math.max(1, Math.round(image.width * 0.02));
  const stepY = Math.max(1, Math.round(image.height * 0.02));
  if (shift) {
    const w = clamp(box.w + dx * stepX, 4, image.width - box.x);
    const h = clamp(box.h + dy * stepY, 4, image.height - box.y);
    return { ...box, w, h };
  }
  return {
    ...box,
    x: clamp(box.x + dx * stepX, 0, image.width - box.w),
    y: clamp(box.y + dy * stepY, 0, image.height - box.h),
  };
}

export const boxToArray = (box) => (box ? [box.x, box.y, box.w, box.h] : null);

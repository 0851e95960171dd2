// What the page sends for a chosen image. The server decodes JPEG, PNG,
// WebP, BMP and TIFF; anything else the browser can show (GIF, SVG, AVIF...)
// is re-encoded here, and large images are scaled down first (the model
// sees 224 x 224 pixels; a selected area keeps enough of them).

export const SERVER_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/tiff'];
export const MAX_SIDE = 2048;              // px, longer side of what is sent
export const MAX_SEND_BYTES = 4 << 20;     // files larger than this are re-encoded

// How to send an image of this type, byte size and pixel size:
// {reencode: false} (the file as it is) or {reencode: true, width, height}.
export function sendPlan(type, bytes, width, height) {
  const scale = Math.min(1, MAX_SIDE / Math.max(width, height, 1));
  const small = scale === 1 && bytes <= MAX_SEND_BYTES;
  if (SERVER_TYPES.includes(type) && small) return { reencode: false };
  return {
    reencode: true,
    width: Math.max(1, Math.round(width * scale)),
    height: Math.max(1, Math.round(height * scale)),
  };
}

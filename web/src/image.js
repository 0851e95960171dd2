// What the page sends for a chosen image. The server decodes JPEG, PNG,
// WebP, BMP and TIFF; anything else the browser can show (GIF, SVG, AVIF...)
// is re-encoded here, and large images are scaled down first (the model
// sees 224 x 224 pixels; a selected area keeps enough of them).

export const SERVER_TYPES = ['image/jpeg', 'image/png', 'image/webp', 'image/bmp', 'image/tiff'];
export const MAX_SIDE = 2048;              // px, longer side of what is sent
export const MAX_SEND_BYTES = 4 << 20;     // files larger than this are re-encoded

// Whether a JPEG or PNG file has its end: a JPEG's last marker, EOI (FF D9,
// perhaps followed by padding), a PNG's IEND chunk. A browser shows a
// truncated file (the part it has, grey below), where the server's decoder
// refuses it (22P03); the page re-encodes such a file instead. Other types:
// true (the server's decoder judges them).
export function looksComplete(type, bytes) {
  if (type === 'image/jpeg') {
    let end = bytes.length;
    while (end > 0 && (bytes[end - 1] === 0x00 || bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
    return end >= 4 && bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9;
  }
  if (type === 'image/png') {
    // IEND: length 0, type "IEND", its CRC: the file's last 12 bytes.
    const n = bytes.length;
    return n >= 20 && bytes[n - 8] === 0x49 && bytes[n - 7] === 0x45 && bytes[n - 6] === 0x4e && bytes[n - 5] === 0x44;
  }
  return true;
}

// How to send an image of this type, byte size and pixel size:
// {reencode: false} (the file as it is) or {reencode: true, width, height}.
// complete = false (looksComplete): re-encoded too.
export function sendPlan(type, bytes, width, height, complete = true) {
  const scale = Math.min(1, MAX_SIDE / Math.max(width, height, 1));
  const small = scale === 1 && bytes <= MAX_SEND_BYTES;
  if (SERVER_TYPES.includes(type) && small && complete) return { reencode: false };
  return {
    reencode: true,
    width: Math.max(1, Math.round(width * scale)),
    height: Math.max(1, Math.round(height * scale)),
  };
}

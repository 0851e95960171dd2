// Small helpers of the page's navigation (links, examples).
import { boxToArray } from './box.js';

// The area box {x, y, w, h} of query q (in the pixels shown) as the server
// takes it, [x, y, width, height] in the pixels of the image it got (the
// page may have sent a scaled-down copy: q.sent).
export function serverBox(q, area) {
  const a = boxToArray(area);
  if (!a || !q.sent) return a;
  return a.map((v, i) => Math.round(v * (i % 2 === 0 ? q.sent.width / q.natural.width : q.sent.height / q.natural.height)));
}

// boxToArray's inverse: the URL's box as the page holds it.
export const boxFromArray = (b) => (b ? { x: b[0], y: b[1], w: b[2], h: b[3] } : null);

export function base64ToBytes(b64) {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');

// The hash under which the server kept an uploaded image: its
// X-Upload-Sha256, else (an API whose CORS does not expose the header, as
// real PostgREST's) the image's sha256 computed here, where the browser can
// (a secure context: https, localhost); else null (no link).
export async function hashOf(headers, base64) {
  const h = headers && headers.get('X-Upload-Sha256');
  if (h && /^[0-9a-f]{64}$/.test(h)) return h;
  if (!globalThis.crypto || !globalThis.crypto.subtle) return null;
  return hex(await globalThis.crypto.subtle.digest('SHA-256', base64ToBytes(base64)));
}

// An identity's slice is a cgroup directory named after it (<base>/jobs/<slice>/<job>). Identities are
// certificate names: any text, up to 256 bytes, chosen by whoever runs the CA. The name must never
// leave the jobs directory (no "/", no "..", no NUL), never collide with a control file or a job id
// (those have no "."), and two identities must never share a slice. So: "identity." and the name with
// every byte but letters, digits, "." and "-" escaped as "_" and two hex digits (injective: "_" is
// always an escape); a name that would be long gets the start of that and a SHA-256 of the whole
// identity ("_h…", which no escape produces) instead.
import { createHash } from 'node:crypto';

const PREFIX = 'identity.';
/** Longer escaped names are hashed: a cgroup name is one path component (255 bytes at most). */
const MAX_ESCAPED = 128;
const HASHED_PREFIX_CHARS = 64;
const KEPT = /[A-Za-z0-9.-]/;

function escapeIdentity(identity: string): string {
  let out = '';
  for (const byte of Buffer.from(identity, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && KEPT.test(char) ? char : `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The slice directory of an identity ("" — jobs started without an owner — included). Pure. */
export function sliceNameOf(identity: string): string {
  const escaped = escapeIdentity(identity);
  if (escaped.length <= MAX_ESCAPED) return PREFIX + escaped;
  // Cut before an escape, never inside one, so the readable part stays decodable.
  let start = escaped.slice(0, HASHED_PREFIX_CHARS);
  const cut = start.lastIndexOf('_');
  if (cut !== -1 && cut > start.length - 3) start = start.slice(0, cut);
  return `${PREFIX}${start}_h${createHash('sha256').update(identity, 'utf8').digest('hex')}`;
}

/** Whether a child of the jobs directory is a slice (as opposed to a job of the layout before slices). */
export function isSliceName(name: string): boolean {
  return name.startsWith(PREFIX) && !name.includes('/') && name.length <= 255;
}

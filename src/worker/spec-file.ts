// A big job spec's own file, `logs/<id>.spec`: written once, before the job's first journal entry,
// with the journal's framing (a CRC-32 over its JSON), fdatasync'd; read only on demand (GetJob of
// that job) and by recovery, to rebuild a job whose record was damaged. Only specs over
// INLINE_SPEC_BYTES get one, so the usual job still creates a single file, its log.
import { isJobId } from '../job-id';
import { decodeChecked, encodeChecked } from './journal-codec';
import type { ResolvedJobSpec } from './job-spec';
import { openForReading, writeNewFile } from './state-files';

interface SpecFileContent {
  version: 1;
  id: string;
  spec: ResolvedJobSpec;
}

/** The largest spec file read back: argv + env are at most 1 MiB, up to 6 bytes each as JSON. */
const MAX_SPEC_FILE_BYTES = 8 << 20;

/**
 * Writes the spec file (a new file: never an existing one or through a link), fdatasync'd unless
 * `sync` is false (then the caller syncs it).
 */
export async function writeSpecFile(path: string, id: string, spec: ResolvedJobSpec, options: { replace?: boolean; sync?: boolean } = {}): Promise<void> {
  const content: SpecFileContent = { version: 1, id, spec };
  await writeNewFile(path, encodeChecked(content), 'write job spec file', { replace: options.replace ?? false, sync: options.sync ?? true });
}

/** The spec in the file, or undefined if it is missing, damaged or another job's. */
export async function readSpecFile(path: string, id: string): Promise<ResolvedJobSpec | undefined> {
  let file;
  try {
    file = await openForReading(path, 'read job spec file');
  } catch {
    return undefined;
  }
  try {
    const { size } = await file.stat();
    if (size > MAX_SPEC_FILE_BYTES || size < 10) return undefined;
    const bytes = Buffer.alloc(size);
    const { bytesRead } = await file.read(bytes, 0, size, 0);
    const end = bytesRead > 0 && bytes[bytesRead - 1] === 0x0a ? bytesRead - 1 : bytesRead;
    const content = decodeChecked(bytes.subarray(0, end));
    if (typeof content !== 'object' || content === null) return undefined;
    const { version, id: owner, spec } = content as Partial<SpecFileContent>;
    if (version !== 1 || owner !== id || !isJobId(owner) || typeof spec !== 'object' || spec === null || !Array.isArray(spec.args)) return undefined;
    // Files written before jobs had names and labels have neither.
    return { ...spec, name: spec.name ?? null, labels: spec.labels ?? {} };
  } finally {
    await file.close();
  }
}

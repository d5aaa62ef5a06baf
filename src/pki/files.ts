// Writing certificates and private keys to disk.
//
// A private key file is CREATED with mode 0600 (open(2) with O_CREAT|O_EXCL and that mode), never
// written first and chmod'ed after, so there is no moment at which it is readable by others.
// Existing files are never replaced unless `overwrite` is set; a replacement is written to a new
// temporary file (again created 0600) and renamed over the old one, so the old file is never half
// overwritten and does not keep its old (possibly wider) mode. Directories that have to be created
// are created 0700.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';

import { errorCode, JobworkerError, systemError } from '../errors';
import type { IssuedCertificate } from './issue';

export const PRIVATE_KEY_MODE = 0o600;
export const CERTIFICATE_MODE = 0o644;
const DIRECTORY_MODE = 0o700;

export interface WriteOptions {
  /** Replace existing files (atomically). Default false: refuse. */
  overwrite?: boolean;
}

export interface PemFilePaths {
  certificatePath: string;
  privateKeyPath: string;
}

/** Refusal to replace an existing file. */
export class FileExistsError extends JobworkerError {
  constructor(readonly path: string) {
    super('already-exists', `${path} already exists; refusing to overwrite it`);
  }
}

/**
 * Writes a certificate (0644) and its private key (0600). Without `overwrite`, checks first that
 * neither file exists, so it never leaves a new key beside an old certificate.
 */
export async function writePemFiles(issued: IssuedCertificate, paths: PemFilePaths, options: WriteOptions = {}): Promise<void> {
  if (path.resolve(paths.certificatePath) === path.resolve(paths.privateKeyPath)) {
    throw new JobworkerError('invalid-argument', 'the certificate and the private key need two different files');
  }
  if (options.overwrite !== true) {
    for (const file of [paths.privateKeyPath, paths.certificatePath]) {
      if (await exists(file)) throw new FileExistsError(file);
    }
  }
  await writePemFile(paths.privateKeyPath, issued.privateKeyPem, { ...options, mode: PRIVATE_KEY_MODE });
  try {
    await writePemFile(paths.certificatePath, issued.certificatePem, { ...options, mode: CERTIFICATE_MODE });
  } catch (error) {
    // Do not leave a key without its certificate (only possible if the file appeared meanwhile).
    if (options.overwrite !== true) await unlink(paths.privateKeyPath).catch(() => undefined);
    throw error;
  }
}

/** Writes one PEM file, created with `mode` (default 0600). */
export async function writePemFile(
  file: string,
  pem: string,
  options: WriteOptions & { mode?: number } = {},
): Promise<void> {
  const mode = options.mode ?? PRIVATE_KEY_MODE;
  const dir = path.dirname(path.resolve(file));
  try {
    await mkdir(dir, { recursive: true, mode: DIRECTORY_MODE });
  } catch (error) {
    throw systemError('create directory', dir, error);
  }
  if (options.overwrite !== true) {
    await writeNew(file, pem, mode);
    return;
  }
  const temporary = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  await writeNew(temporary, pem, mode);
  try {
    await rename(temporary, file);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw systemError('rename over', file, error);
  }
  await syncDirectory(dir);
}

/** Creates `file` exclusively with `mode` and writes `pem` durably; removes it again on failure. */
async function writeNew(file: string, pem: string, mode: number): Promise<void> {
  let handle;
  try {
    // O_EXCL also refuses to follow a symlink planted at `file`.
    handle = await open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  } catch (error) {
    if (errorCode(error) === 'EEXIST') throw new FileExistsError(file);
    throw systemError('create', file, error);
  }
  try {
    await handle.writeFile(pem.endsWith('\n') ? pem : `${pem}\n`);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(file).catch(() => undefined);
    throw systemError('write', file, error);
  }
  await handle.close();
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY).catch(() => undefined);
  if (handle === undefined) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return false;
    throw systemError('stat', file, error);
  }
}

// `job-worker --dev`: a development PKI made on first run and reused after, so the quick start
// needs no manual step. A CA, a server certificate for localhost, and an admin client certificate
// that is also installed where the CLI looks by default (unless credentials are already there).
import { copyFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

import { defaultClientTlsPaths } from '../paths';
import { writePemFile, writePemFiles } from './files';
import { createCa, issueClientCertificate, issueServerCertificate, type CertificateAuthority } from './issue';
import { loadCa, loadTlsMaterial, type TlsFilePaths, type TlsUse } from './load';

export const DEV_CLIENT_NAME = 'dev-admin';

export interface DevPki {
  server: TlsFilePaths;
  client: TlsFilePaths;
  /** Where the CLI finds the client credentials by default, if they were installed there. */
  installedClient: TlsFilePaths | null;
  /** What was created this time (empty when everything was reused). */
  created: string[];
  /** Why the client credentials were not installed in the CLI's default location, if they were not. */
  notInstalledReason: string | null;
}

async function usable(use: TlsUse, paths: TlsFilePaths): Promise<boolean> {
  try {
    const material = await loadTlsMaterial(use, paths);
    return material.warnings.length === 0; // expiring soon: renew now rather than fail later
  } catch {
    return false;
  }
}

export async function ensureDevPki(configDir: string): Promise<DevPki> {
  const dir = path.join(configDir, 'dev-pki');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const created: string[] = [];
  const caPaths = { certificatePath: path.join(dir, 'ca.pem'), privateKeyPath: path.join(dir, 'ca-key.pem') };

  let ca: CertificateAuthority;
  let newCa = false;
  try {
    ca = await loadCa(caPaths);
  } catch {
    ca = await createCa({ commonName: 'jobworker dev CA' });
    await writePemFiles(ca, caPaths, { overwrite: true });
    created.push(caPaths.certificatePath);
    newCa = true;
  }

  const server: TlsFilePaths = { caPath: caPaths.certificatePath, certificatePath: path.join(dir, 'server.pem'), privateKeyPath: path.join(dir, 'server-key.pem') };
  if (newCa || !(await usable('server', server))) {
    const issued = await issueServerCertificate(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
    await writePemFiles(issued, server, { overwrite: true });
    created.push(server.certificatePath);
  }

  const client: TlsFilePaths = { caPath: caPaths.certificatePath, certificatePath: path.join(dir, 'client.pem'), privateKeyPath: path.join(dir, 'client-key.pem') };
  if (newCa || !(await usable('client', client))) {
    const issued = await issueClientCertificate(ca, { name: DEV_CLIENT_NAME, roles: ['admin'] });
    await writePemFiles(issued, client, { overwrite: true });
    created.push(client.certificatePath);
  }

  // Install for the CLI, but never over credentials someone else put there.
  const target = defaultClientTlsPaths(configDir);
  const present = [target.caPath, target.certificatePath, target.privateKeyPath].filter((file) => existsSync(file));
  let installedClient: TlsFilePaths | null = null;
  let notInstalledReason: string | null = null;
  const ours = present.length === 3 && (await isDevClient(target));
  if (present.length === 0 || ours) {
    if (created.length > 0 || present.length === 0) {
      await writePemFile(target.caPath, ca.certificatePem, { mode: 0o644, overwrite: true });
      await copyFile(client.certificatePath, target.certificatePath);
      await copyFile(client.privateKeyPath, target.privateKeyPath); // copyFile keeps the 0600 mode
    }
    installedClient = target;
  } else {
    notInstalledReason = `client credentials already exist in ${configDir}; use --ca ${client.caPath} --cert ${client.certificatePath} --key ${client.privateKeyPath}`;
  }
  return { server, client, installedClient, created, notInstalledReason };
}

/** True if the CLI's default credentials are dev ones (this dev CA's or an earlier one's). */
async function isDevClient(paths: TlsFilePaths): Promise<boolean> {
  try {
    const material = await loadTlsMaterial('client', paths);
    return material.identity?.name === DEV_CLIENT_NAME;
  } catch {
    return false;
  }
}

// `job-worker pki …`: create a CA, server certificates and client certificates carrying roles.
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';

import { Command, Option } from 'clipanion';
import * as t from 'typanion';

import { BaseCommand, CliError, flagError } from '../run';
import {
  createCa,
  FileExistsError,
  isRole,
  issueClientCertificate,
  issueNatsClientCertificate,
  issueServerCertificate,
  loadCa,
  ROLES,
  writePemFile,
  writePemFiles,
} from '../../pki';

const isDays = t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(1), t.isAtMost(36500)]);

function caPaths(dir: string) {
  return { certificatePath: path.join(dir, 'ca.pem'), privateKeyPath: path.join(dir, 'ca-key.pem') };
}

abstract class PkiCommand extends BaseCommand {
  out = Option.String('--out', '.', { description: 'directory to write the files to (created 0700 if missing)' });
  days = Option.String('--days', { validator: isDays, description: 'validity in days' });
  force = Option.Boolean('--force', false, { description: 'overwrite existing files' });

  protected async outDir(): Promise<string> {
    await mkdir(this.out, { recursive: true, mode: 0o700 });
    return this.out;
  }

  protected say(text: string): void {
    this.context.stdout.write(`${text}\n`);
  }

  protected override describeError(error: unknown): CliError | undefined {
    if (error instanceof FileExistsError) return new CliError(error.message, 'give --force to replace the files (a new key and certificate replace the old ones atomically)');
    return undefined;
  }
}

export class PkiCaCommand extends PkiCommand {
  static override paths = [['pki', 'ca']];
  static override usage = Command.Usage({
    category: 'PKI',
    description: 'Create a certificate authority',
    details: 'Writes ca.pem and ca-key.pem (0600). ECDSA P-256, valid 10 years by default. Keep ca-key.pem offline if you can.',
    examples: [['Create a CA in /etc/jobworker/pki', '$0 pki ca --out /etc/jobworker/pki']],
  });
  name = Option.String('--name', 'jobworker CA', { description: 'subject common name' });

  async run(): Promise<number> {
    const dir = await this.outDir();
    const ca = await createCa({ commonName: this.name, ...(this.days === undefined ? {} : { validityDays: this.days }) });
    const paths = caPaths(dir);
    await writePemFiles(ca, paths, { overwrite: this.force });
    this.say(`CA written: ${paths.certificatePath} (certificate), ${paths.privateKeyPath} (private key, 0600)`);
    return 0;
  }
}

export class PkiServerCommand extends PkiCommand {
  static override paths = [['pki', 'server']];
  static override usage = Command.Usage({
    category: 'PKI',
    description: 'Issue a server certificate for the daemon',
    details: 'Writes NAME.pem and NAME-key.pem (0600), signed by the CA in --ca-dir. Clients check the host name or IP they dial against the names given here.',
    examples: [['A server certificate for worker1.example.com and 10.0.0.5', '$0 pki server --ca-dir /etc/jobworker/pki --host worker1.example.com --ip 10.0.0.5 --out /etc/jobworker/pki']],
  });
  caDir = Option.String('--ca-dir', { required: true, description: 'directory holding ca.pem and ca-key.pem' });
  hosts = Option.Array('--host', [], { description: 'DNS name the server answers to (repeatable)' });
  ips = Option.Array('--ip', [], { description: 'IP address the server answers on (repeatable)' });
  name = Option.String('--name', 'server', { description: 'file name stem' });

  async run(): Promise<number> {
    const ca = await loadCa(caPaths(this.caDir));
    const issued = await issueServerCertificate(ca, {
      dnsNames: this.hosts,
      ipAddresses: this.ips,
      ...(this.days === undefined ? {} : { validityDays: this.days }),
    });
    const dir = await this.outDir();
    const paths = { certificatePath: path.join(dir, `${this.name}.pem`), privateKeyPath: path.join(dir, `${this.name}-key.pem`) };
    await writePemFiles(issued, paths, { overwrite: this.force });
    this.say(`server certificate written: ${paths.certificatePath}, ${paths.privateKeyPath} (0600)`);
    return 0;
  }
}

export class PkiClientCommand extends PkiCommand {
  static override paths = [['pki', 'client']];
  static override usage = Command.Usage({
    category: 'PKI',
    description: 'Issue a client certificate with roles',
    details: `
      The certificate's subject CN is the identity (--name): jobs it starts belong to it. Roles
      (${ROLES.join(', ')}) are stored in jobworker's roles extension and nowhere else. Writes
      NAME.pem, NAME-key.pem (0600) and ca.pem: the three files job-cli needs.
    `,
    examples: [
      ['A writer certificate for alice', '$0 pki client --ca-dir /etc/jobworker/pki --name alice --role writer --out ./alice'],
      ['A read-only dashboard for alice', '$0 pki client --ca-dir /etc/jobworker/pki --name alice --role reader --out ./alice-dashboard'],
      ['Two roles at once', '$0 pki client --ca-dir /etc/jobworker/pki --name ci --role reader,writer --out ./ci'],
    ],
  });
  caDir = Option.String('--ca-dir', { required: true, description: 'directory holding ca.pem and ca-key.pem' });
  name = Option.String('--name', { required: true, description: 'identity (subject CN)' });
  roles = Option.Array('--role', [], { description: `role to grant (repeatable, or comma-separated): ${ROLES.join(', ')}` });

  async run(): Promise<number> {
    const given = [...new Set(this.roles.flatMap((value) => value.split(',')).map((role) => role.trim()).filter((role) => role !== ''))];
    const roles = given.filter(isRole);
    const unknown = given.find((role) => !isRole(role));
    if (unknown !== undefined) throw flagError('--role', `unknown role ${JSON.stringify(unknown)}; expected ${ROLES.join(', ')}`);
    const ca = await loadCa(caPaths(this.caDir));
    const issued = await issueClientCertificate(ca, {
      name: this.name,
      roles,
      ...(this.days === undefined ? {} : { validityDays: this.days }),
    });
    const dir = await this.outDir();
    const paths = { certificatePath: path.join(dir, `${this.name}.pem`), privateKeyPath: path.join(dir, `${this.name}-key.pem`) };
    await writePemFiles(issued, paths, { overwrite: this.force });
    await writePemFile(path.join(dir, 'ca.pem'), ca.certificatePem, { mode: 0o644, overwrite: true });
    this.say(`client certificate for ${this.name} (${roles.join(', ')}) written: ${paths.certificatePath}, ${paths.privateKeyPath} (0600), ${path.join(dir, 'ca.pem')}`);
    return 0;
  }
}

export class PkiNatsClientCommand extends PkiCommand {
  static override paths = [['pki', 'nats-client']];
  static override usage = Command.Usage({
    category: 'PKI',
    description: "Issue a daemon's certificate for NATS (fleet)",
    details: `
      A client certificate without roles, for a daemon to reach NATS over mutual TLS (docs/fleet.md).
      Its CN is the daemon's fleet host name; NATS maps it to a user (verify_and_map). Issue it from
      the fleet's own CA, not the one that signs users' certificates, so that no user certificate can
      connect to NATS. Writes NAME.pem, NAME-key.pem (0600) and ca.pem. Valid 1 year by default.
    `,
    examples: [['The NATS certificate of daemon w1', '$0 pki nats-client --ca-dir /etc/jobworker/fleet-pki --name w1 --out /etc/jobworker/nats']],
  });
  caDir = Option.String('--ca-dir', { required: true, description: 'directory holding the fleet CA (ca.pem and ca-key.pem)' });
  name = Option.String('--name', { required: true, description: "the daemon's fleet host name (subject CN)" });

  async run(): Promise<number> {
    const ca = await loadCa(caPaths(this.caDir));
    const issued = await issueNatsClientCertificate(ca, { name: this.name, ...(this.days === undefined ? {} : { validityDays: this.days }) });
    const dir = await this.outDir();
    const paths = { certificatePath: path.join(dir, `${this.name}.pem`), privateKeyPath: path.join(dir, `${this.name}-key.pem`) };
    await writePemFiles(issued, paths, { overwrite: this.force });
    await writePemFile(path.join(dir, 'ca.pem'), ca.certificatePem, { mode: 0o644, overwrite: true });
    this.say(`NATS client certificate for ${this.name} written: ${paths.certificatePath}, ${paths.privateKeyPath} (0600), ${path.join(dir, 'ca.pem')}`);
    return 0;
  }
}

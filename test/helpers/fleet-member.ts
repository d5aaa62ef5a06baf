// A daemon that joins a pool through the test's nats-server, as the fleet suite and the
// dashboard's fleet test start them: small memory defaults, a short shutdown grace, one pool.
import type { TlsFilePaths } from '../../src/pki';
import { startDaemonProcess, type SpawnedDaemon } from './spawned-daemon';

export interface FleetMemberSetup {
  host: string;
  stateDir: string;
  cgroupRootName: string;
  /** Where the daemon's config file is written. */
  configDir: string;
  /** The daemon's gRPC server files. */
  serverTls: TlsFilePaths;
  /** Its NATS client files (the fleet CA's). */
  natsTls: TlsFilePaths;
  natsUrl: string;
  pool: string;
  capacityJobs: number;
  heartbeatTtlMs: number;
}

export function startFleetMember(member: FleetMemberSetup): SpawnedDaemon {
  const { natsTls } = member;
  return startDaemonProcess({
    stateDir: member.stateDir,
    tls: member.serverTls,
    cgroupRootName: member.cgroupRootName,
    configDir: member.configDir,
    config: {
      defaults: { memoryBytes: 64 << 20 },
      shutdown: { graceMs: 1000 },
      fleet: {
        nats: { servers: [member.natsUrl], tls: { ca: natsTls.caPath, cert: natsTls.certificatePath, key: natsTls.privateKeyPath } },
        host: member.host,
        advertise: 'localhost',
        pools: [member.pool],
        capacity: { jobs: member.capacityJobs, memoryBytes: 1 << 30 },
        heartbeatTtlMs: member.heartbeatTtlMs,
      },
    },
  });
}

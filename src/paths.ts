// Default locations (XDG base directories), shared by the daemon's dev mode and the CLI.
import { homedir } from 'node:os';
import * as path from 'node:path';

function xdg(variable: string, fallback: string): string {
  const value = process.env[variable];
  return value !== undefined && path.isAbsolute(value) ? value : path.join(homedir(), fallback);
}

/** ~/.config/jobworker: the CLI's credentials and contexts; `job-worker --dev` puts its admin certificate here. */
export function configDir(): string {
  return path.join(xdg('XDG_CONFIG_HOME', '.config'), 'jobworker');
}

/** ~/.local/state/jobworker: the dev daemon's state directory lives below it. */
export function stateHome(): string {
  return path.join(xdg('XDG_STATE_HOME', path.join('.local', 'state')), 'jobworker');
}

/** The client credentials the CLI uses when nothing else is configured. */
export function defaultClientTlsPaths(dir = configDir()): { caPath: string; certificatePath: string; privateKeyPath: string } {
  return {
    caPath: path.join(dir, 'ca.pem'),
    certificatePath: path.join(dir, 'cert.pem'),
    privateKeyPath: path.join(dir, 'key.pem'),
  };
}

export const DEFAULT_LISTEN = '127.0.0.1:50051';
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9464';
export const DEFAULT_STATE_DIR = '/var/lib/jobworker';

// The daemon process's signals: SIGTERM and SIGINT shut it down gracefully and exit (1 if the
// shutdown failed); SIGHUP reloads the TLS files without dropping jobs or connections.
import type { RunningDaemon } from './daemon';

/** Wires the process signals to a running daemon. */
export function handleSignals(daemon: RunningDaemon): void {
  const onStop = (signal: NodeJS.Signals) => {
    daemon.shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        daemon.logger.error('shutdown failed', { error: String(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    daemon.server.reloadTls().catch((error: unknown) => daemon.logger.error('TLS reload failed; still serving the previous certificates', { error: error instanceof Error ? error.message : String(error) }));
  });
}

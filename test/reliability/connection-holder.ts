// The attacker of the fd-storm scenario: raw TCP connections held open and renewed, in a worker
// thread of its own. Run on the test's event loop, its thousands of connects a second delayed the
// control client's calls as much as the daemon did, so "another identity's service" measured the
// test process; on its own thread, the control client's latency is the daemon's (both still share
// the machine's two cores, as an attacker on the same host would).
import { connect as netConnect, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

export interface Held {
  opened: number;
  /** Closed by the daemon (refused at accept, or cut by the handshake timeout: the client cannot tell; the daemon's metrics can). */
  closed: number;
  /** The longest a connection stayed open before the daemon closed it. */
  longestMs: number;
}

/** Keeps up to `count` raw connections from `localAddress` open for `ms`, renewing those the daemon closes; `payload` is written once. */
async function holdHere(port: number, localAddresses: string[], count: number, ms: number, payload: Buffer | null, signal: AbortSignal): Promise<Held> {
  const held: Held = { opened: 0, closed: 0, longestMs: 0 };
  const open = new Set<Socket>();
  let over = false;
  const until = Date.now() + ms;
  let next = 0;
  const openOne = () => {
    if (Date.now() >= until || signal.aborted) return;
    const localAddress = localAddresses[next++ % localAddresses.length]!;
    const socket = netConnect({ host: '127.0.0.1', port, localAddress });
    const t0 = Date.now();
    held.opened++;
    open.add(socket);
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('connect', () => {
      if (payload !== null) socket.write(payload);
    });
    socket.once('close', () => {
      open.delete(socket);
      if (over) return; // closed by us

      held.closed++;
      held.longestMs = Math.max(held.longestMs, Date.now() - t0);
      // Renew (not in a tight loop: a refused connection is retried after 20 ms); stalled
      // handshakes (a payload) are opened once.
      if (payload === null) setTimeout(openOne, 20).unref();
    });
  };
  for (let i = 0; i < count; i++) openOne();
  await delay(ms, undefined, { signal }).catch(() => undefined);
  // Opened once (stalled handshakes): wait for the daemon to cut them, within the bound checked.
  for (let i = 0; payload !== null && open.size > 0 && i < 150; i++) await delay(100);
  await delay(300);
  over = true;
  for (const socket of open) socket.destroy();
  return held;
}

interface HoldRequest {
  kind: 'hold-connections';
  port: number;
  localAddresses: string[];
  count: number;
  ms: number;
  payload: number[] | null;
}

/** Keeps up to `count` raw connections from `localAddresses` open for `ms` (see holdHere), on a thread of its own. */
export function holdConnections(port: number, localAddresses: string[], count: number, ms: number, payload: Buffer | null, signal: AbortSignal): Promise<Held> {
  const request: HoldRequest = { kind: 'hold-connections', port, localAddresses, count, ms, payload: payload === null ? null : [...payload] };
  const worker = new Worker(__filename, { workerData: request });
  const abort = (): void => worker.postMessage('abort');
  signal.addEventListener('abort', abort, { once: true });
  return new Promise<Held>((resolve, reject) => {
    worker.once('message', (held: Held) => resolve(held));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the connection holder's thread exited (${code}) without a result`)));
  }).finally(() => signal.removeEventListener('abort', abort));
}

if (!isMainThread && (workerData as HoldRequest | undefined)?.kind === 'hold-connections') {
  const request = workerData as HoldRequest;
  const aborter = new AbortController();
  parentPort!.on('message', () => aborter.abort());
  void holdHere(request.port, request.localAddresses, request.count, request.ms, request.payload === null ? null : Buffer.from(request.payload), aborter.signal).then((held) => {
    parentPort!.postMessage(held);
    parentPort!.close();
  });
}

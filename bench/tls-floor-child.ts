// The floor for log streaming: a plain Node TLS 1.3 server in a process of its own that writes BYTES
// zero bytes (256 KiB writes, waiting for 'drain') to each client that connects, then ends the
// connection. Same certificates and cipher negotiation as the daemon; no HTTP/2, no gRPC, no
// protobuf, no disk. Prints its port on stdout, then serves until its stdin closes.
//   node tls-floor-child.js CERT KEY CA BYTES
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';

const [certPath, keyPath, caPath, bytesText] = process.argv.slice(2);
if (certPath === undefined || keyPath === undefined || caPath === undefined || bytesText === undefined) {
  process.stderr.write('usage: tls-floor-child CERT KEY CA BYTES\n');
  process.exit(2);
}
const total = Number(bytesText);
const block = Buffer.alloc(256 << 10);

const server = tls.createServer(
  {
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    ca: readFileSync(caPath),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
  },
  (socket) => {
    let left = total;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!socket.write(n === block.length ? block : block.subarray(0, n))) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    socket.on('error', () => socket.destroy());
    pump();
  },
);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address !== null ? address.port : 0}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => server.close(() => process.exit(0)));

// What the UI server and the page in the browser say to each other: JSON messages on one WebSocket
// per page, and log output as binary frames on the same socket (no base64: the bytes go as they
// are, behind a fixed 32-byte header). Shared by both sides (the page's bundle imports this file),
// so it uses only what a browser and Node both have: no Buffer, no Node modules.
import type { JobReport } from '../job-cli/job-report';

/**
 * A job as the page sees it: what `job-cli query --json` prints, plus any field a newer client view
 * carries that this version does not know (the page shows those as they are).
 */
export type UiJob = JobReport & { readonly [field: string]: unknown };

/** The page's credential goes with every API request in this header (docs/ui.md, "Access"). */
export const SESSION_HEADER = 'x-jobworker-session';
/** The WebSocket subprotocol the server answers with. */
export const WEBSOCKET_PROTOCOL = 'jobworker';
/** The other subprotocol a page offers: this prefix, then the session secret (base64url). */
export const SESSION_PROTOCOL_PREFIX = 'jobworker-session.';

export type HostStatus = 'connecting' | 'up' | 'down';

export interface UiHost {
  /** The context's name ("default", "prod"). */
  name: string;
  address: string;
  status: HostStatus;
  /** Why it is down (one line, and a hint when there is one). */
  error: string | null;
  /** When the next attempt to connect is due (ms since the epoch) while down. */
  retryAt: number | null;
  /** Our certificate's identity there, and its roles: what the page offers, not what is allowed (the daemon decides). */
  identity: { name: string; roles: string[] } | null;
}

/** Resource use over one sampling interval. */
export interface UiRates {
  /** Percent of one CPU. */
  cpuPercent: number | null;
  memoryBytes: number;
  memoryPeakBytes: number | null;
  pids: number;
  ioReadBytesPerSecond: number | null;
  ioWriteBytesPerSecond: number | null;
}

/** One point of a job's charts: a reading at `time` (ms since the epoch). */
export interface UiSample extends UiRates {
  time: number;
}

export type ClientMessage =
  /** Follow one job: its record and a sample every second while it runs. */
  | { type: 'watch-job'; sub: number; host: string; job: string }
  /** Its output from `from` (0, or a chunk's nextOffset); `follow` until it ends. */
  | { type: 'stream-log'; sub: number; host: string; job: string; from: number; follow: boolean; streams: ('stdout' | 'stderr')[] }
  /** `bytes` more of subscription `sub`'s output were shown: the server may send that much more. */
  | { type: 'ack'; sub: number; bytes: number }
  | { type: 'cancel'; sub: number };

export type ServerMessage =
  | { type: 'hosts'; hosts: UiHost[] }
  /** Every job of a host (replacing what the page had for it): on connecting and after each reconnect. */
  | { type: 'jobs'; host: string; jobs: UiJob[] }
  | { type: 'job'; host: string; job: UiJob }
  | { type: 'job-removed'; host: string; id: string }
  /** Rates of a host's running jobs over the last interval. */
  | { type: 'rates'; host: string; rates: Record<string, UiRates> }
  /** For a watch-job subscription: the record, and the samples so far. */
  | { type: 'job-detail'; sub: number; job: UiJob; samples: UiSample[] }
  | { type: 'sample'; sub: number; sample: UiSample }
  /** A subscription failed (the daemon's answer, as one line). */
  | { type: 'sub-error'; sub: number; code: string; message: string };

/** How many bytes of output a log subscription may have sent and not yet acknowledged. */
export const LOG_WINDOW_BYTES = 4 << 20;

/**
 * 'chunk': one chunk of output, one record of the job's log. 'end': the output ended (the job
 * finished, or everything there was without follow); its data is the job, JSON.
 */
export type FrameKind = 'chunk' | 'end';
const KIND_CODES = { chunk: 1, end: 2 } as const;

export const STREAM_CODES = ['stdout', 'stderr', 'marker'] as const;
export type FrameStream = (typeof STREAM_CODES)[number];

export interface LogFrame {
  kind: FrameKind;
  sub: number;
  stream: FrameStream;
  /** Where the chunk's record starts in the log, where the next one starts (the resume point). */
  offset: number;
  nextOffset: number;
  timeUnixMicros: number;
  /** Output bytes ('chunk'), or UTF-8 JSON ('end'). */
  data: Uint8Array;
}

/** kind u8, stream u8, 2 spare, sub u32, offset f64, nextOffset f64, time f64 (little-endian); then data. */
export const FRAME_HEADER_BYTES = 32;

/** The header of a frame; the data follows it in the same WebSocket message. */
export function encodeFrameHeader(frame: Omit<LogFrame, 'data'>): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint8(0, KIND_CODES[frame.kind]);
  view.setUint8(1, STREAM_CODES.indexOf(frame.stream));
  view.setUint32(4, frame.sub, true);
  // Offsets and times are at most 2^53 − 1 (docs/api.md): a float64 holds them exactly.
  view.setFloat64(8, frame.offset, true);
  view.setFloat64(16, frame.nextOffset, true);
  view.setFloat64(24, frame.timeUnixMicros, true);
  return header;
}

/** A frame from one binary WebSocket message; throws on a message that is not one. */
export function decodeFrame(message: ArrayBuffer | Uint8Array): LogFrame {
  const bytes = message instanceof Uint8Array ? message : new Uint8Array(message);
  if (bytes.byteLength < FRAME_HEADER_BYTES) throw new Error(`log frame of ${bytes.byteLength} bytes, shorter than its ${FRAME_HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const code = view.getUint8(0);
  const kind = code === KIND_CODES.chunk ? 'chunk' : code === KIND_CODES.end ? 'end' : undefined;
  const stream = STREAM_CODES[view.getUint8(1)];
  if (kind === undefined || stream === undefined) throw new Error(`log frame with kind ${code} and stream ${view.getUint8(1)}`);
  return {
    kind,
    stream,
    sub: view.getUint32(4, true),
    offset: view.getFloat64(8, true),
    nextOffset: view.getFloat64(16, true),
    timeUnixMicros: view.getFloat64(24, true),
    data: bytes.subarray(FRAME_HEADER_BYTES),
  };
}

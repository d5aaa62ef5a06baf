// The page's line to the UI server: one WebSocket (JSON messages, and binary frames of log output),
// reconnected after a drop with a growing delay; whoever subscribed to something subscribes again
// on each (re)connection. And the actions and downloads, as requests carrying the session.
//
// The session: the page opened with the URL job-cli ui printed has it written into a <meta>; the
// page keeps it in this origin's localStorage (other ports, other origins, cannot read it) for
// reloads and other tabs, and takes the spent token out of the address bar.
import {
  decodeFrame,
  SESSION_HEADER,
  SESSION_PROTOCOL_PREFIX,
  WEBSOCKET_PROTOCOL,
  type ClientMessage,
  type LogFrame,
  type ServerMessage,
} from '../../src/cli/ui/protocol';

const SESSION_KEY = 'jobworker-session';

/** Takes the session from the page (when opened with the token) into storage; true if there is one. */
export function takeSession(): boolean {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="jobworker-session"]');
  const given = meta?.content ?? '';
  meta?.remove();
  if (given !== '') {
    localStorage.setItem(SESSION_KEY, given);
    history.replaceState(null, '', `${location.pathname}${location.hash}`);
  }
  return session() !== '';
}

function session(): string {
  return localStorage.getItem(SESSION_KEY) ?? '';
}

export type LinkState = 'connecting' | 'live' | 'reconnecting';

export class Link {
  #socket: WebSocket | undefined;
  #state: LinkState = 'connecting';
  #attempt = 0;
  #nextSub = 1;
  readonly #messageListeners = new Set<(message: ServerMessage) => void>();
  readonly #frameListeners = new Map<number, (frame: LogFrame) => void>();
  readonly #stateListeners = new Set<(state: LinkState) => void>();

  get state(): LinkState {
    return this.#state;
  }

  connect(): void {
    const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`, [WEBSOCKET_PROTOCOL, `${SESSION_PROTOCOL_PREFIX}${session()}`]);
    socket.binaryType = 'arraybuffer';
    this.#socket = socket;
    socket.addEventListener('open', () => {
      this.#attempt = 0;
      this.#setState('live');
    });
    socket.addEventListener('message', (event: MessageEvent<ArrayBuffer | string>) => {
      if (typeof event.data === 'string') {
        const message = JSON.parse(event.data) as ServerMessage;
        for (const listener of this.#messageListeners) listener(message);
      } else {
        const frame = decodeFrame(event.data);
        this.#frameListeners.get(frame.sub)?.(frame);
      }
    });
    socket.addEventListener('close', () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#setState('reconnecting');
      const delay = Math.min(10_000, 500 * 2 ** this.#attempt++);
      setTimeout(() => this.connect(), delay);
    });
  }

  /** A new subscription's number. */
  newSub(): number {
    return this.#nextSub++;
  }

  /** false when not connected (the subscriber subscribes again when the link is live). */
  send(message: ClientMessage): boolean {
    if (this.#socket?.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  onMessage(listener: (message: ServerMessage) => void): () => void {
    this.#messageListeners.add(listener);
    return () => this.#messageListeners.delete(listener);
  }

  onFrames(sub: number, listener: (frame: LogFrame) => void): () => void {
    this.#frameListeners.set(sub, listener);
    return () => this.#frameListeners.delete(sub);
  }

  /** Called now and on every change (a page subscribes on 'live'). */
  onState(listener: (state: LinkState) => void): () => void {
    this.#stateListeners.add(listener);
    listener(this.#state);
    return () => this.#stateListeners.delete(listener);
  }

  #setState(state: LinkState): void {
    this.#state = state;
    for (const listener of this.#stateListeners) listener(state);
  }
}

export interface ApiAnswer<T> {
  ok: boolean;
  status: number;
  body: T & { error?: string; field?: string | null };
}

/** A request to the UI server's API, with the session; the answer's JSON whatever the status. */
export async function api<T>(method: 'POST' | 'DELETE', path: string, body?: unknown): Promise<ApiAnswer<T>> {
  const response = await fetch(path, {
    method,
    headers: { 'content-type': 'application/json', [SESSION_HEADER]: session() },
    body: body === undefined ? null : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await response.text();
  let parsed: ApiAnswer<T>['body'];
  try {
    parsed = JSON.parse(text) as ApiAnswer<T>['body'];
  } catch {
    parsed = { error: text || response.statusText } as ApiAnswer<T>['body'];
  }
  return { ok: response.ok, status: response.status, body: parsed };
}

/** The path of a job's API resources. */
export function jobPath(host: string, id?: string): string {
  return `/api/hosts/${encodeURIComponent(host)}/jobs${id === undefined ? '' : `/${encodeURIComponent(id)}`}`;
}

/**
 * Saves what a GET of `path` answers as the file `name`: fetched with the session (a plain link
 * could not carry it), then handed to the browser's download as a blob. Resolves to an error's
 * text, or null.
 */
export async function download(path: string, name: string): Promise<string | null> {
  const response = await fetch(path, { headers: { [SESSION_HEADER]: session() }, credentials: 'omit' });
  if (!response.ok) return `${response.status} ${(await response.text()) || response.statusText}`;
  const url = URL.createObjectURL(await response.blob());
  const anchor = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return null;
}

// Who may talk to the UI server. It acts with the user's own certificates, so anything that can
// make it act is the user: every request that reads or changes something must prove it comes from
// the page the user opened.
//
// - A secret token, in the URL `job-cli ui` prints (as Jupyter does). Opening that URL answers the
//   page with the session secret written into it; the page keeps the session in its origin's
//   localStorage (origins include the port: no page of another port, nor another local user's
//   server there, can read it) and drops the token from the address bar.
// - The session secret goes with every API request in a header (SESSION_HEADER) and with the
//   WebSocket as a subprotocol (SESSION_PROTOCOL_PREFIX + secret): both only a script of this origin
//   can send. No cookie: cookies ignore ports, so any server on another port of this host would get
//   one (another local user's, too), and with it act as the user.
// - The page shell and its assets hold no secret and are served without one.
// - The Host header must name this server (a loopback name and our port): a DNS name an attacker
//   points at 127.0.0.1 (DNS rebinding) is refused.
// - An Origin header, when there is one, must be this server's; the WebSocket handshake and every
//   request that changes something must carry one. Sub-resource requests from other sites are
//   refused by their Sec-Fetch-Site.
// Pure: the server passes the request's method, URL and headers.
import { timingSafeEqual } from 'node:crypto';

import { SESSION_HEADER, SESSION_PROTOCOL_PREFIX } from './protocol';

export { SESSION_HEADER, SESSION_PROTOCOL_PREFIX, WEBSOCKET_PROTOCOL } from './protocol';
export const TOKEN_PARAMETER = 'token';

export interface AccessSecrets {
  /** In the URL printed at start: good for opening the page only. */
  token: string;
  /** The page's credential (not the token: the token may end up in a terminal's scrollback). */
  session: string;
}

export interface AccessPolicy {
  secrets: AccessSecrets;
  /** Host header values that name this server, lower case ("127.0.0.1:8080", "localhost:8080"). */
  hosts: ReadonlySet<string>;
}

export interface RequestFacts {
  method: string;
  /** The request target: path and query. */
  url: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** A WebSocket handshake. */
  upgrade: boolean;
}

export type AccessVerdict =
  /** `page`: the page shell or an asset (no secret in it, none needed). */
  | { allow: true; page: boolean }
  /** The right token in the URL: answer the page with the session written into it. */
  | { allow: false; login: true }
  | { allow: false; login: false; status: 401 | 403; reason: string };

const SAFE_METHODS = new Set(['GET', 'HEAD']);

function header(facts: RequestFacts, name: string): string | undefined {
  const value = facts.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Constant-time comparison of two secrets (their lengths are not secret). */
export function sameSecret(given: string | undefined | null, expected: string): boolean {
  if (given === undefined || given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session a WebSocket handshake offers among its subprotocols ("jobworker, jobworker-session.S"). */
export function sessionOfProtocols(protocolHeader: string | undefined): string | undefined {
  for (const protocol of (protocolHeader ?? '').split(',')) {
    const name = protocol.trim();
    if (name.startsWith(SESSION_PROTOCOL_PREFIX)) return name.slice(SESSION_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

const refuse = (status: 401 | 403, reason: string): AccessVerdict => ({ allow: false, login: false, status, reason });

export function checkAccess(facts: RequestFacts, policy: AccessPolicy): AccessVerdict {
  const host = header(facts, 'host')?.toLowerCase();
  if (host === undefined || !policy.hosts.has(host)) return refuse(403, `this server does not answer to Host ${JSON.stringify(host ?? '')}`);

  const origin = header(facts, 'origin');
  const ownOrigin = origin !== undefined && origin !== 'null' && policy.hosts.has(origin.toLowerCase().replace(/^http:\/\//, '')) && origin.toLowerCase().startsWith('http://');
  if (origin !== undefined && !ownOrigin) return refuse(403, `requests from ${origin} are not accepted`);
  const changes = !SAFE_METHODS.has(facts.method.toUpperCase());
  if ((changes || facts.upgrade) && !ownOrigin) return refuse(403, 'a request without an Origin header is not accepted here');

  // Browsers tell where a request comes from; "same-site" includes other ports of this host.
  const site = header(facts, 'sec-fetch-site');
  const navigation = header(facts, 'sec-fetch-mode') === 'navigate' && !changes;
  if (site !== undefined && site !== 'same-origin' && site !== 'none' && !navigation) return refuse(403, `a ${site} request is not accepted`);

  const url = new URL(facts.url, 'http://ui.invalid');
  const api = url.pathname.startsWith('/api/');
  const token = url.searchParams.get(TOKEN_PARAMETER);
  if (token !== null) {
    if (!sameSecret(token, policy.secrets.token)) return refuse(401, 'wrong token; open the URL job-cli ui printed');
    if (changes || facts.upgrade || api) return refuse(403, 'the token is for opening the page');
    return { allow: false, login: true };
  }
  if (!api && !facts.upgrade) {
    if (changes) return refuse(403, `${facts.method} is not accepted here`);
    return { allow: true, page: true };
  }
  const session = facts.upgrade ? sessionOfProtocols(header(facts, 'sec-websocket-protocol')) : header(facts, SESSION_HEADER);
  if (!sameSecret(session, policy.secrets.session)) return refuse(401, 'not signed in; open the URL job-cli ui printed (it carries the token)');
  return { allow: true, page: false };
}

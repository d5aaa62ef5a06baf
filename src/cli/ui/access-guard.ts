// Who may talk to the UI server. It acts with the user's own certificates, so anything that can
// make it act is the user: every request must prove it comes from the page the user opened.
//
// - A secret token, in the URL `job-cli ui` prints (as Jupyter does). Opening that URL trades it
//   for a cookie (HttpOnly, SameSite=Strict) and redirects to the same page without it, so the token
//   stays out of the history. Every request — pages, assets, the API, the WebSocket — needs the
//   cookie (or the token); without it: 401.
// - The Host header must name this server (a loopback name and our port): a DNS name an attacker
//   points at 127.0.0.1 (DNS rebinding) is refused.
// - An Origin header, when there is one, must be this server's; the WebSocket handshake and every
//   request that changes something must carry one. Sub-resource requests from other sites (an
//   <img> on another localhost port: cookies ignore ports, so SameSite does not stop those) are
//   refused by their Sec-Fetch-Site.
// - Requests that change something also carry a CSRF token that only the page has (it is in the
//   page, which other origins cannot read), in a header that forms cannot set.
// Pure: the server passes the request's method, URL and headers.
import { timingSafeEqual } from 'node:crypto';

export const CSRF_HEADER = 'x-jobworker-csrf';
export const TOKEN_PARAMETER = 'token';

export interface AccessSecrets {
  /** In the URL printed at start. */
  token: string;
  /** The cookie's value (not the token: the token may end up in a terminal's scrollback, the cookie never does). */
  session: string;
  /** What the page sends in CSRF_HEADER with every request that changes something. */
  csrf: string;
}

export interface AccessPolicy {
  secrets: AccessSecrets;
  /** Cookie names are per port: cookies ignore ports, and two UIs on one host must not clobber each other's. */
  cookieName: string;
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
  | { allow: true }
  /** The right token in the URL: set the cookie, and redirect to `location` (the URL without it). */
  | { allow: false; login: true; location: string }
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

/** A cookie's value from a Cookie header ("a=1; b=2"). */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  for (const part of (cookieHeader ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
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
  const token = url.searchParams.get(TOKEN_PARAMETER);
  if (token !== null) {
    if (!sameSecret(token, policy.secrets.token)) return refuse(401, 'wrong token; open the URL job-cli ui printed');
    if (changes || facts.upgrade) return refuse(403, 'the token is for opening the page');
    url.searchParams.delete(TOKEN_PARAMETER);
    return { allow: false, login: true, location: `${url.pathname}${url.search}` };
  }
  if (!sameSecret(cookieValue(header(facts, 'cookie'), policy.cookieName), policy.secrets.session)) {
    return refuse(401, 'not signed in; open the URL job-cli ui printed (it carries the token)');
  }
  if (changes && !sameSecret(header(facts, CSRF_HEADER), policy.secrets.csrf)) return refuse(403, `missing or wrong ${CSRF_HEADER} header`);
  return { allow: true };
}

/** The Set-Cookie header that signs the browser in. */
export function sessionCookie(policy: AccessPolicy): string {
  return `${policy.cookieName}=${policy.secrets.session}; Path=/; HttpOnly; SameSite=Strict`;
}

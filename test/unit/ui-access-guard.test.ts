// The UI server's access rules (src/cli/ui/access-guard.ts), request by request: the token opens
// the page (with the session written into it); the page shell and assets hold no secret; the API
// needs the session in a header, the WebSocket in a subprotocol (no cookie: cookies ignore ports);
// Host must name the server (DNS rebinding), Origin must be the server's, other sites' sub-resource
// requests are refused, and changes need an Origin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { checkAccess, SESSION_HEADER, sessionOfProtocols, type AccessPolicy, type RequestFacts } from '../../src/cli/ui/access-guard';
import { acceptedHosts } from '../../src/cli/ui/listen-address';

const policy: AccessPolicy = {
  secrets: { token: 'token-123', session: 'session-456' },
  hosts: acceptedHosts({ host: '127.0.0.1', port: 8080 }),
};
const OWN = 'http://127.0.0.1:8080';
const withSession = { [SESSION_HEADER]: 'session-456' };
const socketWithSession = { 'sec-websocket-protocol': 'jobworker, jobworker-session.session-456' };

function request(overrides: Partial<RequestFacts> & { headers?: RequestFacts['headers'] } = {}): RequestFacts {
  return { method: 'GET', url: '/', upgrade: false, ...overrides, headers: { host: '127.0.0.1:8080', ...overrides.headers } };
}

const verdict = (facts: RequestFacts) => checkAccess(facts, policy);
const refusal = (facts: RequestFacts) => {
  const result = verdict(facts);
  assert.equal(result.allow, false);
  assert.ok(!result.login, 'not a login');
  return result.login ? 0 : result.status;
};
const api = (overrides: Partial<RequestFacts> = {}) => request({ url: '/api/hosts/a/jobs/x/log', ...overrides });

describe('the UI access guard', () => {
  it('the right token opens the page (the server writes the session into it); a wrong one is 401', () => {
    assert.deepEqual(verdict(request({ url: '/?token=token-123&x=1' })), { allow: false, login: true });
    assert.equal(refusal(request({ url: '/?token=token-124' })), 401);
  });

  it('serves the page shell and its assets without a secret: they hold none', () => {
    assert.deepEqual(verdict(request({ url: '/' })), { allow: true, page: true });
    assert.deepEqual(verdict(request({ url: '/assets/app.js', headers: { 'sec-fetch-site': 'same-origin' } })), { allow: true, page: true });
    assert.equal(refusal(request({ method: 'POST', url: '/', headers: { origin: OWN } })), 403);
  });

  it('the API and the WebSocket need the session: in a header, and in a subprotocol (401 without, or with a wrong one)', () => {
    assert.equal(refusal(api()), 401);
    assert.equal(refusal(api({ headers: { [SESSION_HEADER]: 'session-45' } })), 401);
    assert.equal(refusal(api({ headers: { cookie: 'jobworker-ui-8080=session-456' } })), 401, 'a cookie is no credential');
    assert.equal(refusal(api({ url: '/api/hosts/a/jobs/x/log?token=token-123' })), 403, 'the token opens the page only');
    assert.deepEqual(verdict(api({ headers: withSession })), { allow: true, page: false });
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: { origin: OWN } })), 401);
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: { origin: OWN, 'sec-websocket-protocol': 'jobworker, jobworker-session.session-45' } })), 401);
    assert.deepEqual(verdict(request({ upgrade: true, url: '/api/ws', headers: { origin: OWN, ...socketWithSession } })), { allow: true, page: false });
  });

  it('refuses a Host that does not name this server (DNS rebinding), even with the session', () => {
    assert.equal(refusal(api({ headers: { ...withSession, host: 'evil.example:8080' } })), 403);
    assert.equal(refusal(api({ headers: { ...withSession, host: '127.0.0.1:8081' } })), 403);
    assert.equal(refusal(request({ url: '/?token=token-123', headers: { host: 'evil.example:8080' } })), 403);
  });

  it("refuses another Origin, a WebSocket without one, and other sites' sub-resource requests", () => {
    assert.equal(refusal(api({ headers: { ...withSession, origin: 'http://localhost:9999' } })), 403);
    assert.equal(refusal(api({ headers: { ...withSession, origin: 'null' } })), 403);
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: socketWithSession })), 403);
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: { ...socketWithSession, origin: 'http://evil.example' } })), 403);
    assert.equal(refusal(api({ headers: { ...withSession, 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors' } })), 403);
    // A link followed from elsewhere is a navigation: the page shell may open (it holds nothing).
    assert.deepEqual(verdict(request({ headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } })), { allow: true, page: true });
  });

  it('lets changes through only with the session and the own Origin', () => {
    const change = (headers: RequestFacts['headers']) => request({ method: 'POST', url: '/api/hosts/a/jobs', headers });
    assert.deepEqual(verdict(change({ origin: OWN, ...withSession })), { allow: true, page: false });
    assert.equal(refusal(change({ origin: OWN })), 401, 'no session');
    assert.equal(refusal(change({ ...withSession })), 403, 'no Origin');
    assert.equal(refusal(change({ origin: 'http://localhost:9999', ...withSession })), 403, 'another Origin');
    assert.equal(refusal(request({ method: 'POST', url: '/?token=token-123', headers: { origin: OWN } })), 403, 'the token opens pages only');
  });

  it('finds the session among the subprotocols offered', () => {
    assert.equal(sessionOfProtocols('jobworker, jobworker-session.abc_-9'), 'abc_-9');
    assert.equal(sessionOfProtocols('jobworker'), undefined);
    assert.equal(sessionOfProtocols(undefined), undefined);
  });
});

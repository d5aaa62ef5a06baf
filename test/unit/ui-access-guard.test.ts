// The UI server's access rules (src/cli/ui/access-guard.ts), request by request: the token opens
// the page and becomes a cookie; without the cookie nothing is served; Host must name the server
// (DNS rebinding), Origin must be the server's, other sites' sub-resource requests are refused, and
// changes need the CSRF header and an Origin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { checkAccess, cookieValue, sessionCookie, type AccessPolicy, type RequestFacts } from '../../src/cli/ui/access-guard';
import { acceptedHosts } from '../../src/cli/ui/listen-address';

const policy: AccessPolicy = {
  secrets: { token: 'token-123', session: 'session-456', csrf: 'csrf-789' },
  cookieName: 'jobworker-ui-8080',
  hosts: acceptedHosts({ host: '127.0.0.1', port: 8080 }),
};
const signedIn = 'jobworker-ui-8080=session-456';
const OWN = 'http://127.0.0.1:8080';

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

describe('the UI access guard', () => {
  it('trades the right token in the URL for the session cookie and a redirect without it', () => {
    const result = verdict(request({ url: '/?token=token-123&x=1' }));
    assert.deepEqual(result, { allow: false, login: true, location: '/?x=1' });
    assert.equal(sessionCookie(policy), 'jobworker-ui-8080=session-456; Path=/; HttpOnly; SameSite=Strict');
  });

  it('refuses a wrong token, and any request without the cookie (401)', () => {
    assert.equal(refusal(request({ url: '/?token=token-124' })), 401);
    assert.equal(refusal(request({ url: '/' })), 401);
    assert.equal(refusal(request({ url: '/assets/app.js' })), 401);
    assert.equal(refusal(request({ headers: { cookie: 'jobworker-ui-8080=session-45' } })), 401);
    assert.equal(refusal(request({ headers: { cookie: 'jobworker-ui-9090=session-456' } })), 401, "another port's cookie");
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: { origin: OWN } })), 401);
  });

  it('serves a signed-in browser', () => {
    assert.deepEqual(verdict(request({ headers: { cookie: `a=b; ${signedIn}` } })), { allow: true });
    assert.deepEqual(verdict(request({ headers: { cookie: signedIn, host: 'localhost:8080', 'sec-fetch-site': 'same-origin' } })), { allow: true });
    assert.deepEqual(verdict(request({ upgrade: true, url: '/api/ws', headers: { cookie: signedIn, origin: OWN } })), { allow: true });
  });

  it('refuses a Host that does not name this server (DNS rebinding), even with the cookie', () => {
    assert.equal(refusal(request({ headers: { cookie: signedIn, host: 'evil.example:8080' } })), 403);
    assert.equal(refusal(request({ headers: { cookie: signedIn, host: '127.0.0.1:8081' } })), 403);
    assert.equal(refusal(request({ url: '/?token=token-123', headers: { host: 'evil.example:8080' } })), 403);
  });

  it("refuses another Origin, a WebSocket without one, and other sites' sub-resource requests", () => {
    assert.equal(refusal(request({ headers: { cookie: signedIn, origin: 'http://localhost:9999' } })), 403);
    assert.equal(refusal(request({ headers: { cookie: signedIn, origin: 'null' } })), 403);
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: { cookie: signedIn } })), 403);
    assert.equal(refusal(request({ upgrade: true, url: '/api/ws', headers: { cookie: signedIn, origin: 'http://evil.example' } })), 403);
    // An <img> on another port of localhost: same-site, so SameSite=Strict cookies go along.
    assert.equal(refusal(request({ url: '/api/hosts/a/jobs/x/log', headers: { cookie: signedIn, 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors' } })), 403);
    // A link followed from elsewhere is a navigation: the page itself may open (it reveals nothing to the linking site).
    assert.deepEqual(verdict(request({ headers: { cookie: signedIn, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } })), { allow: true });
  });

  it('lets changes through only with the CSRF header and the own Origin', () => {
    const change = (headers: RequestFacts['headers']) => request({ method: 'POST', url: '/api/hosts/a/jobs', headers: { cookie: signedIn, ...headers } });
    assert.deepEqual(verdict(change({ origin: OWN, 'x-jobworker-csrf': 'csrf-789' })), { allow: true });
    assert.equal(refusal(change({ origin: OWN })), 403, 'no CSRF header');
    assert.equal(refusal(change({ origin: OWN, 'x-jobworker-csrf': 'csrf-78' })), 403, 'a wrong one');
    assert.equal(refusal(change({ 'x-jobworker-csrf': 'csrf-789' })), 403, 'no Origin');
    assert.equal(refusal(change({ origin: 'http://localhost:9999', 'x-jobworker-csrf': 'csrf-789' })), 403, 'another Origin');
    assert.equal(refusal(request({ method: 'POST', url: '/?token=token-123', headers: { origin: OWN } })), 403, 'the token opens pages only');
  });

  it('reads one cookie among several', () => {
    assert.equal(cookieValue('a=1; jobworker-ui-8080=xyz; b=2', 'jobworker-ui-8080'), 'xyz');
    assert.equal(cookieValue('a=1', 'jobworker-ui-8080'), undefined);
    assert.equal(cookieValue(undefined, 'jobworker-ui-8080'), undefined);
  });
});

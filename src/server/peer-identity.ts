// The identity of the client behind a gRPC call, from its TLS client certificate.
//
// grpc-js exposes the peer certificate on every server call and on the call seen by server
// interceptors (gRFC L35, grpc-node#2920, 2025; present in the installed 1.14.7):
// `call.getAuthContext()` returns `{ transportSecurityType: 'ssl', sslPeerCertificate }`, the
// latter Node's `tls.PeerCertificate` (with `.raw` DER), and only when the TLS socket is
// `authorized`, i.e. the chain verified against the server's CA (server-interceptors.ts:1040). Interceptors run before the handler is even started, so an unauthenticated
// call never reaches service code.
import type { PeerCertificate } from 'node:tls';
import {
  Metadata,
  ServerInterceptingCall,
  status as GrpcStatus,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from '@grpc/grpc-js';

import type { ReadSlot, RequestReads } from './request-reads';
import {
  CertificateIdentityError,
  identityFromCertificate,
  type CertificateIdentity,
} from '../pki/identity';

export { CertificateIdentityError, identityFromCertificate };
export type PeerIdentity = CertificateIdentity;

/** The part of any grpc-js server call (handler or interceptor view) this module needs. */
export interface CallWithAuthContext {
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } | null;
}

/** DER of the client certificate, or null if the call has none (plaintext, or not verified). */
export function peerCertificateOf(call: CallWithAuthContext): Buffer | null {
  const context = call.getAuthContext();
  if (context?.transportSecurityType !== 'ssl') return null;
  return context.sslPeerCertificate?.raw ?? null;
}

// Parsing a certificate costs more than the rest of a small call; one client presents the same
// certificate on every call, so identities are cached by the certificate's SHA-256 fingerprint.
const CACHE_LIMIT = 1024;
const cache = new Map<string, PeerIdentity>();

/**
 * What the interceptor found, by the call's Metadata object: grpc-js hands the handler the object
 * the interceptor passed on, so the handler need not ask the TLS socket again (even with the
 * daemon's per-connection certificate cache, ./peer-certificate-cache.ts, that is a fingerprint and
 * a lookup saved). Weak keys: an entry lives as long as its call. A client cannot reach this map:
 * it sends headers, grpc-js makes the object.
 */
const identityOfCall = new WeakMap<object, PeerIdentity>();

/**
 * The verified identity of the caller. Throws CertificateIdentityError (answer UNAUTHENTICATED)
 * if there is no verified certificate, it names no identity, or it expired since the connection
 * was made (connections outlive certificates; calls must not). A handler's call (one with the
 * `metadata` the interceptor saw) gets the identity the interceptor derived, checked again for time.
 */
export function peerIdentityOf(call: CallWithAuthContext & { metadata?: object }, now: Date = new Date()): PeerIdentity {
  const known = call.metadata === undefined ? undefined : identityOfCall.get(call.metadata);
  return checkedForTime(known ?? identityOnConnection(call), now);
}

function identityOnConnection(call: CallWithAuthContext): PeerIdentity {
  const context = call.getAuthContext();
  const certificate = context?.transportSecurityType === 'ssl' ? context.sslPeerCertificate : undefined;
  if (certificate?.raw === undefined) {
    throw new CertificateIdentityError('no verified client certificate on this connection');
  }
  const key = certificate.fingerprint256;
  let identity = cache.get(key);
  if (identity === undefined) {
    identity = identityFromCertificate(certificate.raw);
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(key, identity);
  }
  return identity;
}

function checkedForTime(identity: PeerIdentity, now: Date): PeerIdentity {
  if (now > identity.notAfter) {
    throw new CertificateIdentityError(
      `the certificate of ${identity.name} expired on ${identity.notAfter.toISOString()}; reconnect with a renewed one`,
    );
  }
  if (now < identity.notBefore) {
    throw new CertificateIdentityError(`the certificate of ${identity.name} is not valid yet`);
  }
  return identity;
}

/** A refusal: the gRPC status code and message to answer with. */
export interface CallRefusal {
  code: GrpcStatus;
  details: string;
}

export interface AuthenticationInterceptorOptions {
  /**
   * Called with the method path ("/jobworker.v1.JobService/StartJob") and the caller's identity
   * before the handler runs; return a refusal (e.g. PERMISSION_DENIED) to stop the call. RBAC
   * plugs in here.
   */
  authorize?: (methodPath: string, identity: PeerIdentity) => CallRefusal | null;
  /** Told about every refused call (for audit logs). */
  onRefused?: (methodPath: string, refusal: CallRefusal, identity: PeerIdentity | null) => void;
  /**
   * Called for every authorized call whose responses are a stream (StreamLogs, WatchJobs, health
   * Watch, reflection): returns the release (called once, when the call ends: status sent or
   * cancelled), or a refusal. Every stream is counted here, whichever service serves it.
   */
  admitStream?: (methodPath: string, identity: PeerIdentity) => (() => void) | CallRefusal;
  /**
   * Told the peer ("address:port", `call.getPeer()`) of every call whose client showed a usable
   * certificate, authorized or not: its connection is a client's, not a bare TCP connection.
   */
  onIdentified?: (peer: string) => void;
  /**
   * Bounds the calls of one identity reading a request at once (./request-reads.ts): the read of an
   * authorized call's request starts only once its identity has a slot.
   */
  reads?: RequestReads;
  /**
   * The same bound for calls with a stream of requests (reflection): such a call asks for its next
   * message as soon as it has one, and so holds a slot while it waits for the client's next message,
   * for as long as the client keeps it open. In `reads`, 32 idle reflection streams (grpcurl's,
   * a UI's) held every slot of their identity, and all its other calls waited for good.
   */
  streamReads?: RequestReads;
}

/** A call whose reads (grpc-js's startRead, which resumes the HTTP/2 stream) go through `gate`. */
class ReadGatedCall extends ServerInterceptingCall {
  readonly #gate: (read: () => void) => void;

  constructor(next: ServerInterceptingCallInterface, responder: ConstructorParameters<typeof ServerInterceptingCall>[1], gate: (read: () => void) => void) {
    super(next, responder);
    this.#gate = gate;
  }

  override startRead(): void {
    this.#gate(() => super.startRead());
  }
}

/**
 * A server interceptor that answers UNAUTHENTICATED to any call without a usable client
 * certificate, then applies `authorize`. Handlers get the identity again with `peerIdentityOf(call)`
 * (what the interceptor found, by the call's Metadata object): identity is derived from the TLS
 * session, never from anything a client sends.
 */
export function createAuthenticationInterceptor(options: AuthenticationInterceptorOptions = {}): ServerInterceptor {
  return (methodDescriptor, call: ServerInterceptingCallInterface) => {
    let release: (() => void) | null = null;
    let reader: string | null = null;
    let slot: ReadSlot | null = null;
    const readDone = () => {
      const held = slot;
      slot = null;
      held?.release();
    };
    const ended = () => {
      readDone();
      const done = release;
      release = null;
      done?.();
    };
    const reads = methodDescriptor.requestStream ? options.streamReads : options.reads;
    const gate = (read: () => void) => {
      if (reads === undefined || reader === null || slot !== null) {
        read();
        return;
      }
      // A slot granted at once is read from before acquire returns, and the message may already
      // be there: it is then received (and the slot released) within read(), so `slot` is set
      // before reading, never after.
      let granted = false;
      const acquired = reads.acquire(reader, (held) => {
        granted = true;
        slot = held;
        read();
      });
      if (!granted) slot = acquired;
    };
    return new ReadGatedCall(call, {
      start: (next) => {
        next({
          onCancel: ended,
          onReceiveMessage: (message, pass) => {
            // A unary request keeps its slot until its end arrives (a second message must not be
            // read unbounded); a stream of requests gives it back after each message.
            if (methodDescriptor.requestStream) readDone();
            pass(message);
          },
          onReceiveHalfClose: (pass) => {
            readDone();
            pass();
          },
          onReceiveMetadata: (metadata, pass) => {
            let identity: PeerIdentity | null = null;
            let refusal: CallRefusal | null;
            try {
              identity = peerIdentityOf(call);
              options.onIdentified?.(call.getPeer());
              refusal = options.authorize?.(methodDescriptor.path, identity) ?? null;
              if (refusal === null && methodDescriptor.responseStream && options.admitStream !== undefined) {
                const admitted = options.admitStream(methodDescriptor.path, identity);
                if (typeof admitted === 'function') release = admitted;
                else refusal = admitted;
              }
            } catch (error) {
              // Never let an exception escape into grpc-js's listener (it would be uncaught):
              // a certificate problem is UNAUTHENTICATED, anything else (a bug in authorize) INTERNAL.
              refusal =
                error instanceof CertificateIdentityError
                  ? { code: GrpcStatus.UNAUTHENTICATED, details: error.message }
                  : { code: GrpcStatus.INTERNAL, details: 'authorization failed' };
            }
            if (refusal === null) {
              identityOfCall.set(metadata, identity!);
              reader = identity!.name;
              pass(metadata);
              return;
            }
            options.onRefused?.(methodDescriptor.path, refusal, identity);
            call.sendStatus({ ...refusal, metadata: new Metadata() });
          },
        });
      },
      sendStatus: (status, next) => {
        ended();
        next(status);
      },
    }, gate);
  };
}

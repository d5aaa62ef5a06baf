// Waiting for "something changed" without polling: a stream's writer waits for grpc-js to take a
// message, a watch waits for the next status change. Either also stops waiting when its call is
// aborted (client gone, shutdown); the caller then checks the signal.

/** One waiter at a time: wait() resolves on the next wake() or when `signal` aborts. */
export class WakeUp {
  #wake: (() => void) | null = null;

  wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const onAbort = () => resolve();
      this.#wake = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  wake(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

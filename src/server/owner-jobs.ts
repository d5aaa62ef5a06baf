// Running jobs per owner, as the server started them: what the fd budget's per-identity share is
// checked against. Counted from the admission (before the Worker's start, so concurrent starts
// cannot both slip under the share) to the job's final state (or the start's failure).
import { isFinal, type Worker } from '../worker';

export class OwnerJobCounts {
  #running = new Map<string, number>();
  #unsubscribe: () => void;

  constructor(worker: Worker) {
    this.#unsubscribe = worker.subscribe((event) => {
      if (isFinal(event.status.state) && !isFinal(event.previousState)) this.#decrement(event.status.owner);
    });
  }

  running(owner: string): number {
    return this.#running.get(owner) ?? 0;
  }

  /** Counts a start of `owner`'s; call the returned function if the start failed. */
  starting(owner: string): () => void {
    this.#running.set(owner, this.running(owner) + 1);
    return () => this.#decrement(owner);
  }

  close(): void {
    this.#unsubscribe();
  }

  #decrement(owner: string): void {
    const left = this.running(owner) - 1;
    if (left <= 0) this.#running.delete(owner);
    else this.#running.set(owner, left);
  }
}

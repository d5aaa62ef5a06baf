// The Worker's finished jobs, in the order they finished, overall and per owner: what retention
// removes when there are too many. By count it takes the oldest job of the owner with the most, so
// that one identity's many short jobs push out its own older jobs, never another identity's.

export class FinishedJobs {
  /** Ids in the order their jobs finished. */
  #all = new Set<string>();
  #byOwner = new Map<string, Set<string>>();

  get size(): number {
    return this.#all.size;
  }

  /** Ids, the earliest finished first. */
  inOrder(): IterableIterator<string> {
    return this.#all.values();
  }

  add(id: string, owner: string): void {
    this.#all.add(id);
    let mine = this.#byOwner.get(owner);
    if (mine === undefined) this.#byOwner.set(owner, (mine = new Set()));
    mine.add(id);
  }

  delete(id: string, owner: string): void {
    this.#all.delete(id);
    const mine = this.#byOwner.get(owner);
    mine?.delete(id);
    if (mine?.size === 0) this.#byOwner.delete(owner);
  }

  /** The earliest finished job of the owner with the most finished jobs (ties: the earliest of theirs). */
  nextToEvict(): string | undefined {
    let pick: string | undefined;
    let most = 0;
    for (const mine of this.#byOwner.values()) {
      const earliest = mine.values().next().value as string;
      if (mine.size > most || (mine.size === most && pick !== undefined && this.#finishedBefore(earliest, pick))) {
        most = mine.size;
        pick = earliest;
      }
    }
    return pick;
  }

  #finishedBefore(a: string, b: string): boolean {
    for (const id of this.#all) {
      if (id === a) return true;
      if (id === b) return false;
    }
    return false;
  }
}

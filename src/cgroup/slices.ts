// Which identity slices exist, and who is in them. A slice is made by the create ops of the first job
// that needs it (the one path: its directories and limits go into that job's spawn), kept while the
// identity has a job, and kept after its last job too (the next job of a serial runner reuses it),
// up to MAX_IDLE_SLICES idle ones: beyond that the least recently used idle slice is removed. A slice
// being made or removed is waited for, so no job is planned into a slice that is going away, and no
// two jobs make the same slice.
import { errorCode } from '../errors';
import { cgroupOpError, type CgroupFs, type CgroupOp } from './cgroup-fs';
import { sliceNameOf } from './slice-name';
import type { CreateOutcome } from './types';

/** Idle slices kept (each is a few cgroups of kernel memory: bounded, whatever the number of identities). */
export const MAX_IDLE_SLICES = 64;

/** How a driver makes, removes and finds a slice. */
export interface SliceOps {
  /** mkdirs and limit writes of the slice, in order (before the job's own ops). */
  createOps(name: string, identity: string): Promise<CgroupOp[]>;
  /** rmdirs of the slice in every hierarchy (optional: a directory already gone is fine). */
  removeOps(name: string): CgroupOp[];
  /** Whether the slice exists (its main directory). */
  exists(name: string): Promise<boolean>;
}

/** A job's place in its identity's slice, from planning until its cgroup is gone. */
export interface SliceLease {
  readonly name: string;
  /** The slice's create ops, when this job makes it; empty when it exists. */
  readonly createOps: readonly CgroupOp[];
  /** Says what became of createOps (call once the spawn returned or failed). */
  createOpsRan(outcome: CreateOutcome): void;
  /** The job's cgroup is gone (or was never made). Resolves once an idle slice it let go of is removed. */
  leave(): Promise<void>;
}

type State = 'unknown' | 'absent' | 'creating' | 'present' | 'removing';

interface Slice {
  state: State;
  /** Jobs planned into it whose cgroups are not gone yet. */
  members: number;
  /** Settles when a creation or removal in progress ends. */
  change: Promise<void> | null;
}

const NO_OPS: readonly CgroupOp[] = Object.freeze([]);
const NOTHING_TO_REPORT = (): void => undefined;

/**
 * A class rather than an object of closures: every running job holds one, and closures with their
 * shared context cost ~250 bytes a job more.
 */
class Lease implements SliceLease {
  #reported: boolean;
  #left = false;

  constructor(
    private readonly registry: SliceRegistry,
    readonly name: string,
    private readonly slice: Slice,
    readonly createOps: readonly CgroupOp[],
    private readonly ran: (outcome: CreateOutcome) => void,
  ) {
    this.#reported = createOps.length === 0;
  }

  createOpsRan(outcome: CreateOutcome): void {
    if (this.#reported) return;
    this.#reported = true;
    this.ran(outcome);
  }

  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    if (!this.#reported) {
      this.#reported = true;
      this.ran('unknown');
    }
    await this.registry.memberLeft(this.name, this.slice);
  }
}

export class SliceRegistry {
  #slices = new Map<string, Slice>();
  /** Slices with no member, least recently used first (a Map keeps insertion order). */
  #idle = new Map<string, true>();

  constructor(
    private readonly fs: CgroupFs,
    private readonly ops: SliceOps,
    private readonly maxIdle = MAX_IDLE_SLICES,
  ) {}

  /** Joins the identity's slice, waiting for a creation or removal in progress; the lease says whether to make it. */
  async enter(identity: string): Promise<SliceLease> {
    const name = sliceNameOf(identity);
    for (;;) {
      const slice = this.#slice(name);
      if (slice.change !== null) {
        await slice.change.catch(() => undefined);
        continue;
      }
      if (slice.state === 'unknown') {
        await this.#transition(slice, async () => {
          slice.state = (await this.ops.exists(name)) ? 'present' : 'absent';
        });
        continue;
      }
      slice.members++;
      this.#idle.delete(name);
      if (slice.state === 'present') return new Lease(this, name, slice, NO_OPS, NOTHING_TO_REPORT);
      // Absent: this job makes it; others wait until its spawn says how that went (from now on:
      // the ops are built asynchronously, and a job planned meanwhile must not make it too).
      slice.state = 'creating';
      let settle!: () => void;
      slice.change = new Promise((resolve) => (settle = resolve));
      let createOps: CgroupOp[];
      try {
        createOps = await this.ops.createOps(name, identity);
      } catch (error) {
        slice.state = 'absent';
        slice.members--;
        slice.change = null;
        settle();
        throw error;
      }
      return new Lease(this, name, slice, createOps, (outcome) => {
        // Undone: the addon removed what this batch made, but a slice that was there all along (made
        // by a daemon before this one) is not this batch's; look again next time.
        slice.state = outcome === 'created' ? 'present' : 'unknown';
        slice.change = null;
        settle();
      });
    }
  }

  /** Slices with no member (for removal at shutdown and after recovery). */
  idleNames(): string[] {
    return [...this.#idle.keys()];
  }

  /**
   * Removes every slice that has no member; `names` adds slices this registry never saw (found on
   * disk). `evenWithMembers`: every slice (the caller knows no job cgroup is left: a member that
   * never left is a caller that forgot to).
   */
  async removeIdle(names: readonly string[] = [], options: { evenWithMembers?: boolean } = {}): Promise<void> {
    for (const name of names) {
      const slice = this.#slice(name);
      if (slice.state === 'absent') slice.state = 'unknown'; // it is there after all
    }
    for (const [name, slice] of this.#slices) {
      if (options.evenWithMembers === true) slice.members = 0;
      if (slice.members === 0 && slice.change === null && slice.state !== 'absent') this.#idle.set(name, true);
    }
    const failures: unknown[] = [];
    for (const name of [...this.#idle.keys()]) await this.#remove(name).catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw failures[0];
  }

  #slice(name: string): Slice {
    let slice = this.#slices.get(name);
    if (slice === undefined) {
      slice = { state: 'unknown', members: 0, change: null };
      this.#slices.set(name, slice);
    }
    return slice;
  }

  /** A member left `slice` (Lease.leave, once per lease). */
  async memberLeft(name: string, slice: Slice): Promise<void> {
    slice.members--;
    if (slice.members > 0) return;
    this.#idle.set(name, true);
    if (this.#idle.size > this.maxIdle) await this.#remove(this.#idle.keys().next().value!);
  }

  async #remove(name: string): Promise<void> {
    const slice = this.#slice(name);
    if (slice.members > 0 || slice.change !== null) return;
    this.#idle.delete(name);
    if (slice.state === 'absent') return;
    await this.#transition(slice, async () => {
      const ops = this.ops.removeOps(name);
      const report = await this.fs.run(ops);
      if (report.error === undefined) {
        slice.state = 'absent';
        this.#slices.delete(name);
        return;
      }
      // Still there (a job cgroup that would not go away is in it): kept, tried again later.
      slice.state = 'unknown';
      if (errorCode(report.error) === 'EBUSY') this.#idle.set(name, true);
      throw cgroupOpError(ops[report.completed]!, report.error);
    });
  }

  async #transition(slice: Slice, work: () => Promise<void>): Promise<void> {
    const change = work();
    slice.change = change;
    try {
      await change;
    } finally {
      slice.change = null;
    }
  }
}

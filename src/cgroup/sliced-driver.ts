// What both drivers do the same way once they know where a cgroup's directories are: jobs in their
// identity's slice (<base>/jobs/<slice>/<id>), the slices themselves (made by the create ops of the
// first job that needs one, see ./slices.ts), listing and opening what a crash left, and an
// identity's usage read from its slice. The drivers say where the directories are and what each
// limit writes (./v2/driver.ts, ./v1/driver.ts).
import { errorCode, JobworkerError, ValidationError } from '../errors';
import { childPath, cgroupFsError, listChildren, type CgroupFs, type CgroupOp } from './cgroup-fs';
import { CgroupPlan, cgroupOfParts, createOpsOf, limitsInForce, type JobCgroupParts } from './job-cgroup';
import { checkJobId, isJobId } from './job-id';
import { prepareLimits, prepareSliceLimits } from './job-limits';
import type { ResolvedLimits } from './limits';
import { isSliceName, sliceNameOf } from './slice-name';
import { SliceRegistry } from './slices';
import type { CgroupDriver, CgroupMode, CgroupStats, JobCgroup, JobCgroupName, JobCgroupPlan, JobOwnerRef, Limits, ResourceController } from './types';

/** An identity's slice limits (defaults and overrides resolved by the caller); {} for none. */
export type SliceLimitsOf = (identity: string) => Limits;

export abstract class SlicedDriver<Writes> implements CgroupDriver {
  abstract readonly mode: CgroupMode;
  abstract readonly jobsRoot: string;
  abstract readonly controllers: ReadonlySet<ResourceController>;
  readonly #slices: SliceRegistry;

  constructor(
    readonly fs: CgroupFs,
    protected readonly sysRoot: string | undefined,
    private readonly sliceLimitsOf: SliceLimitsOf,
  ) {
    this.#slices = new SliceRegistry(fs, {
      createOps: (name, identity) => this.#sliceCreateOps(name, identity),
      removeOps: (name) => [...this.partsAt(name, name).dirs].reverse().map(({ dir }): CgroupOp => ({ op: 'rmdir', path: dir, optional: true })),
      exists: (name) => this.#exists(name),
    });
  }

  /** The limit writes of a job's directories. */
  protected abstract jobWrites(limits: ResolvedLimits): Writes;
  /** The limit writes of a slice's directories (and what lets its jobs have controllers). */
  protected abstract sliceWrites(limits: ResolvedLimits): Writes;
  /** A cgroup at `rel` (a path below the jobs directory) in every hierarchy, with `writes` if it is to be made. */
  protected abstract partsAt(rel: string, id: string, writes?: Writes): JobCgroupParts;
  /** The jobs directory of every hierarchy the driver uses (listing looks in all). */
  protected abstract jobsDirs(): readonly string[];

  async plan(job: JobOwnerRef, limits: Limits, cwd: string): Promise<JobCgroupPlan> {
    checkJobId(job.id);
    const slice = await this.#resolvedSliceLimits(job.identity);
    const resolved = await prepareLimits(limits, cwd, this.controllers, this.sysRoot, slice);
    const lease = await this.#slices.enter(job.identity);
    return new CgroupPlan(this.partsAt(`${lease.name}/${job.id}`, job.id, this.jobWrites(resolved)), limitsInForce(limits, resolved), lease);
  }

  /** Job cgroups in any hierarchy: a crash half-way through create ops leaves some. */
  async listJobs(): Promise<JobCgroupName[]> {
    const found = new Map<string, JobCgroupName>();
    for (const jobsDir of this.jobsDirs()) {
      for (const child of await listChildren(this.fs, jobsDir)) {
        if (isJobId(child)) found.set(child, { id: child });
        else if (isSliceName(child)) {
          for (const id of await listChildren(this.fs, childPath(jobsDir, child))) {
            if (isJobId(id)) found.set(`${child}/${id}`, { id, slice: child });
          }
        }
      }
    }
    return [...found.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, name]) => name);
  }

  async open(name: JobCgroupName): Promise<JobCgroup | undefined> {
    checkJobId(name.id);
    if (name.slice !== undefined && !isSliceName(name.slice)) throw new ValidationError('slice', `not a slice name: ${JSON.stringify(name.slice)}`);
    const rel = name.slice === undefined ? name.id : `${name.slice}/${name.id}`;
    for (const jobsDir of this.jobsDirs()) {
      const parent = name.slice === undefined ? jobsDir : childPath(jobsDir, name.slice);
      if ((await listChildren(this.fs, parent)).includes(name.id)) return cgroupOfParts(this.partsAt(rel, name.id));
    }
    return undefined;
  }

  sliceOf(identity: string): string {
    return sliceNameOf(identity);
  }

  async sliceLimits(identity: string): Promise<Limits> {
    const resolved = await this.#resolvedSliceLimits(identity);
    const limits: Limits = Object.assign({}, this.sliceLimitsOf(identity));
    if (resolved.io.length > 0) limits.io = resolved.io.map((io) => ({ ...io }));
    return limits;
  }

  async sliceStats(identity: string): Promise<CgroupStats | null> {
    const name = sliceNameOf(identity);
    try {
      return await cgroupOfParts(this.partsAt(name, name)).stats();
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENODEV') return null;
      throw error;
    }
  }

  /** Refuses (naming them) while job cgroups remain: a root is released only once it holds none. */
  protected async checkNoJobs(): Promise<void> {
    const left = await this.listJobs();
    if (left.length === 0) return;
    const names = left.slice(0, 5).map((name) => (name.slice === undefined ? name.id : `${name.slice}/${name.id}`));
    throw new JobworkerError('failed-precondition', `job cgroups remain in ${this.jobsRoot} (${names.join(', ')}${left.length > 5 ? ', …' : ''}): destroy them first`);
  }

  async removeIdleSlices(): Promise<void> {
    await this.#slices.removeIdle(await this.#slicesOnDisk());
  }

  /** Every slice goes (releaseRoot, after checkNoJobs). */
  protected async removeAllSlices(): Promise<void> {
    await this.#slices.removeIdle(await this.#slicesOnDisk(), { evenWithMembers: true });
  }

  async #slicesOnDisk(): Promise<string[]> {
    const onDisk = new Set<string>();
    for (const jobsDir of this.jobsDirs()) for (const child of await listChildren(this.fs, jobsDir)) if (isSliceName(child)) onDisk.add(child);
    return [...onDisk];
  }

  #resolvedSliceLimits(identity: string): Promise<ResolvedLimits> {
    return prepareSliceLimits(this.sliceLimitsOf(identity), 'sliceLimits', this.controllers, this.sysRoot, this.mode);
  }

  async #sliceCreateOps(name: string, identity: string): Promise<CgroupOp[]> {
    return createOpsOf(this.partsAt(name, name, this.sliceWrites(await this.#resolvedSliceLimits(identity))).dirs);
  }

  async #exists(name: string): Promise<boolean> {
    const { populated } = this.partsAt(name, name);
    try {
      await this.fs.read(populated.file);
      return true;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false;
      throw cgroupFsError('read', populated.file, error);
    }
  }
}

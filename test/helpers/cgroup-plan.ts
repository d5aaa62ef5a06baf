// Job cgroups made outside a spawn, for tests: the same plan and the same ops the addon runs inside a
// spawn, through the driver's own ops runner.
import { sliceNameOf, type CgroupDriver, type CgroupOp, type JobCgroup, type JobCgroupPlan, type Limits } from '../../src/cgroup/index';

/** The slice createJobCgroup puts jobs in unless told otherwise. */
export const TEST_SLICE = sliceNameOf('test');

/** A job cgroup made by a test, with the plan it was made from (its placement, its settle ops). */
export type CreatedCgroup = JobCgroup & { readonly plan: JobCgroupPlan };

/**
 * Creates a job's cgroup as the addon's spawn does: the plan's create ops through the driver's ops
 * runner, the directories made so far removed again if one fails (the addon's setup contract). The
 * job goes in `identity`'s slice (made by these ops if it does not exist).
 */
export async function createJobCgroup(driver: CgroupDriver, id: string, limits: Limits = {}, cwd = '/', identity = 'test'): Promise<CreatedCgroup> {
  const plan = await driver.plan({ id, identity }, limits, cwd);
  const report = await driver.fs.run(plan.createOps);
  plan.createOpsRan(report.error === undefined ? 'created' : 'undone');
  if (report.error !== undefined) {
    const undo = plan.createOps
      .slice(0, report.completed)
      .filter((op) => op.op === 'mkdir')
      .reverse()
      .map((op): CgroupOp => ({ op: 'rmdir', path: op.path, optional: true }));
    await driver.fs.run(undo);
    await plan.release();
    throw plan.creationError(report);
  }
  // What the spawn writes once the job's process has exec'd.
  const started = await driver.fs.run(plan.startedOps);
  if (started.error !== undefined) throw started.error;
  // Destroying it also lets its slice go, as the Worker does once a job's cgroup is gone.
  const cgroup = plan.cgroup;
  const destroy = cgroup.destroy.bind(cgroup);
  return Object.assign(cgroup, {
    plan,
    async destroy() {
      await destroy();
      await plan.release();
    },
  });
}


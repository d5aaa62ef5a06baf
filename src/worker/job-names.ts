// Which job has which name: a name is unique among one owner's jobs that the Worker keeps (running
// or finished, until removed), like docker's container names; other owners may use it too. Taken
// synchronously at start (before anything is awaited), so of concurrent starts with one name
// exactly one gets it; given back when the job is removed or its start fails.

export class JobNames {
  /** name → owner → job id. */
  #byName = new Map<string, Map<string, string>>();

  /** The id of `owner`'s job named `name`. */
  idOf(owner: string, name: string): string | undefined {
    return this.#byName.get(name)?.get(owner);
  }

  /** The ids of every job named `name`, whoever owns it. */
  idsOf(name: string): string[] {
    return [...(this.#byName.get(name)?.values() ?? [])];
  }

  /** Gives `name` to job `id` of `owner`; if another job of the owner has it, changes nothing and returns that job's id. */
  claim(owner: string, name: string, id: string): string | null {
    let owners = this.#byName.get(name);
    const holder = owners?.get(owner);
    if (holder !== undefined && holder !== id) return holder;
    if (owners === undefined) this.#byName.set(name, (owners = new Map()));
    owners.set(owner, id);
    return null;
  }

  /** Frees `name` if job `id` has it (a job whose name another job had at recovery never got it). */
  release(owner: string, name: string, id: string): void {
    const owners = this.#byName.get(name);
    if (owners?.get(owner) !== id) return;
    owners.delete(owner);
    if (owners.size === 0) this.#byName.delete(name);
  }
}

// @peculiar/x509 finds its algorithm implementations through tsyringe, and tsyringe refuses to load
// unless the Reflect metadata API exists (normally provided by the `reflect-metadata` package).
// Use that package when it is installed; otherwise provide the three functions tsyringe calls
// (getMetadata, getOwnMetadata, defineMetadata) with reflect-metadata's semantics. Must be
// imported before '@peculiar/x509'.

type MetadataKey = unknown;
type Target = object;
type TargetMetadata = Map<string | symbol | undefined, Map<MetadataKey, unknown>>;

interface ReflectMetadataApi {
  getMetadata?: (key: MetadataKey, target: Target, property?: string | symbol) => unknown;
  getOwnMetadata?: (key: MetadataKey, target: Target, property?: string | symbol) => unknown;
  defineMetadata?: (key: MetadataKey, value: unknown, target: Target, property?: string | symbol) => void;
}

function installReflectMetadata(): void {
  const api = Reflect as unknown as ReflectMetadataApi;
  if (typeof api.getMetadata === 'function') return;
  try {
    require('reflect-metadata');
    return;
  } catch {
    // not installed: fall through to the minimal version
  }
  const store = new WeakMap<Target, TargetMetadata>();
  const own = (target: Target, property?: string | symbol): Map<MetadataKey, unknown> | undefined =>
    store.get(target)?.get(property);
  api.getOwnMetadata = (key, target, property) => own(target, property)?.get(key);
  api.getMetadata = (key, target, property) => {
    // Like reflect-metadata: look on the object, then along its prototype chain.
    for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
      const map = own(t, property);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  api.defineMetadata = (key, value, target, property) => {
    let byProperty = store.get(target);
    if (byProperty === undefined) store.set(target, (byProperty = new Map()));
    let map = byProperty.get(property);
    if (map === undefined) byProperty.set(property, (map = new Map()));
    map.set(key, value);
  };
}

installReflectMetadata();

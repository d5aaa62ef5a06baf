export { execCandidates, DEFAULT_PATH } from './exec-path';
export {
  NativeProcess,
  SpawnError,
  signalName,
  signalNumber,
  spawnProcess,
  spawnProcessAsync,
  type CloseInfo,
  type ExitInfo,
  type SpawnOptions,
  type SpawnStage,
} from './process';

// Which files to try for a command, in order, as execvp(3) would: a name with a slash is used as
// given; otherwise each PATH entry in turn (an empty entry means the working directory).

/** PATH when the job's environment has none: the one systemd gives services. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function execCandidates(command: string, pathVariable: string | undefined): string[] {
  if (command.includes('/')) return [command];
  const entries = (pathVariable ?? DEFAULT_PATH).split(':');
  return entries.map((dir) => (dir === '' ? command : `${dir.replace(/\/+$/, '')}/${command}`));
}

// Byte counts for people, in IEC units ("512 B", "1.5 KiB", "128 MiB"): what error messages and
// job-cli's output say instead of long numbers. Dependency-free, so every layer can use it.

function trimNumber(value: number, digits: number): string {
  return value.toFixed(digits).replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
}

/** IEC: "512 B", "1.5 KiB", "128 MiB", "1.25 GiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? String(value) : trimNumber(value, value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** For a message: "1 MiB (1048576 bytes)", or "100 bytes" when the unit would not shorten it. */
export function describeBytes(bytes: number): string {
  return Math.abs(bytes) < 1024 ? `${bytes} bytes` : `${formatBytes(bytes)} (${bytes} bytes)`;
}

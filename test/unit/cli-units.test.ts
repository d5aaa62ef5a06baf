// job-cli's parsers for human sizes, durations and times, and the formatters its output uses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  formatAgo,
  formatBytes,
  formatDuration,
  formatPercent,
  formatRate,
  parseDeviceValue,
  parseDuration,
  parseInteger,
  parsePositiveNumber,
  parseSince,
  parseSize,
  UnitError,
} from '../../src/cli/job-cli/units';

function refuses(parse: () => unknown, message: RegExp): void {
  assert.throws(parse, (error: unknown) => error instanceof UnitError && message.test(error.message));
}

describe('parseSize (1024-based)', () => {
  it('reads K, M, G, T in any case, and their IEC spellings, as powers of 1024', () => {
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('100B'), 100);
    assert.equal(parseSize('1K'), 1024);
    assert.equal(parseSize('256M'), 256 * 2 ** 20);
    assert.equal(parseSize('256m'), 256 * 2 ** 20);
    assert.equal(parseSize('256MiB'), 256 * 2 ** 20);
    assert.equal(parseSize('256Mi'), 256 * 2 ** 20);
    assert.equal(parseSize('1.5G'), 1.5 * 2 ** 30);
    assert.equal(parseSize('2T'), 2 * 2 ** 40);
    assert.equal(parseSize('.5K'), 512);
    assert.equal(parseSize('128 M'), 128 * 2 ** 20);
  });

  it('rounds fractions to the nearest byte', () => {
    assert.equal(parseSize('0.1K'), 102);
    assert.equal(parseSize('1.1G'), Math.round(1.1 * 2 ** 30));
  });

  it('refuses ambiguous SI spellings, unknown units and junk', () => {
    refuses(() => parseSize('256MB'), /"MB" is ambiguous: write M or MiB/);
    refuses(() => parseSize('1kb'), /ambiguous/);
    refuses(() => parseSize('12X'), /unknown size unit "X"/);
    refuses(() => parseSize('1.5.5M'), /expected a size/);
    refuses(() => parseSize('-1M'), /must not be negative/);
    refuses(() => parseSize(''), /expected a size/);
    refuses(() => parseSize('M'), /expected a size/);
    refuses(() => parseSize('1e3'), /expected a size/);
    refuses(() => parseSize('99999999T'), /too large/);
  });
});

describe('parseDuration', () => {
  it('reads ms, s, m, h, d and sums compound durations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('0s'), 0);
  });

  it('refuses a bare number (with a hint), unknown units and junk', () => {
    refuses(() => parseDuration('10'), /add a unit/);
    refuses(() => parseDuration('10sec'), /expected a duration/);
    refuses(() => parseDuration('5 s'), /expected a duration/);
    refuses(() => parseDuration('-5s'), /must not be negative/);
    refuses(() => parseDuration(''), /expected a duration/);
    refuses(() => parseDuration('1w'), /expected a duration/);
  });
});

describe('parseSince', () => {
  const now = new Date('2024-05-01T12:00:00Z');

  it('reads a duration before now', () => {
    assert.equal(parseSince('10m', now).toISOString(), '2024-05-01T11:50:00.000Z');
    assert.equal(parseSince('1h30m', now).toISOString(), '2024-05-01T10:30:00.000Z');
  });

  it('reads RFC 3339 times with a zone', () => {
    assert.equal(parseSince('2024-05-01T10:00:00Z', now).toISOString(), '2024-05-01T10:00:00.000Z');
    assert.equal(parseSince('2024-05-01T10:00:00.250+02:00', now).toISOString(), '2024-05-01T08:00:00.250Z');
    assert.equal(parseSince('2024-05-01 10:00:00z', now).toISOString(), '2024-05-01T10:00:00.000Z');
  });

  it('refuses times without a zone, impossible dates and junk', () => {
    refuses(() => parseSince('2024-05-01T10:00:00', now), /RFC 3339/);
    refuses(() => parseSince('2024-13-01T10:00:00Z', now), /not a valid time/);
    refuses(() => parseSince('yesterday', now), /expected a duration like 10m or an RFC 3339 time/);
  });
});

describe('device values, integers and numbers', () => {
  it('splits DEV=VALUE at the last "=", a value alone meaning no device', () => {
    assert.deepEqual(parseDeviceValue('/dev/sda=10M', parseSize), { device: '/dev/sda', value: 10 * 2 ** 20 });
    assert.deepEqual(parseDeviceValue('8:0=1K', parseSize), { device: '8:0', value: 1024 });
    assert.deepEqual(parseDeviceValue('5M', parseSize), { device: '', value: 5 * 2 ** 20 });
    refuses(() => parseDeviceValue('=5M', parseSize), /device before "=" is empty/);
    refuses(() => parseDeviceValue('/dev/sda=', parseSize), /expected a size/);
  });

  it('reads whole numbers within bounds', () => {
    assert.equal(parseInteger('100', 1, 1000), 100);
    refuses(() => parseInteger('0', 1, 1000), /from 1 to 1000, got 0/);
    refuses(() => parseInteger('1.5', 1, 1000), /whole number/);
    refuses(() => parseInteger('ten', 1, 1000), /whole number/);
  });

  it('reads positive numbers', () => {
    assert.equal(parsePositiveNumber('0.5'), 0.5);
    assert.equal(parsePositiveNumber('2'), 2);
    refuses(() => parsePositiveNumber('0'), /more than 0/);
    refuses(() => parsePositiveNumber('-1'), /must be positive \(more than 0\), got -1/);
    refuses(() => parseInteger('-3', 1, 1000), /from 1 to 1000, got -3/);
    refuses(() => parsePositiveNumber('half'), /expected a number/);
  });
});

describe('formatters', () => {
  it('formats sizes in IEC units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(128 * 2 ** 20), '128 MiB');
    assert.equal(formatBytes(12.34 * 2 ** 20), '12.3 MiB');
    assert.equal(formatBytes(1.25 * 2 ** 30), '1.25 GiB');
  });

  it('formats rates in SI units per second', () => {
    assert.equal(formatRate(0), '0 B/s');
    assert.equal(formatRate(850_000), '850 kB/s');
    assert.equal(formatRate(12_500_000), '12.5 MB/s');
  });

  it('formats durations', () => {
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(1500), '1.5s');
    assert.equal(formatDuration(12_340), '12.3s');
    assert.equal(formatDuration(303_000), '5m03s');
    assert.equal(formatDuration(7_500_000), '2h05m');
    assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000), '3d04h');
  });

  it('formats times relative to now', () => {
    const now = new Date('2024-05-01T12:00:00Z');
    assert.equal(formatAgo(new Date('2024-05-01T11:59:59.500Z'), now), 'just now');
    assert.equal(formatAgo(new Date('2024-05-01T11:59:55Z'), now), '5s ago');
    assert.equal(formatAgo(new Date('2024-05-01T11:57:00Z'), now), '3m ago');
    assert.equal(formatAgo(new Date('2024-05-01T09:30:00Z'), now), '2h ago');
    assert.equal(formatAgo(new Date('2024-05-01T12:00:05Z'), now), 'in 5s');
  });

  it('formats CPU percentages', () => {
    assert.equal(formatPercent(0), '0%');
    assert.equal(formatPercent(5.234), '5.23%');
    assert.equal(formatPercent(45.25), '45.3%');
    assert.equal(formatPercent(200), '200%');
  });
});

#!/bin/busybox sh
# PID 1 of the cgroup v2 test VM (packed into its initramfs by run-v2.ts, next to a static busybox
# and the kernel modules listed in /modules, numbered in load order).
#
# Builds the test system: the host's root over 9p (read-only) under a tmpfs overlay, so everything
# is writable and nothing reaches the host; the VM's own /proc, /sys, /dev; ONLY cgroup2 at
# /sys/fs/cgroup; tmpfs on /tmp and /run; the control directory (read-write 9p) at
# /run/jobworker-vm; the scratch filesystem (partition 1 of the disk with serial jobworker-fs) at
# /var/tmp; loopback up. Then it chroots
# and runs /run/jobworker-vm/start.sh (written by the host), and powers off. Any failure here
# powers off at once: the host then finds no summary.json and reports the run as failed.
#
# Names shared with protocol.ts: the mount tags "host", "ctl" and "repo", the serial "jobworker-fs", the
# mount points, the console marker, and the watchdog's heartbeat and session-id files in /run.

[ "$1" = watchdog ] || /bin/busybox --install -s /bin
export PATH=/bin
MARKER='##jobworker-vm##'
NEW=/newroot
CTL=/run/jobworker-vm

# The watchdog: a beat on the console every 20 s (so the host can tell a silent kernel from a
# slow one), and, once the runner's own heartbeat (its uptime, rewritten every 10 s in
# /run/jobworker-vm-heartbeat) has not changed for STALL_TICKS beats in a row (~120 s), what every
# task is blocked in, then a "stalled" marker: the host kills the VM then and reruns the rest in a
# fresh one. Beats are counted, not clock readings compared: a guest clock that jumps (qemu
# descheduled on a busy host) must not look like a stall. A session of its own, so the runner can
# tell its processes (the sleeps) from the tests' strays: init starts it as
# `setsid /bin/sh /init watchdog`, and it writes its session id to /run/jobworker-vm-watchdog.sid.
# (BEAT_S, STALL_TICKS and WATCHDOG_ROOT are for test/unit/vm-harness.test.ts, which runs the
# watchdog on the host against a directory of its own.)
WATCHDOG_RUN="${WATCHDOG_ROOT:-$NEW}/run"
HEARTBEAT="$WATCHDOG_RUN/jobworker-vm-heartbeat"
BEAT_S=${BEAT_S:-20}
STALL_TICKS=${STALL_TICKS:-6}
dump_tasks() {
  echo "[vm-watchdog] the runner has not beaten for ~$1 s; tasks and where they wait:"
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    # cmdline takes the process's mmap lock, which a stalled process may hold or wait for: bounded.
    # comm, status, wchan and stack do not.
    cmd=$(timeout -s KILL 2 tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | cut -c1-160)
    state=$(sed -n 's/^State:[[:space:]]*//p' "$dir/status" 2>/dev/null)
    # Kernel threads have no command line; only those blocked (D) matter.
    [ -z "$cmd" ] && [ "${state%% *}" != D ] && continue
    for task in "$dir"/task/[0-9]*; do
      tstate=$(sed -n 's/^State:[[:space:]]*//p' "$task/status" 2>/dev/null)
      echo "[vm-watchdog] pid $pid task ${task##*/} [$tstate] wchan=$(cat "$task/wchan" 2>/dev/null) ${cmd:-[$(cat "$dir/comm" 2>/dev/null)]}"
      sed "s/^/[vm-watchdog]     /" "$task/stack" 2>/dev/null | head -12
    done
  done
  grep -H . /proc/pressure/* 2>/dev/null | sed "s/^/[vm-watchdog] /"
}
watchdog() {
  echo $$ >"$WATCHDOG_RUN/jobworker-vm-watchdog.sid"
  seen=
  same=0
  dumped=
  # `while :`, not `while sleep`: a sleep killed by anyone must not end the beats.
  while :; do
    sleep "$BEAT_S"
    echo "$MARKER beat $(cut -d' ' -f1 /proc/uptime)"
    last=$(cat "$HEARTBEAT" 2>/dev/null) || continue
    [ -n "$last" ] || continue
    if [ "$last" != "$seen" ]; then
      seen=$last
      same=0
      dumped=
      continue
    fi
    same=$((same + 1))
    [ "$same" -ge "$STALL_TICKS" ] || continue
    [ -n "$dumped" ] && continue
    dumped=1
    whole=${BEAT_S%%.*} # (the tests beat in fractions of a second)
    dump_tasks $((same * ${whole:-0}))
    echo "$MARKER stalled runner $((same * ${whole:-0}))"
  done
}
if [ "$1" = watchdog ]; then
  watchdog
  exit 0
fi

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1

verbose=
grep -q 'jobworker.verbose=1' /proc/cmdline && verbose=1
say() { [ -n "$verbose" ] && echo "[vm-init $(cut -d' ' -f1 /proc/uptime)s] $*"; return 0; }
fatal() {
  echo "$MARKER fatal: $*"
  sync
  poweroff -f
  sleep 10
  echo o >/proc/sysrq-trigger
}

say "loading modules"
for module in /modules/*.ko; do
  insmod "$module" || fatal "insmod $module failed"
done

say "mounting the host root (9p, read-only) under a tmpfs overlay"
mkdir -p /lower /rw "$NEW"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host /lower || fatal "9p mount of the host root failed"
mount -t tmpfs -o mode=755 rw /rw || fatal "tmpfs for the overlay failed"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay "$NEW" || fatal "overlay mount failed"

say "mounting /proc /sys /dev, cgroup2, tmpfs"
mount -t proc proc "$NEW/proc" || fatal "proc"
mount -t sysfs sys "$NEW/sys" || fatal "sysfs"
# The options systemd uses on pure v2 hosts.
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 "$NEW/sys/fs/cgroup" || fatal "cgroup2 mount failed"
mount -t devtmpfs dev "$NEW/dev" || fatal "devtmpfs"
mkdir -p "$NEW/dev/pts" "$NEW/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$NEW/dev/pts" || fatal "devpts"
mount -t tmpfs -o mode=1777 shm "$NEW/dev/shm" || fatal "shm"
mount -t tmpfs -o mode=1777 tmp "$NEW/tmp" || fatal "tmpfs /tmp"
mount -t tmpfs -o mode=755 run "$NEW/run" || fatal "tmpfs /run"
mkdir -p "$NEW$CTL"
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 ctl "$NEW$CTL" || fatal "9p mount of the control directory failed"

# The checkout again, at its own path, writable through its own overlay: a clone under /tmp (or any
# path the mounts above cover) would otherwise be hidden by the VM's tmpfs. The host names it in
# $CTL/repo-dir.
repo=$(cat "$NEW$CTL/repo-dir") || fatal "no repo-dir in the control directory"
mkdir -p /repo-lower /rw/repo-upper /rw/repo-work "$NEW$repo"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 repo /repo-lower || fatal "9p mount of the checkout failed"
mount -t overlay -o lowerdir=/repo-lower,upperdir=/rw/repo-upper,workdir=/rw/repo-work overlay "$NEW$repo" || fatal "overlay mount of the checkout failed"

fsdisk=
for disk in /sys/block/vd*; do
  [ "$(cat "$disk/serial" 2>/dev/null)" = jobworker-fs ] && fsdisk=/dev/${disk##*/}
done
[ -n "$fsdisk" ] || fatal "no virtio disk with serial jobworker-fs"
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b "${fsdisk}1" ] && break; sleep 0.5; done
mount -t ext4 "${fsdisk}1" "$NEW/var/tmp" || fatal "mounting the scratch filesystem ${fsdisk}1 failed"
chmod 1777 "$NEW/var/tmp"

ip link set lo up || fatal "loopback"
hostname jobworker-v2

setsid /bin/sh /init watchdog &
watchdog_pid=$!

say "running the test runner"
chroot "$NEW" /bin/sh "$CTL/start.sh"
echo "$?" >"$NEW$CTL/start-exit"
kill "$watchdog_pid" 2>/dev/null
dmesg >"$NEW$CTL/dmesg.txt"
# What was written outside the tmpfs and scratch mounts (into the overlay, discarded at power-off).
{
  (cd /rw/upper && find . -mindepth 1 -type f)
  (cd /rw/repo-upper && find . -mindepth 1 -type f | sed "s|^\.|.$repo|")
} >"$NEW$CTL/overlay-writes.txt" 2>/dev/null
umount "$NEW/var/tmp"
sync
say "powering off"
poweroff -f
sleep 10
echo o >/proc/sysrq-trigger

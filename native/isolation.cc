// Isolation: the parent's preparation (once per process: what the host looks like; per spawn: the
// plan), and the child's steps, which run between clone and exec (raw system calls, no allocation).
#include "isolation.h"

#include <dirent.h>
#include <dlfcn.h>
#include <linux/keyctl.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

// <linux/mount.h> clashes with glibc 2.36's <sys/mount.h>: the few names needed, as the kernel has them.
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

namespace jw {
namespace {

struct KernelMountAttr {  // struct mount_attr
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
constexpr unsigned long kQuiet = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// A cgroup hierarchy mounted directly beneath /sys/fs/cgroup (hybrid and v1 hosts), or at it (v2).
struct Hierarchy {
  std::string dir;      // its mount point
  std::string fstype;   // "cgroup" or "cgroup2"
  std::string options;  // what to mount it with again: the controllers or name= (v1); none (v2)
  dev_t dev = 0;        // the hierarchy's superblock: which one a placement fd belongs to
};

// What the host looks like, read once per process: the same for every job.
struct HostLayout {
  int cap_last = 63;
  std::vector<std::string> tmp_dirs;  // of /tmp, /var/tmp, /dev/shm, those that exist (each once)
  bool cgroup_root_is_v2 = false;     // /sys/fs/cgroup is itself a cgroup2 mount
  dev_t cgroup_root_dev = 0;
  bool cgroup_root_present = false;
  std::vector<Hierarchy> hierarchies;  // beneath /sys/fs/cgroup (not with a v2 root)
  std::vector<std::pair<std::string, std::string>> cgroup_links;  // name -> target (cpu -> cpu,cpuacct)
};

// One line of /proc/self/mountinfo: the fields needed here (octal escapes left as they are; the
// paths looked for have none).
struct MountInfo {
  std::string mount_point, fstype, super_options;
};

std::vector<MountInfo> read_mountinfo() {
  std::vector<MountInfo> out;
  std::ifstream file("/proc/self/mountinfo");
  std::string line;
  while (std::getline(file, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point, options, field;
    fields >> id >> parent >> devno >> root >> mount_point >> options;
    while (fields >> field && field != "-") {
    }
    MountInfo info;
    info.mount_point = mount_point;
    fields >> info.fstype >> field >> info.super_options;
    out.push_back(std::move(info));
  }
  return out;
}

// A v1 hierarchy's super options minus what cannot or need not be given again (rw/ro is ours to
// choose; a release agent cannot be set from a cgroup namespace).
std::string remount_options(const std::string& super_options) {
  std::string out;
  std::istringstream parts(super_options);
  std::string part;
  while (std::getline(parts, part, ',')) {
    if (part == "rw" || part == "ro" || part.rfind("release_agent=", 0) == 0) continue;
    if (!out.empty()) out += ',';
    out += part;
  }
  return out;
}

HostLayout discover_host() {
  HostLayout host;
  {
    std::ifstream cap("/proc/sys/kernel/cap_last_cap");
    int last = -1;
    if (cap >> last && last > 0 && last < 64) host.cap_last = last;
  }
  std::vector<std::pair<dev_t, ino_t>> seen;
  for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm"}) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    bool dup = false;
    for (auto& s : seen) dup = dup || (s.first == st.st_dev && s.second == st.st_ino);
    if (dup) continue;  // /var/tmp -> /tmp: one mount is enough
    seen.emplace_back(st.st_dev, st.st_ino);
    host.tmp_dirs.push_back(dir);
  }

  // The last mount on a path is the one seen there.
  const std::string root = kCgroupRoot;
  for (const MountInfo& m : read_mountinfo()) {
    if (m.mount_point == root) {
      host.cgroup_root_present = true;
      host.cgroup_root_is_v2 = m.fstype == "cgroup2";
      host.hierarchies.clear();
      continue;
    }
    if (m.mount_point.size() <= root.size() + 1 || m.mount_point.compare(0, root.size() + 1, root + "/") != 0) continue;
    if (m.mount_point.find('/', root.size() + 1) != std::string::npos) continue;
    if (m.fstype != "cgroup" && m.fstype != "cgroup2") continue;
    Hierarchy h;
    h.dir = m.mount_point;
    h.fstype = m.fstype;
    if (m.fstype == "cgroup") h.options = remount_options(m.super_options);
    for (auto it = host.hierarchies.begin(); it != host.hierarchies.end(); ++it) {
      if (it->dir == h.dir) {
        host.hierarchies.erase(it);
        break;
      }
    }
    host.hierarchies.push_back(std::move(h));
  }
  if (host.cgroup_root_present) {
    struct stat st;
    if (stat(kCgroupRoot, &st) == 0) host.cgroup_root_dev = st.st_dev;
    else host.cgroup_root_present = false;
  }
  for (Hierarchy& h : host.hierarchies) {
    struct stat st;
    h.dev = stat(h.dir.c_str(), &st) == 0 ? st.st_dev : 0;
  }
  if (host.cgroup_root_present && !host.cgroup_root_is_v2) {
    if (DIR* dir = opendir(kCgroupRoot)) {
      while (struct dirent* entry = readdir(dir)) {
        if (entry->d_type != DT_LNK) continue;
        char target[256];
        std::string path = root + "/" + entry->d_name;
        ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
        if (n <= 0 || memchr(target, '/', static_cast<size_t>(n)) != nullptr) continue;  // only cpu -> cpu,cpuacct
        host.cgroup_links.emplace_back(path, std::string(target, static_cast<size_t>(n)));
      }
      closedir(dir);
    }
  }
  return host;
}

const HostLayout& host_layout() {
  static std::once_flag once;
  static HostLayout* host;
  std::call_once(once, [] { host = new HostLayout(discover_host()); });
  return *host;
}

// jobworker-init, opened once and held for the life of the process: its exec cannot fail for want
// of the file, whatever happens to the path later (an upgrade, a rebuild).
int init_fd_or_throw() {
  static std::mutex mutex;
  static int fd = -1;
  std::lock_guard<std::mutex> lock(mutex);
  if (fd >= 0) return fd;
  std::string path = init_path();
  int opened = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (opened < 0) throw NativeError{Stage::kInit, errno, path};
  struct stat st;
  // init runs as the job's user: it must be executable by anyone, or the exec would fail after the
  // command had started.
  if (fstat(opened, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & S_IXOTH) == 0) {
    close(opened);
    throw NativeError{Stage::kInit, EACCES, path};
  }
  fd = opened;
  return fd;
}

dev_t device_of(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_dev : 0;
}

}  // namespace

std::string init_path() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&init_path), &info) == 0 || info.dli_fname == nullptr) return "jobworker-init";
  std::string self = info.dli_fname;
  size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/jobworker-init";
}

const char* IsolationPlan::keep(std::string s) {
  storage_.push_back(std::make_unique<std::string>(std::move(s)));
  return storage_.back()->c_str();
}

IsolationPlan::IsolationPlan(const IsolationRequest& req, int cgroup_fd, const std::vector<int>& join_fds) {
  const HostLayout& host = host_layout();
  cap_last = host.cap_last;
  if (req.pid) clone_flags |= CLONE_NEWPID;
  if (req.mount) clone_flags |= CLONE_NEWNS;
  if (req.ipc) clone_flags |= CLONE_NEWIPC;
  if (req.uts) clone_flags |= CLONE_NEWUTS;
  if (req.network_none) clone_flags |= CLONE_NEWNET;
  cgroup_namespace = req.cgroup;
  fresh_user_keyrings = req.fresh_user_keyrings;
  loopback_up = req.network_none;
  if (req.has_hostname) {
    hostname = keep(req.hostname);
    hostname_length = req.hostname.size();
  }
  if (req.pid) init_fd = init_fd_or_throw();

  if (req.mount) {
    auto add = [&](MountStep step) { step_list_.push_back(step); };
    auto mount = [&](const char* source, const char* path, const char* fstype, unsigned long flags, const char* data) {
      add(MountStep{MountStep::kMount, path, source, fstype, data, flags, 0, 0, false, false, -1});
    };
    // Nothing mounted here propagates to the host, and the host's later mounts do not come in.
    mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    std::vector<std::pair<int, const char*>> attach;
    auto open_tree = [&](const char* source, uint64_t attr_set, bool as_user) {
      int slot = static_cast<int>(tree_fd_list_.size());
      tree_fd_list_.push_back(-1);
      add(MountStep{MountStep::kOpenTree, source, source, nullptr, nullptr, 0, attr_set, 0, true, as_user, slot});
      return slot;
    };
    // Writable paths are the daemon's (the job's scratch directory): taken before `hide`, so that
    // one inside a hidden directory can be shown again there, and before the read-only root, so
    // that each keeps the flags it has on the host. Attached last.
    std::vector<std::string> writable;
    for (const std::string& path : req.writable) {
      char resolved[PATH_MAX];
      writable.push_back(realpath(path.c_str(), resolved) != nullptr ? resolved : path);
      const char* kept = keep(writable.back());
      attach.emplace_back(open_tree(kept, 0, false), kept);
    }
    for (const std::string& dir : req.hide) {
      char resolved[PATH_MAX];
      std::string hidden = realpath(dir.c_str(), resolved) != nullptr ? resolved : dir;
      // The writable paths beneath it get their mount points, on a tmpfs that only lets them be
      // reached (mode 0711: nothing in it can be listed), then made read-only like any other.
      std::vector<std::string> exceptions;
      for (const std::string& path : writable) {
        if (path == hidden || path == "/" || hidden.compare(0, path.size() + 1, path + "/") == 0)
          throw NativeError{Stage::kMount, EINVAL, dir + " (hidden, but inside the writable " + path + ", which would show it again)"};
        if (path.compare(0, hidden.size() + 1, hidden + "/") == 0) exceptions.push_back(path);
      }
      const char* target = keep(hidden);
      if (exceptions.empty()) {
        mount("tmpfs", target, "tmpfs", MS_RDONLY | kQuiet, "mode=000");
        continue;
      }
      mount("tmpfs", target, "tmpfs", kQuiet, "mode=0711");
      for (const std::string& path : exceptions) {
        for (size_t slash = path.find('/', hidden.size() + 1);; slash = path.find('/', slash + 1)) {
          std::string step = slash == std::string::npos ? path : path.substr(0, slash);
          add(MountStep{MountStep::kMkdir, keep(step), nullptr, nullptr, nullptr, 0711, 0, 0, false, false, -1});
          if (slash == std::string::npos) break;
        }
      }
      add(MountStep{MountStep::kRemountBind, target, nullptr, nullptr, nullptr, MS_RDONLY | kQuiet, 0, 0, false, false, -1});
    }
    // Bind sources are the job's request: taken after `hide` (what is hidden cannot be bound back
    // in), with the job's permissions, and before the read-only root. Attached last.
    std::vector<std::pair<int, const char*>> binds;
    for (const BindRequest& bind : req.binds)
      binds.emplace_back(open_tree(keep(bind.source), bind.read_only ? uint64_t{MOUNT_ATTR_RDONLY} : uint64_t{0}, true), keep(bind.target));
    attach.insert(attach.begin(), binds.begin(), binds.end());
    if (req.read_only_root)
      add(MountStep{MountStep::kSetattr, "/", nullptr, nullptr, nullptr, 0, MOUNT_ATTR_RDONLY, 0, true, false, -1});
    if (req.pid) mount("proc", "/proc", "proc", kQuiet, nullptr);
    if (req.cgroup && host.cgroup_root_present) {
      // Only the hierarchies the job is placed in: in the others its cgroup namespace is rooted at
      // the daemon's cgroup, which is not the job's to see.
      std::vector<dev_t> placed;
      if (cgroup_fd >= 0) placed.push_back(device_of(cgroup_fd));
      for (int fd : join_fds) placed.push_back(device_of(fd));
      auto is_placed = [&](dev_t dev) {
        for (dev_t d : placed) if (d != 0 && d == dev) return true;
        return false;
      };
      if (host.cgroup_root_is_v2 && is_placed(host.cgroup_root_dev)) {
        // Mounted from inside the cgroup namespace: rooted at the job's cgroup. No options: they would
        // be ignored there (cgroup2's options are the whole hierarchy's). The host's mount goes
        // first: the kernel refuses a filesystem on top of itself, and this cgroup2 shares the
        // host's superblock (EBUSY). Elsewhere the view is mounted over the host's tree (cheaper
        // than detaching a hybrid host's eleven mounts).
        add(MountStep{MountStep::kUnmount, kCgroupRoot, nullptr, nullptr, nullptr, 0, 0, 0, false, false, -1});
        mount("cgroup2", kCgroupRoot, "cgroup2", MS_RDONLY | kQuiet, nullptr);
      } else {
        mount("tmpfs", kCgroupRoot, "tmpfs", kQuiet, "mode=755,size=4k");
        std::vector<std::string> mounted;
        if (!host.cgroup_root_is_v2) {
          for (const Hierarchy& h : host.hierarchies) {
            if (!is_placed(h.dev)) continue;
            add(MountStep{MountStep::kMkdir, keep(h.dir), nullptr, nullptr, nullptr, 0755, 0, 0, false, false, -1});
            mount(h.fstype.c_str(), keep(h.dir), keep(h.fstype), MS_RDONLY | kQuiet, h.options.empty() ? nullptr : keep(h.options));
            mounted.push_back(h.dir.substr(h.dir.rfind('/') + 1));
          }
          for (const auto& link : host.cgroup_links) {
            for (const std::string& name : mounted) {
              if (name == link.second)
                add(MountStep{MountStep::kSymlink, keep(link.first), keep(link.second), nullptr, nullptr, 0, 0, 0, false, false, -1});
            }
          }
        }
        add(MountStep{MountStep::kRemountBind, kCgroupRoot, nullptr, nullptr, nullptr, MS_RDONLY | kQuiet, 0, 0, false, false, -1});
      }
    }
    if (req.private_tmp) {
      for (const std::string& dir : host.tmp_dirs) mount("tmpfs", keep(dir), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    }
    for (const auto& [slot, target] : attach)
      add(MountStep{MountStep::kAttach, target, nullptr, nullptr, nullptr, 0, 0, 0, false, false, slot});
  }
  steps = step_list_.data();
  step_count = step_list_.size();
  tree_fds = tree_fd_list_.data();
}

// ---- The child's side: between clone and exec. ----

namespace {

// Opens a detached copy of `source` (recursive), with the job's permissions when `as_user`.
int open_tree_step(const MountStep& step, long long uid, long long gid, bool set_groups, const gid_t* groups,
                   size_t group_count, int* fd_out) {
  bool switch_user = step.as_user && uid > 0;
  long saved_fsuid = 0, saved_fsgid = 0;
  if (switch_user) {
    // Only the filesystem ids change (and the groups, which the credentials step sets to the same
    // list again): the path is walked with the job's permissions, while CAP_SYS_ADMIN, needed to
    // clone a mount, stays. A non-zero fsuid also drops the capabilities that bypass permissions.
    if (set_groups && syscall(SYS_setgroups, group_count, groups) < 0) return errno;
    if (gid >= 0) saved_fsgid = syscall(SYS_setfsgid, gid);
    saved_fsuid = syscall(SYS_setfsuid, uid);
  }
  int fd = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, step.source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  int err = fd < 0 ? errno : 0;
  if (switch_user) {
    syscall(SYS_setfsuid, saved_fsuid);
    if (gid >= 0) syscall(SYS_setfsgid, saved_fsgid);
  }
  if (err != 0) return err;
  *fd_out = fd;
  if (step.attr_set != 0) {
    KernelMountAttr attr{step.attr_set, 0, 0, 0};
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) return errno;
  }
  return 0;
}

int run_step(const IsolationPlan& plan, const MountStep& step, long long uid, long long gid, bool set_groups,
             const gid_t* groups, size_t group_count) {
  switch (step.op) {
    case MountStep::kMount:
      return syscall(SYS_mount, step.source, step.path, step.fstype, step.flags, step.data) < 0 ? errno : 0;
    case MountStep::kUnmount:
      return umount2(step.path, MNT_DETACH) < 0 ? errno : 0;
    case MountStep::kMkdir:
      return mkdir(step.path, static_cast<mode_t>(step.flags)) < 0 && errno != EEXIST ? errno : 0;
    case MountStep::kSymlink:
      return symlink(step.source, step.path) < 0 ? errno : 0;
    case MountStep::kSetattr: {
      KernelMountAttr attr{step.attr_set, step.attr_clr, 0, 0};
      return syscall(SYS_mount_setattr, AT_FDCWD, step.path, step.recursive ? AT_RECURSIVE : 0, &attr, sizeof attr) < 0 ? errno : 0;
    }
    case MountStep::kRemountBind:
      return syscall(SYS_mount, nullptr, step.path, nullptr, MS_REMOUNT | MS_BIND | step.flags, nullptr) < 0 ? errno : 0;
    case MountStep::kOpenTree:
      return open_tree_step(step, uid, gid, set_groups, groups, group_count, &plan.tree_fds[step.slot]);
    case MountStep::kAttach: {
      int fd = plan.tree_fds[step.slot];
      int err = syscall(SYS_move_mount, fd, "", AT_FDCWD, step.path, MOVE_MOUNT_F_EMPTY_PATH) < 0 ? errno : 0;
      close(fd);  // attached or not, not needed again (and close-on-exec in any case)
      plan.tree_fds[step.slot] = -1;
      return err;
    }
  }
  return EINVAL;
}

}  // namespace

int run_mount_steps(const IsolationPlan& plan, long long uid, long long gid, bool set_groups, const gid_t* groups,
                    size_t group_count, size_t* failed_step) {
  for (size_t i = 0; i < plan.step_count; i++) {
    if (int err = run_step(plan, plan.steps[i], uid, gid, set_groups, groups, group_count)) {
      *failed_step = i;
      return err;
    }
  }
  return 0;
}

int set_hostname(const IsolationPlan& plan) {
  if (plan.hostname == nullptr) return 0;
  return sethostname(plan.hostname, plan.hostname_length) < 0 ? errno : 0;
}

int bring_loopback_up() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  int err = 0;
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
    err = errno;
  } else {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) err = errno;
  }
  close(fd);
  return err;
}

int drop_bounding_set(const IsolationPlan& plan) {
  for (int cap = 0; cap <= plan.cap_last; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return errno;
  }
  // Emptied by the uid switch as well; explicitly, in case the daemon kept SECBIT_KEEP_CAPS.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return errno;
  return 0;
}

int set_no_new_privs() { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? errno : 0; }

namespace {
// Keyrings missing from the kernel (ENOSYS) or keyctl refused to the daemon by a seccomp profile
// (EPERM, as Docker's default profile does): then the job cannot reach any keyring either.
bool keyrings_unavailable(int err) { return err == ENOSYS || err == EPERM; }
}  // namespace

bool uid_has_keys(long long uid) {
  // Lines "<uid>: <usage> <nkeys>/<nikeys> ...", one per uid that owns a key; unreadable: assume so.
  std::ifstream in("/proc/key-users");
  if (!in) return true;
  std::string line;
  std::string prefix = std::to_string(uid) + ":";
  while (std::getline(in, line)) {
    size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && line.compare(first, prefix.size(), prefix) == 0) return true;
  }
  return !in.eof();
}

int join_fresh_session_keyring() {
  if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr) < 0 && !keyrings_unavailable(errno)) return errno;
  return 0;
}

int clear_user_keyrings() {
  for (long ring : {static_cast<long>(KEY_SPEC_USER_KEYRING), static_cast<long>(KEY_SPEC_USER_SESSION_KEYRING)}) {
    // EDQUOT: the keyring did not exist and the uid's key quota is full; nothing is in it then.
    if (syscall(SYS_keyctl, KEYCTL_CLEAR, ring) < 0 && !keyrings_unavailable(errno) && errno != EDQUOT) return errno;
  }
  // The user-session keyring links the user keyring when the kernel makes it: put that link back.
  if (syscall(SYS_keyctl, KEYCTL_LINK, static_cast<long>(KEY_SPEC_USER_KEYRING), static_cast<long>(KEY_SPEC_USER_SESSION_KEYRING)) < 0 &&
      !keyrings_unavailable(errno) && errno != EDQUOT)
    return errno;
  // The persistent keyring (kept for days after its last use): reached by linking it into the
  // session keyring, then invalidated, which unlinks and frees it (a later KEYCTL_GET_PERSISTENT
  // makes a new, empty one). EOPNOTSUPP: a kernel without persistent keyrings.
  long persistent = syscall(SYS_keyctl, KEYCTL_GET_PERSISTENT, -1L, static_cast<long>(KEY_SPEC_SESSION_KEYRING));
  if (persistent < 0) {
    if (keyrings_unavailable(errno) || errno == EOPNOTSUPP || errno == EDQUOT) return 0;
    return errno;
  }
  if (syscall(SYS_keyctl, KEYCTL_INVALIDATE, persistent) < 0) return errno;
  return 0;
}

}  // namespace jw

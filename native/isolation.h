// Isolation of a job (SpawnOptions.isolation, src/native/isolation.ts): what the parent prepares
// before the clone, and the steps the child runs between clone and exec.
//
// The parent turns an IsolationRequest into an IsolationPlan: the clone flags, and a flat list of
// mount steps whose strings it owns. The child (spawn.cc's child_main) walks that list with raw
// system calls only: it allocates nothing and takes no lock, as everything between clone and exec.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "native_error.h"
#include "unique_fd.h"

namespace jw {

struct BindRequest {
  std::string source, target;
  bool read_only = false;
};

// SpawnOptions.isolation as the addon received it (checked by parse_isolation in addon.cc).
struct IsolationRequest {
  bool pid = false, mount = false, ipc = false, uts = false, cgroup = false, network_none = false;
  bool has_hostname = false;
  std::string hostname;
  bool read_only_root = false, private_tmp = false;
  bool fresh_user_keyrings = false;
  std::vector<std::string> hide, writable;
  std::vector<BindRequest> binds;
};

// One step of a mount namespace's set-up. `path` is what a failure names (the mount point).
struct MountStep {
  enum Op : int {
    kMount,         // mount(source, path, fstype, flags, data)
    kUnmount,       // umount2(path, MNT_DETACH)
    kMkdir,         // mkdir(path, flags as the mode)
    kSymlink,       // symlink(source, path)
    kSetattr,       // mount_setattr(path): attr_set / attr_clr, recursive or not
    kRemountBind,   // mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL): the mount's own flags
    kOpenTree,      // open_tree(source, OPEN_TREE_CLONE | AT_RECURSIVE) into tree slot `slot`; as the
                    // job's user when `as_user` (then `attr_set` is applied to the detached tree)
    kAttach,        // move_mount(tree slot `slot`, path)
  } op;
  const char* path;
  const char* source;
  const char* fstype;
  const char* data;
  unsigned long flags;
  uint64_t attr_set, attr_clr;
  bool recursive;
  bool as_user;
  int slot;
};

// Everything the child needs, as plain arrays; the strings live in `storage_`.
class IsolationPlan {
 public:
  // Prepares a plan for `req`. `cgroup_fd` and `join_fds`: the job's placement (the cgroup view
  // shows only the hierarchies it is placed in). Throws NativeError (stage kMount or kInit) for
  // what the parent can tell before cloning; TypeError-like mistakes are caught by the addon.
  IsolationPlan(const IsolationRequest& req, int cgroup_fd, const std::vector<int>& join_fds);
  IsolationPlan(const IsolationPlan&) = delete;
  IsolationPlan& operator=(const IsolationPlan&) = delete;

  uint64_t clone_flags = 0;       // CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET
  bool cgroup_namespace = false;  // unshare(CLONE_NEWCGROUP) after the cgroup joins
  bool loopback_up = false;
  const char* hostname = nullptr;  // nullptr: keep
  size_t hostname_length = 0;
  const MountStep* steps = nullptr;
  size_t step_count = 0;
  int* tree_fds = nullptr;  // one slot per kOpenTree, filled by the child
  int init_fd = -1;         // jobworker-init, held open for the life of the process; -1 without pid
  int cap_last = 63;        // the highest capability number this kernel knows
  bool fresh_user_keyrings = false;  // empty the uid's user, user-session and persistent keyrings

 private:
  const char* keep(std::string s);
  std::vector<std::unique_ptr<std::string>> storage_;
  std::vector<MountStep> step_list_;
  std::vector<int> tree_fd_list_;
};

// The child's side, between clone and exec. Each returns 0 or an errno, and on failure sets
// *failed_step to the index of the mount step (run_mount_steps). `uid`, `gid`, `groups`: whose
// permissions a bind's source is opened with (uid < 0: the daemon's own).
int run_mount_steps(const IsolationPlan& plan, long long uid, long long gid, bool set_groups, const gid_t* groups,
                    size_t group_count, size_t* failed_step);
int set_hostname(const IsolationPlan& plan);
int bring_loopback_up();
// Drops every capability from the bounding set (for a job whose uid is not 0; needs CAP_SETPCAP).
// The caller switches uid afterwards, which empties the other sets.
int drop_bounding_set(const IsolationPlan& plan);
int set_no_new_privs();
// Keyrings, which no namespace isolates. The parent decides (it may allocate), the child acts:
// * A process inherits its parent's session keyring: the daemon's (systemd gives each service one;
//   a container runtime or login session may give it root's user-session keyring, which links
//   root's user keyring) would be every job's, read and written by all of them. So the child joins
//   a new, empty session keyring of its own before the uid switch, as runc and systemd's
//   KeyringMode=private do; its user keyring is not linked in (`keyctl link @u @s` does it).
// * The kernel keeps a uid's keyrings after its last process is gone, so a uid that goes from one
//   job to another (a dynamic uid) hands the first job's keys to the next: uid_has_keys() (from
//   /proc/key-users, so that nothing is created for a uid that owns no key) says whether there is
//   anything to empty; then the child, as that uid, empties its user and user-session keyrings and
//   invalidates its persistent keyring.
bool uid_has_keys(long long uid);
int join_fresh_session_keyring();
int clear_user_keyrings();

// Where jobworker-init is looked for: next to the addon (build/Release/jobworker-init).
std::string init_path();

}  // namespace jw

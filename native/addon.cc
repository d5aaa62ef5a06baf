// The addon's JavaScript surface: spawn(options, listener) -> ProcessHandle. Declared for
// TypeScript in src/native/binding.ts; only src/native/ loads this module.
#include <fcntl.h>
#include <malloc.h>
#include <napi.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "fs_ops.h"
#include "js_values.h"
#include "log_budget.h"
#include "log_writer.h"
#include "reactor.h"
#include "spawn.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace jw {
namespace {

// Per Node environment (main thread or a worker thread).
struct AddonState {
  std::unique_ptr<Reactor> reactor;
  Napi::FunctionReference process_handle_class;
  Napi::FunctionReference log_budget_class;
};

void destroy_reactor(void* data) { static_cast<AddonState*>(data)->reactor.reset(); }

Reactor& reactor_for(Napi::Env env) {
  AddonState* state = env.GetInstanceData<AddonState>();
  if (!state->reactor) {
    try {
      state->reactor = std::make_unique<Reactor>(env);
    } catch (const NativeError& error) {
      throw native_error_to_js(env, error);
    }
    // Registered after the reactor's thread-safe function, so it runs before that is torn down.
    // (It fails only for a null argument.)
    NAPI_THROW_IF_FAILED_VOID(env, napi_add_env_cleanup_hook(env, destroy_reactor, state));
  }
  return *state->reactor;
}

class ProcessHandle : public Napi::ObjectWrap<ProcessHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ProcessHandle",
                       {
                           InstanceAccessor<&ProcessHandle::Pid>("pid"),
                           InstanceAccessor<&ProcessHandle::LogBytes>("logBytes"),
                           InstanceAccessor<&ProcessHandle::GatedFork>("gatedFork"),
                           InstanceMethod<&ProcessHandle::Kill>("kill"),
                           InstanceMethod<&ProcessHandle::CloseCapture>("closeCapture"),
                           InstanceMethod<&ProcessHandle::WatchOutput>("watchOutput"),
                       });
  }

  explicit ProcessHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessHandle>(info) {}
  std::shared_ptr<Job> job;

 private:
  Napi::Value Pid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), job->pid); }
  Napi::Value LogBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(job->log->committed()));
  }
  Napi::Value GatedFork(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), job->gated_fork); }

  // kill(signal) -> true if delivered, false if the process is already gone.
  Napi::Value Kill(const Napi::CallbackInfo& info) {
    int signal = info[0].As<Napi::Number>().Int32Value();
    try {
      return Napi::Boolean::New(info.Env(), job->kill(signal));
    } catch (const NativeError& error) {
      throw native_error_to_js(info.Env(), error);
    }
  }

  // Stop capturing: read the pipes dry and close them (their remaining writers then get SIGPIPE).
  Napi::Value CloseCapture(const Napi::CallbackInfo& info) {
    AddonState* state = info.Env().GetInstanceData<AddonState>();
    if (state->reactor) state->reactor->close_capture(job);
    return info.Env().Undefined();
  }

  // watchOutput(true) asks for coalesced "output" events as the log grows.
  Napi::Value WatchOutput(const Napi::CallbackInfo& info) {
    job->watch_output.store(info[0].As<Napi::Boolean>().Value());  // seq_cst: see request_output_event
    return info.Env().Undefined();
  }
};

// new LogBudget(limitBytes): an identity's log budget, handed to each of its jobs' spawns
// (logBudget) and charged by their capture; see log_budget.h.
class LogBudgetHandle : public Napi::ObjectWrap<LogBudgetHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LogBudget",
                       {
                           InstanceAccessor<&LogBudgetHandle::Limit>("limit"),
                           InstanceAccessor<&LogBudgetHandle::Used>("used"),
                           InstanceMethod<&LogBudgetHandle::Add>("add"),
                       });
  }

  explicit LogBudgetHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LogBudgetHandle>(info) {
    if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "LogBudget(limitBytes): a number is required");
    budget = std::make_shared<LogBudget>(info[0].As<Napi::Number>().Int64Value());
  }
  std::shared_ptr<LogBudget> budget;

 private:
  Napi::Value Limit(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(budget->limit())); }
  Napi::Value Used(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(budget->used())); }
  // add(bytes): charges (positive) or releases (negative) bytes already on disk.
  Napi::Value Add(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "add(bytes): a number is required");
    budget->add(info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  }
};

std::vector<std::string> string_array(Napi::Object options, const char* key) {
  std::vector<std::string> out;
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return out;
  if (!value.IsArray()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be an array of strings");
    std::string s = item.As<Napi::String>().Utf8Value();
    if (s.find('\0') != std::string::npos)
      throw Napi::TypeError::New(options.Env(), std::string(key) + " must not contain NUL bytes");
    out.push_back(std::move(s));
  }
  return out;
}

long long optional_integer(Napi::Object options, const char* key, long long fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) return fallback;
  if (!value.IsNumber()) throw Napi::TypeError::New(options.Env(), std::string(key) + " must be a number");
  return value.As<Napi::Number>().Int64Value();
}

// "uid:gid", each a decimal id below 2^32 - 1 (the kernel's "no change" value is refused).
bool parse_owner(const std::string& text, uid_t& uid, gid_t& gid) {
  size_t colon = text.find(':');
  if (colon == std::string::npos) return false;
  auto id = [](const std::string& digits, uint32_t& out) {
    if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
    unsigned long long value = std::stoull(digits);
    if (value >= 0xffffffffULL) return false;
    out = static_cast<uint32_t>(value);
    return true;
  };
  uint32_t u = 0, g = 0;
  if (!id(text.substr(0, colon), u) || !id(text.substr(colon + 1), g)) return false;
  uid = u;
  gid = g;
  return true;
}

// Ops arrive as one string (one N-API conversion instead of several per op): for each op, its
// letter (k mkdir, d rmdir, w write, r read, c create, p private directory), '?' if optional or '!'
// if not, the path, NUL, the value (a write's bytes, a private directory's "uid:gid", else empty),
// NUL. Written by encodeFsOps() in src/native/fs-ops.ts.
std::vector<FsOp> parse_fs_ops(Napi::Env env, Napi::Value value, const std::string& where) {
  if (!value.IsString()) throw Napi::TypeError::New(env, where + ": the encoded ops must be a string");
  std::string text = value.As<Napi::String>().Utf8Value();
  std::vector<FsOp> ops;
  size_t at = 0;
  while (at < text.size()) {
    size_t path_end = text.find('\0', at);
    size_t value_end = path_end == std::string::npos ? std::string::npos : text.find('\0', path_end + 1);
    if (value_end == std::string::npos || path_end < at + 3) throw Napi::TypeError::New(env, where + ": malformed ops");
    FsOp op;
    switch (text[at]) {
      case 'k': op.kind = FsOpKind::kMkdir; break;
      case 'd': op.kind = FsOpKind::kRmdir; break;
      case 'w': op.kind = FsOpKind::kWrite; break;
      case 'r': op.kind = FsOpKind::kRead; break;
      case 'c': op.kind = FsOpKind::kCreate; break;
      case 'p': op.kind = FsOpKind::kMkdirPrivate; break;
      default: throw Napi::TypeError::New(env, where + ": unknown op " + text.substr(at, 1));
    }
    if (text[at + 1] != '?' && text[at + 1] != '!') throw Napi::TypeError::New(env, where + ": malformed ops");
    op.optional = text[at + 1] == '?';
    op.path.assign(text, at + 2, path_end - at - 2);
    op.value.assign(text, path_end + 1, value_end - path_end - 1);
    if (op.kind == FsOpKind::kMkdirPrivate && !parse_owner(op.value, op.uid, op.gid))
      throw Napi::TypeError::New(env, where + ": a private directory's owner must be \"uid:gid\"");
    ops.push_back(std::move(op));
    at = value_end + 1;
  }
  return ops;
}

// How many paths an isolation may list (hide, writable, binds), and how long each may be.
constexpr uint32_t kMaxIsolationPaths = 64;
constexpr size_t kMaxPathBytes = 4095;
constexpr size_t kMaxHostnameBytes = 64;  // HOST_NAME_MAX

std::string isolation_path(Napi::Env env, Napi::Value value, const std::string& field) {
  if (!value.IsString()) throw Napi::TypeError::New(env, field + " must be an absolute path (a string)");
  std::string path = value.As<Napi::String>().Utf8Value();
  if (path.empty() || path[0] != '/' || path.size() > kMaxPathBytes || path.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, field + " must be an absolute path without NUL bytes, at most 4095 bytes");
  return path;
}

std::vector<std::string> isolation_paths(Napi::Env env, Napi::Object isolation, const char* key) {
  std::vector<std::string> out;
  Napi::Value value = isolation.Get(key);
  if (value.IsUndefined()) return out;
  std::string field = std::string("isolation.") + key;
  if (!value.IsArray() || value.As<Napi::Array>().Length() > kMaxIsolationPaths)
    throw Napi::TypeError::New(env, field + " must be an array of at most 64 absolute paths");
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(isolation_path(env, array.Get(i), field + "[" + std::to_string(i) + "]"));
  return out;
}

bool isolation_flag(Napi::Env env, Napi::Object isolation, const char* key, bool required) {
  Napi::Value value = isolation.Get(key);
  if (value.IsUndefined() && !required) return false;
  if (!value.IsBoolean()) throw Napi::TypeError::New(env, std::string("isolation.") + key + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

// "/a//b/./c/../d" -> "/a/b/d": the path as written, without asking the filesystem.
std::string lexically_normal(const std::string& path) {
  std::vector<std::string> parts;
  size_t at = 0;
  while (at <= path.size()) {
    size_t slash = path.find('/', at);
    std::string part = path.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (slash == std::string::npos) break;
    at = slash + 1;
  }
  std::string out;
  for (const std::string& part : parts) out += "/" + part;
  return out.empty() ? "/" : out;
}

// SpawnOptions.isolation (src/native/isolation.ts). What needs the mount or UTS namespace is refused
// without it: a hidden directory or a bind would otherwise be mounted on the host.
IsolationRequest parse_isolation(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) throw Napi::TypeError::New(env, "isolation must be an object");
  Napi::Object object = value.As<Napi::Object>();
  IsolationRequest iso;
  iso.pid = isolation_flag(env, object, "pid", true);
  iso.mount = isolation_flag(env, object, "mount", true);
  iso.ipc = isolation_flag(env, object, "ipc", true);
  iso.uts = isolation_flag(env, object, "uts", true);
  iso.cgroup = isolation_flag(env, object, "cgroup", true);
  Napi::Value network = object.Get("network");
  std::string network_name = network.IsString() ? network.As<Napi::String>().Utf8Value() : "";
  if (network_name != "host" && network_name != "none") throw Napi::TypeError::New(env, "isolation.network must be 'host' or 'none'");
  iso.network_none = network_name == "none";
  Napi::Value hostname = object.Get("hostname");
  if (!hostname.IsUndefined()) {
    if (!hostname.IsString()) throw Napi::TypeError::New(env, "isolation.hostname must be a string");
    iso.hostname = hostname.As<Napi::String>().Utf8Value();
    if (iso.hostname.empty() || iso.hostname.size() > kMaxHostnameBytes || iso.hostname.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, "isolation.hostname must be 1 to 64 bytes, without NUL");
    if (!iso.uts) throw Napi::TypeError::New(env, "isolation.hostname needs isolation.uts");
    iso.has_hostname = true;
  }
  iso.read_only_root = isolation_flag(env, object, "readOnlyRoot", false);
  iso.private_tmp = isolation_flag(env, object, "privateTmp", false);
  iso.fresh_user_keyrings = isolation_flag(env, object, "freshUserKeyrings", false);
  iso.hide = isolation_paths(env, object, "hide");
  iso.writable = isolation_paths(env, object, "writable");
  Napi::Value binds = object.Get("binds");
  if (!binds.IsUndefined()) {
    if (!binds.IsArray() || binds.As<Napi::Array>().Length() > kMaxIsolationPaths)
      throw Napi::TypeError::New(env, "isolation.binds must be an array of at most 64 { source, target, readOnly }");
    Napi::Array array = binds.As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); i++) {
      std::string field = "isolation.binds[" + std::to_string(i) + "]";
      Napi::Value item = array.Get(i);
      if (!item.IsObject()) throw Napi::TypeError::New(env, field + " must be { source, target, readOnly }");
      Napi::Object bind = item.As<Napi::Object>();
      BindRequest request;
      request.source = isolation_path(env, bind.Get("source"), field + ".source");
      request.target = isolation_path(env, bind.Get("target"), field + ".target");
      Napi::Value read_only = bind.Get("readOnly");
      if (!read_only.IsBoolean()) throw Napi::TypeError::New(env, field + ".readOnly must be a boolean");
      request.read_only = read_only.As<Napi::Boolean>().Value();
      iso.binds.push_back(std::move(request));
    }
  }
  // The addon's own check on the paths as given (the plan checks them again once symlinks are
  // resolved): a writable path is taken before the hiding, and would show a hidden directory in it.
  for (size_t h = 0; h < iso.hide.size(); h++) {
    std::string hidden = lexically_normal(iso.hide[h]);
    for (size_t w = 0; w < iso.writable.size(); w++) {
      std::string writable = lexically_normal(iso.writable[w]);
      if (hidden == writable || writable == "/" || hidden.compare(0, writable.size() + 1, writable + "/") == 0)
        throw Napi::TypeError::New(env, "isolation.hide[" + std::to_string(h) + "] (" + iso.hide[h] + ") is inside isolation.writable[" +
                                            std::to_string(w) + "] (" + iso.writable[w] + "), which would show it again");
    }
  }
  if (!iso.mount && (iso.read_only_root || iso.private_tmp || !iso.hide.empty() || !iso.writable.empty() || !iso.binds.empty()))
    throw Napi::TypeError::New(env, "isolation.readOnlyRoot, privateTmp, hide, binds and writable need isolation.mount");
  return iso;
}

// What spawn() and spawnAsync() are asked for.
struct SpawnCall {
  SpawnRequest req;
  std::string log_path;
  uint64_t log_max = 0;
  std::shared_ptr<LogBudget> log_budget;  // null: no identity budget
  // Placement by path: opened on the spawning thread, closed once the child has exec'd.
  std::string cgroup_path;
  std::vector<std::string> join_tasks_paths;
  // Filesystem ops run first, on the same thread (creating the job's cgroups and writing its limits).
  std::vector<FsOp> setup;
  // Filesystem ops run on the same thread once the child has exec'd (memory.oom.group: see
  // src/cgroup/v2/memory.ts); if one fails the child is killed and reaped.
  std::vector<FsOp> started;
  // Filesystem ops the reactor runs when the process has exited (see Job::exit_ops).
  std::vector<FsOp> exit_ops;
  // An existing (emptied) file to rename to log_path: reusing an inode is much cheaper than
  // allocating one on some filesystems (see src/worker/state-store.ts). Created anew if it fails.
  std::string log_recycle_from;
};

SpawnCall parse_spawn_call(const Napi::CallbackInfo& info, const char* name) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, std::string(name) + "(options, listener): options object and listener function required");
  Napi::Object options = info[0].As<Napi::Object>();
  SpawnCall call;
  SpawnRequest& req = call.req;
  req.exec_candidates = string_array(options, "execCandidates");
  req.argv = string_array(options, "argv");
  req.envp = string_array(options, "env");
  if (req.exec_candidates.empty() || req.argv.empty())
    throw Napi::TypeError::New(env, "execCandidates and argv must not be empty");
  Napi::Value cwd = options.Get("cwd");
  if (cwd.IsString()) req.cwd = cwd.As<Napi::String>().Utf8Value();
  req.cgroup_fd = static_cast<int>(optional_integer(options, "cgroupFd", -1));
  Napi::Value join = options.Get("joinTasksFds");
  if (join.IsArray()) {
    Napi::Array fds = join.As<Napi::Array>();
    for (uint32_t i = 0; i < fds.Length(); i++) req.join_tasks_fds.push_back(fds.Get(i).As<Napi::Number>().Int32Value());
  }
  req.uid = optional_integer(options, "uid", -1);
  req.gid = optional_integer(options, "gid", -1);
  Napi::Value groups = options.Get("groups");
  if (groups.IsArray()) {
    req.set_groups = true;
    Napi::Array list = groups.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) req.groups.push_back(list.Get(i).As<Napi::Number>().Uint32Value());
  }
  req.nofile_soft = optional_integer(options, "nofileSoft", -1);
  req.force_gated_fork = options.Get("forceGatedFork").ToBoolean().Value();
  req.hold_before_exec = options.Get("holdBeforeExecForTest").ToBoolean().Value();
  long long start_timeout = optional_integer(options, "startTimeoutMs", req.start_timeout.count());
  if (start_timeout < 1 || start_timeout > 86'400'000)
    throw Napi::TypeError::New(env, "startTimeoutMs must be between 1 and 86400000 (a day)");
  req.start_timeout = std::chrono::milliseconds(start_timeout);
  Napi::Value isolation = options.Get("isolation");
  if (!isolation.IsUndefined() && !isolation.IsNull()) req.isolation = parse_isolation(env, isolation);
  Napi::Value cgroup_path = options.Get("cgroupPath");
  if (cgroup_path.IsString()) call.cgroup_path = cgroup_path.As<Napi::String>().Utf8Value();
  call.join_tasks_paths = string_array(options, "joinTasksPaths");
  Napi::Value setup = options.Get("setupOps");
  if (!setup.IsUndefined()) call.setup = parse_fs_ops(env, setup, "setupOps");
  Napi::Value started = options.Get("startedOps");
  if (!started.IsUndefined()) call.started = parse_fs_ops(env, started, "startedOps");
  Napi::Value exit_ops = options.Get("exitOps");
  if (!exit_ops.IsUndefined()) call.exit_ops = parse_fs_ops(env, exit_ops, "exitOps");
  if ((!call.cgroup_path.empty() && req.cgroup_fd >= 0) || (!call.join_tasks_paths.empty() && !req.join_tasks_fds.empty()))
    throw Napi::TypeError::New(env, "give a cgroup placement by path or by fd, not both");
  Napi::Value log_path = options.Get("logPath");
  if (!log_path.IsString()) throw Napi::TypeError::New(env, "logPath must be a string");
  call.log_path = log_path.As<Napi::String>().Utf8Value();
  Napi::Value recycle = options.Get("logRecycleFrom");
  if (recycle.IsString()) call.log_recycle_from = recycle.As<Napi::String>().Utf8Value();
  call.log_max = static_cast<uint64_t>(optional_integer(options, "logMaxBytes", 1LL << 40));
  Napi::Value budget = options.Get("logBudget");
  if (!budget.IsUndefined()) {
    AddonState* state = env.GetInstanceData<AddonState>();
    if (!budget.IsObject() || !budget.As<Napi::Object>().InstanceOf(state->log_budget_class.Value()))
      throw Napi::TypeError::New(env, "logBudget must be a LogBudget");
    call.log_budget = LogBudgetHandle::Unwrap(budget.As<Napi::Object>())->budget;
  }
  return call;
}

// The outcome of the part of a spawn that may run on any thread: the log file, then the process.
struct SpawnOutcome {
  std::unique_ptr<LogWriter> log;
  SpawnedChild child;
  std::optional<NativeError> error;  // set: nothing runs (what setup made is undone, the log finished)
};

// Opens the placement given by path into `req`; the fds stay open in `opened`.
std::optional<NativeError> open_placement(const SpawnCall& call, SpawnRequest& req, std::vector<UniqueFd>& opened) {
  auto open_one = [&](const std::string& path, int flags, int& fd) -> std::optional<NativeError> {
    UniqueFd opened_fd(open(path.c_str(), flags | O_CLOEXEC));
    if (!opened_fd.valid()) return NativeError{Stage::kPlacement, errno, path};
    fd = opened_fd.get();
    opened.push_back(std::move(opened_fd));
    return std::nullopt;
  };
  if (!call.cgroup_path.empty()) {
    if (auto error = open_one(call.cgroup_path, O_RDONLY | O_DIRECTORY, req.cgroup_fd)) return error;
  }
  for (const std::string& path : call.join_tasks_paths) {
    int fd = -1;
    if (auto error = open_one(path, O_WRONLY, fd)) return error;
    req.join_tasks_fds.push_back(fd);
  }
  return std::nullopt;
}

// Opens the placement into `call.req` for the spawn itself (no copy of the request on this path).
void run_spawn(SpawnCall& call, SpawnOutcome& out) {
  if (!call.setup.empty()) {
    FsOpsOutcome setup = run_fs_ops(call.setup, Stage::kSetup);
    if (setup.error) {
      // Undo what was created, newest first. Best effort: the failure is what gets reported, and
      // a directory that cannot be removed is left for the caller's cleanup of the job.
      for (size_t i = setup.completed; i-- > 0;)
        if ((call.setup[i].kind == FsOpKind::kMkdir || call.setup[i].kind == FsOpKind::kMkdirPrivate) && !setup.skipped[i])
          rmdir(call.setup[i].path.c_str());
      out.error = setup.error;
      return;
    }
  }
  // The log first: a job must never run without the file that keeps its output. A spare that
  // cannot be renamed (gone, another filesystem) only means a new file is created.
  bool reuse = !call.log_recycle_from.empty() && rename(call.log_recycle_from.c_str(), call.log_path.c_str()) == 0;
  try {
    out.log = std::make_unique<LogWriter>(call.log_path, call.log_max, reuse, call.log_budget);
  } catch (const NativeError& error) {
    out.error = error;
    return;
  }
  SpawnRequest& req = call.req;
  std::vector<UniqueFd> placement;  // closed on return: the child has exec'd (or failed) by then
  out.error = open_placement(call, req, placement);
  if (!out.error) {
    try {
      out.child = spawn_process(req);
    } catch (const NativeError& error) {
      out.error = error;
    }
  }
  if (!out.error && !call.started.empty()) {
    FsOpsOutcome started = run_fs_ops(call.started, Stage::kStartedOps);
    if (started.error) {
      // The job must not run without what they set: it ends here, like a failed spawn.
      kill_and_reap(out.child);
      out.error = started.error;
    }
  }
  if (out.error) out.log->finish();
  // Those fds close with `placement`: leave none of their numbers in the request.
  if (!call.cgroup_path.empty()) req.cgroup_fd = -1;
  if (!call.join_tasks_paths.empty()) req.join_tasks_fds.clear();
}

// JS thread: the typed error for a failed spawn, or the handle of a running one.
Napi::Value adopt_outcome(Napi::Env env, SpawnCall& call, SpawnOutcome& out, Napi::Function listener) {
  if (out.error) throw native_error_to_js(env, *out.error);
  auto job = std::make_shared<Job>(std::move(out.child), std::move(out.log));
  job->exit_ops = std::move(call.exit_ops);  // before the reactor sees the job
  // The listener first: the reactor may deliver events as soon as the job is added.
  try {
    job->listener = std::make_unique<JsListener>(listener);
  } catch (const Napi::Error&) {
    job->kill_and_reap();  // nobody could hear of it: it must not run unobserved
    job->log->finish();
    throw;
  }
  try {
    reactor_for(env).add(job);
  } catch (const NativeError& error) {
    job->listener.reset();  // the reactor kills, reaps and forgets the job: it must not run unobserved
    throw native_error_to_js(env, error);
  }
  AddonState* state = env.GetInstanceData<AddonState>();
  Napi::Object handle = state->process_handle_class.New({});
  ProcessHandle::Unwrap(handle)->job = job;
  return handle;
}

// spawn({ execCandidates, argv, env, cwd?, cgroupFd?, joinTasksFds?, cgroupPath?, joinTasksPaths?,
//         setupOps?, exitOps?, logPath, logRecycleFrom?, logMaxBytes?, logBudget?, uid?, gid?, groups?,
//         nofileSoft?, isolation?, forceGatedFork? }, listener(event)) -> ProcessHandle
// On the calling (JS) thread, which waits the fraction of a millisecond until the child has exec'd.
Napi::Value Spawn(const Napi::CallbackInfo& info) {
  SpawnCall call = parse_spawn_call(info, "spawn");
  reactor_for(info.Env());
  SpawnOutcome out;
  run_spawn(call, out);
  return adopt_outcome(info.Env(), call, out, info[1].As<Napi::Function>());
}

// spawnAsync(options, listener) -> Promise<ProcessHandle>: the same on a libuv threadpool thread, so
// the JS thread goes on serving while the child gets to exec (on a loaded host that is most of a
// spawn). Exec failures reject the promise; the job is never "started" before it runs.
class SpawnWork : public Napi::AsyncWorker {
 public:
  SpawnWork(Napi::Env env, SpawnCall call, Napi::Function listener)
      : Napi::AsyncWorker(env, "jobworker.spawn"), call_(std::move(call)), deferred_(Napi::Promise::Deferred::New(env)) {
    listener_ = Napi::Persistent(listener);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { run_spawn(call_, out_); }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(adopt_outcome(env, call_, out_, listener_.Value()));
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }

 private:
  SpawnCall call_;
  SpawnOutcome out_;
  Napi::FunctionReference listener_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value SpawnAsync(const Napi::CallbackInfo& info) {
  SpawnCall call = parse_spawn_call(info, "spawnAsync");
  reactor_for(info.Env());
  auto* work = new SpawnWork(info.Env(), std::move(call), info[1].As<Napi::Function>());
  Napi::Promise promise = work->promise();
  work->Queue();  // the AsyncWorker deletes itself after OnOK
  return promise;
}

// fsOps(encodedOps) -> Promise<{ completed, reads: (string|null)[], error? }> (encodedOps: see
// parse_fs_ops; the shape: see fs_ops_outcome_to_js). Runs the ops in order on a libuv threadpool
// thread and stops at the first failure, which is reported (not thrown): the caller needs
// `completed` to undo what was done.
class FsOpsWork : public Napi::AsyncWorker {
 public:
  FsOpsWork(Napi::Env env, std::vector<FsOp> ops)
      : Napi::AsyncWorker(env, "jobworker.fsOps"), ops_(std::move(ops)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { out_ = run_fs_ops(ops_, Stage::kFsOps); }
  void OnOK() override { deferred_.Resolve(fs_ops_outcome_to_js(Env(), out_)); }

 private:
  std::vector<FsOp> ops_;
  FsOpsOutcome out_;
  Napi::Promise::Deferred deferred_;
};

Napi::Value FsOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<FsOp> ops = parse_fs_ops(env, info[0], "fsOps");
  auto* work = new FsOpsWork(env, std::move(ops));
  Napi::Promise promise = work->promise();
  work->Queue();  // deletes itself after OnOK
  return promise;
}

// Returns the allocator's free memory to the kernel (glibc malloc_trim): after a burst, freed
// buffers stay in malloc's arenas, counted in RSS, until trimmed. True if memory was released.
Napi::Value TrimNativeHeap(const Napi::CallbackInfo& info) {
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);  // other C libraries: nothing to call
#endif
}

// tryLockExclusive(fd) -> true if this fd now holds flock(LOCK_EX) on its file, false if another
// open file description holds a lock on it. The lock goes with the fd (closed by the caller, or by
// the kernel when the process dies): nothing stale is ever left. Works on any file or directory,
// cgroupfs directories included (how a jobworker marks the cgroup root it owns).
Napi::Value TryLockExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "tryLockExclusive(fd): an fd is required");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int result;
  do result = flock(fd, LOCK_EX | LOCK_NB);
  while (result < 0 && errno == EINTR);
  if (result == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  throw native_error_to_js(env, NativeError{Stage::kFsOps, errno, ""});
}

// readCached(fd, buffer, offset, length, position) -> bytes read (0 at the end of the file), or -1
// when the first bytes asked for are not in the page cache, or the kernel or filesystem cannot say
// (then read them the usual way, on the threadpool). preadv2(RWF_NOWAIT) never waits for the disk,
// so the JS thread can afford it: reading a just-written log from the cache here costs ~1/5 of an
// async read's CPU (the threadpool hop and the wake-ups are most of a small read's cost). It may
// return fewer bytes than asked for (the rest is not cached). Errors are -1 too: the usual read
// reports them.
Napi::Value ReadCached(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber())
    throw Napi::TypeError::New(env, "readCached(fd, buffer, offset, length, position) required");
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array buffer = info[1].As<Napi::Uint8Array>();
  int64_t offset = info[2].As<Napi::Number>().Int64Value();
  int64_t length = info[3].As<Napi::Number>().Int64Value();
  int64_t position = info[4].As<Napi::Number>().Int64Value();
  if (buffer.TypedArrayType() != napi_uint8_array || offset < 0 || length < 0 || position < 0 ||
      static_cast<uint64_t>(offset) + static_cast<uint64_t>(length) > buffer.ByteLength())
    throw Napi::RangeError::New(env, "readCached: offset and length must lie within the buffer, position must be >= 0");
  struct iovec iov = {buffer.Data() + offset, static_cast<size_t>(length)};
  ssize_t n;
  do n = preadv2(fd, &iov, 1, static_cast<off_t>(position), RWF_NOWAIT);
  while (n < 0 && errno == EINTR);
  return Napi::Number::New(env, n < 0 ? -1.0 : static_cast<double>(n));
}

// pidfdOpen(pid) -> an fd that names that process and no other (pidfd_open), or -1 if no process
// has the pid now. The caller closes it. With pidfdSendSignal, signalling a pid read from a list
// cannot reach a process that took the pid over after the list was read (see job-processes.ts).
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "pidfdOpen(pid): a pid is required");
  int pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) throw Napi::RangeError::New(env, "pidfdOpen: the pid must be positive");
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    // pidfd_open's fds are close-on-exec already (O_CLOEXEC is implied); said here for the reader.
    return Napi::Number::New(env, fd);
  }
  if (errno == ESRCH) return Napi::Number::New(env, -1);
  throw native_error_to_js(env, NativeError{Stage::kFsOps, errno, "pidfd_open"});
}

// pidfdSendSignal(fd, signo) -> true if sent, false if that process has exited.
Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "pidfdSendSignal(fd, signo) required");
  int fd = info[0].As<Napi::Number>().Int32Value();
  int signo = info[1].As<Napi::Number>().Int32Value();
  if (syscall(SYS_pidfd_send_signal, fd, signo, nullptr, 0) == 0) return Napi::Boolean::New(env, true);
  if (errno == ESRCH) return Napi::Boolean::New(env, false);
  throw native_error_to_js(env, NativeError{Stage::kFsOps, errno, "pidfd_send_signal"});
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* state = new AddonState();
  env.SetInstanceData<AddonState>(state);
  Napi::Function handle_class = ProcessHandle::Define(env);
  state->process_handle_class = Napi::Persistent(handle_class);
  exports.Set("spawn", Napi::Function::New(env, Spawn, "spawn"));
  exports.Set("spawnAsync", Napi::Function::New(env, SpawnAsync, "spawnAsync"));
  exports.Set("ProcessHandle", handle_class);
  exports.Set("fsOps", Napi::Function::New(env, FsOps, "fsOps"));
  exports.Set("trimNativeHeap", Napi::Function::New(env, TrimNativeHeap, "trimNativeHeap"));
  Napi::Function budget_class = LogBudgetHandle::Define(env);
  state->log_budget_class = Napi::Persistent(budget_class);
  exports.Set("LogBudget", budget_class);
  exports.Set("tryLockExclusive", Napi::Function::New(env, TryLockExclusive, "tryLockExclusive"));
  exports.Set("readCached", Napi::Function::New(env, ReadCached, "readCached"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal, "pidfdSendSignal"));
  return exports;
}

}  // namespace
}  // namespace jw

static Napi::Object InitJobworker(Napi::Env env, Napi::Object exports) { return jw::Init(env, exports); }
NODE_API_MODULE(jobworker, InitJobworker)

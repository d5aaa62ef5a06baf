#include "fs_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "unique_fd.h"

namespace jw {

namespace {

// Reads a whole (small) control file. Returns 0 or an errno.
int read_control_file(const std::string& path, std::string& out) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  out.clear();
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return 0;
    out.append(buffer, static_cast<size_t>(n));
  }
}

int write_control_file(const std::string& path, const std::string& value) {
  // O_WRONLY without O_CREAT: a missing control file is ENOENT, and write-only files such as
  // cgroup.kill refuse O_RDWR.
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  ssize_t n;
  do n = write(fd.get(), value.data(), value.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  return static_cast<size_t>(n) == value.size() ? 0 : EIO;
}

int create_empty_file(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640));
  return fd.valid() ? 0 : errno;
}

int run_one(const FsOp& op, std::string& read_into) {
  switch (op.kind) {
    case FsOpKind::kMkdir: return mkdir(op.path.c_str(), 0755) == 0 ? 0 : errno;
    case FsOpKind::kRmdir: return rmdir(op.path.c_str()) == 0 ? 0 : errno;
    case FsOpKind::kWrite: return write_control_file(op.path, op.value);
    case FsOpKind::kRead: return read_control_file(op.path, read_into);
    case FsOpKind::kCreate: return create_empty_file(op.path);
  }
  return EINVAL;
}

}  // namespace

void run_fs_ops(const std::vector<FsOp>& ops, FsOpsOutcome& out) {
  out.reads.assign(ops.size(), std::string());
  out.skipped.assign(ops.size(), false);
  for (out.completed = 0; out.completed < ops.size(); out.completed++) {
    const FsOp& op = ops[out.completed];
    int err = run_one(op, out.reads[out.completed]);
    if (err == ENOENT && op.optional) {
      out.skipped[out.completed] = true;
      continue;
    }
    if (err != 0) {
      out.err = err;
      return;
    }
  }
}

napi_value fs_ops_outcome_to_js(napi_env env, const std::vector<FsOp>& ops, const FsOpsOutcome& out) {
  napi_value result, value, reads, null_value;
  napi_create_object(env, &result);
  napi_get_null(env, &null_value);
  napi_create_double(env, static_cast<double>(out.completed), &value);
  napi_set_named_property(env, result, "completed", value);
  napi_create_array_with_length(env, ops.size(), &reads);
  for (size_t i = 0; i < ops.size(); i++) {
    bool has_text = ops[i].kind == FsOpKind::kRead && i < out.completed && !out.skipped[i];
    if (has_text) napi_create_string_utf8(env, out.reads[i].data(), out.reads[i].size(), &value);
    napi_set_element(env, reads, static_cast<uint32_t>(i), has_text ? value : null_value);
  }
  napi_set_named_property(env, result, "reads", reads);
  if (out.err != 0) {
    const char* name = strerrorname_np(out.err);
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, result, "code", value);
    napi_create_int32(env, out.err, &value);
    napi_set_named_property(env, result, "errno", value);
    napi_create_string_utf8(env, strerror(out.err), NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, result, "message", value);
  }
  return result;
}

}  // namespace jw

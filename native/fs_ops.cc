#include "fs_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

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

// A directory only its owner may use: made 0700 as root, then given away. Never left half-made: a
// chown that fails removes it again.
int make_private_dir(const FsOp& op) {
  if (mkdir(op.path.c_str(), 0700) < 0) return errno;
  if (chown(op.path.c_str(), op.uid, op.gid) == 0) return 0;
  int err = errno;
  rmdir(op.path.c_str());
  return err;
}

int run_one(const FsOp& op, std::string& read_into) {
  switch (op.kind) {
    case FsOpKind::kMkdir: return mkdir(op.path.c_str(), 0755) == 0 ? 0 : errno;
    case FsOpKind::kRmdir: return rmdir(op.path.c_str()) == 0 ? 0 : errno;
    case FsOpKind::kWrite: return write_control_file(op.path, op.value);
    case FsOpKind::kRead: return read_control_file(op.path, read_into);
    case FsOpKind::kCreate: return create_empty_file(op.path);
    case FsOpKind::kMkdirPrivate: return make_private_dir(op);
  }
  return EINVAL;
}

}  // namespace

FsOpsOutcome run_fs_ops(const std::vector<FsOp>& ops, Stage stage) {
  FsOpsOutcome out;
  out.reads.resize(ops.size());
  out.skipped.assign(ops.size(), false);
  std::string text;
  for (out.completed = 0; out.completed < ops.size(); out.completed++) {
    const FsOp& op = ops[out.completed];
    int err = run_one(op, text);
    if (err == ENOENT && op.optional) {
      out.skipped[out.completed] = true;
      continue;
    }
    if (err != 0) {
      out.error = NativeError{stage, err, op.path, static_cast<int>(out.completed)};
      return out;
    }
    if (op.kind == FsOpKind::kRead) out.reads[out.completed] = std::move(text);
  }
  return out;
}

}  // namespace jw

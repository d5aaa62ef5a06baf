#include "log_writer.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "log_format.h"

namespace jw {

uint64_t realtime_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// A file we may overwrite in place: a plain file of ours with one name. Anything else renamed into
// the log's place (a symbolic or hard link planted as a spare) must not be written through.
bool own_plain_file(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == geteuid();
}

}  // namespace

LogWriter::LogWriter(const std::string& path, uint64_t max_bytes, bool reuse, std::shared_ptr<LogBudget> budget)
    : max_bytes_(max_bytes), budget_(std::move(budget)) {
  // Never through a link (O_NOFOLLOW), and a new log is a new file (O_EXCL): the state directory
  // may hold links planted there, and the daemon runs as root.
  if (reuse) {
    file_.reset(open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (file_.valid() && !own_plain_file(file_.get())) file_.reset();
    if (!file_.valid()) unlink(path.c_str());  // what took the spare's name goes (a link's target stays)
  }
  if (!file_.valid()) file_.reset(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640));
  if (!file_.valid()) throw NativeError{Stage::kLog, errno, path};
  uint8_t header[kFileHeaderSize];
  encode_file_header(header);
  ssize_t written = pwrite(file_.get(), header, sizeof header, 0);
  if (written != static_cast<ssize_t>(sizeof header)) throw NativeError{Stage::kLog, written < 0 ? errno : ENOSPC, path};
  if (reuse) {
    // Never let a longer file's old records pass for this job's.
    struct stat st;
    if (fstat(file_.get(), &st) != 0) throw NativeError{Stage::kLog, errno, path};
    if (st.st_size > static_cast<off_t>(kFileHeaderSize) && ftruncate(file_.get(), kFileHeaderSize) != 0)
      throw NativeError{Stage::kLog, errno, path};
  }
  offset_ = kFileHeaderSize;
  committed_.store(offset_);  // seq_cst: pairs with the watch flag (see Reactor::request_output_event)
}

void LogWriter::note_error(int err) {
  if (first_error_ == 0) first_error_ = err;
}

bool LogWriter::write_record(uint8_t stream, const char* payload, size_t len) {
  uint8_t header[kRecordHeaderSize];
  encode_record_header(header, stream, static_cast<uint32_t>(len), realtime_ns());
  struct iovec iov[2] = {{header, sizeof header}, {const_cast<char*>(payload), len}};
  ssize_t n = pwritev(file_.get(), iov, 2, static_cast<off_t>(offset_));
  if (n != static_cast<ssize_t>(sizeof header + len)) {
    note_error(n < 0 ? errno : ENOSPC);
    return false;
  }
  offset_ += n;
  committed_.store(offset_);  // seq_cst: pairs with the watch flag (see Reactor::request_output_event)
  return true;
}

bool LogWriter::write_marker(const std::string& json) { return write_record(kMarker, json.data(), json.size()); }

std::string LogWriter::dropped_marker() const {
  const char* name = first_error_ ? strerrorname_np(first_error_) : nullptr;
  char json[160];
  snprintf(json, sizeof json, "{\"event\":\"dropped\",\"reason\":\"write-error\",\"error\":\"%s\",\"bytes\":%llu}",
           name ? name : "EIO", static_cast<unsigned long long>(dropped_since_error_));
  return json;
}

// Header first, with the exact length FIONREAD promised; then the payload straight from the pipe.
// A short splice (disk full) rewrites the header with what really landed. Returns the bytes taken
// out of the pipe; *kept says how many of them are now in a committed record (all or none).
size_t LogWriter::splice_record(int pipe_fd, uint8_t stream, size_t take, size_t* kept) {
  *kept = 0;
  uint8_t header[kRecordHeaderSize];
  uint64_t time_ns = realtime_ns();
  encode_record_header(header, stream, static_cast<uint32_t>(take), time_ns);
  if (pwrite(file_.get(), header, sizeof header, static_cast<off_t>(offset_)) != static_cast<ssize_t>(sizeof header)) {
    note_error(errno ? errno : ENOSPC);
    return 0;
  }
  loff_t pos = static_cast<loff_t>(offset_ + kRecordHeaderSize);
  size_t moved = 0;
  while (moved < take) {
    ssize_t n = splice(pipe_fd, nullptr, file_.get(), &pos, take - moved, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      moved += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      note_error(n < 0 ? errno : EIO);
      break;
    }
  }
  // Nothing landed: the header stays beyond the committed offset and is overwritten or cut later.
  if (moved == 0) return 0;
  if (moved < take) {
    encode_record_header(header, stream, static_cast<uint32_t>(moved), time_ns);
    if (pwrite(file_.get(), header, sizeof header, static_cast<off_t>(offset_)) != static_cast<ssize_t>(sizeof header))
      return moved;
  }
  offset_ += kRecordHeaderSize + moved;
  output_bytes_ += moved;
  committed_.store(offset_);  // seq_cst: pairs with the watch flag (see Reactor::request_output_event)
  *kept = moved;
  return moved;
}

void LogWriter::discard(int pipe_fd, size_t count) {
  // Opened on first use: most jobs never drop a byte, and every open costs each spawn.
  if (count > 0 && !dev_null_.valid()) dev_null_.reset(open("/dev/null", O_WRONLY | O_CLOEXEC));
  while (count > 0) {
    ssize_t n = splice(pipe_fd, nullptr, dev_null_.get(), nullptr, count, SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EINVAL || errno == EBADF)) {  // no splice to /dev/null (or no /dev/null fd): read into a scratch buffer
      char scratch[16384];
      n = read(pipe_fd, scratch, count < sizeof scratch ? count : sizeof scratch);
      if (n < 0 && errno == EINTR) continue;
    }
    if (n <= 0) return;
    count -= static_cast<size_t>(n);
  }
}

std::string LogWriter::truncated_marker(bool by_budget) const {
  char json[128];
  if (by_budget) {
    snprintf(json, sizeof json, "{\"event\":\"truncated\",\"reason\":\"identity-quota\",\"limitBytes\":%lld}",
             static_cast<long long>(budget_->limit()));
  } else {
    snprintf(json, sizeof json, "{\"event\":\"truncated\",\"limitBytes\":%llu}", static_cast<unsigned long long>(max_bytes_));
  }
  return json;
}

size_t LogWriter::claim_budget(size_t take, uint64_t* claimed) {
  auto with_headers = [](uint64_t payload) {
    return payload + (payload + kMaxRecordPayload - 1) / kMaxRecordPayload * kRecordHeaderSize;
  };
  uint64_t want = with_headers(take);
  *claimed = budget_->claim(want);
  if (*claimed == want) return take;
  // The most output that fits in the grant, each record of it with its header.
  uint64_t full = *claimed / (kMaxRecordPayload + kRecordHeaderSize);
  uint64_t rest = *claimed - full * (kMaxRecordPayload + kRecordHeaderSize);
  return static_cast<size_t>(full * kMaxRecordPayload + (rest > kRecordHeaderSize ? rest - kRecordHeaderSize : 0));
}

void LogWriter::settle_budget(uint64_t claimed, uint64_t offset_before) {
  if (budget_) budget_->settle(claimed, offset_ - offset_before);
}

size_t LogWriter::append_from_pipe(int pipe_fd, uint8_t stream, size_t available) {
  if (truncated_ || !file_.valid()) {
    discard(pipe_fd, available);
    dropped_ += available;
    return available;
  }
  const uint64_t offset_before = offset_;
  if (dropped_since_error_ > 0) {
    if (!write_marker(dropped_marker())) {
      discard(pipe_fd, available);
      dropped_ += available;
      dropped_since_error_ += available;
      return available;
    }
    dropped_since_error_ = 0;
  }
  // Up to the cap and what the identity's budget grants, in records of at most kMaxRecordPayload;
  // the rest is read and dropped.
  uint64_t room = max_bytes_ - output_bytes_;
  size_t take = available < room ? available : static_cast<size_t>(room);
  uint64_t claimed = 0;
  bool by_budget = false;
  if (budget_ && take > 0) {
    size_t granted = claim_budget(take, &claimed);
    by_budget = granted < take;
    take = granted;
  }
  size_t consumed = 0, kept = 0;
  while (consumed < take) {
    size_t chunk = take - consumed < kMaxRecordPayload ? take - consumed : kMaxRecordPayload;
    size_t chunk_kept = 0;
    consumed += splice_record(pipe_fd, stream, chunk, &chunk_kept);
    kept += chunk_kept;
    if (chunk_kept < chunk) break;  // a write failed: the rest of this read is dropped below
  }
  discard(pipe_fd, available - consumed);
  size_t lost = available - kept;
  if (lost > 0) {
    dropped_ += lost;
    if (kept < take) {
      dropped_since_error_ += lost;  // a write failed: a marker says so once writes work again
    } else {
      truncated_ = true;
      write_marker(truncated_marker(by_budget));
    }
  }
  settle_budget(claimed, offset_before);
  return available;
}

void LogWriter::finish() {
  if (!file_.valid()) return;
  if (dropped_since_error_ > 0) {
    const uint64_t offset_before = offset_;
    if (write_marker(dropped_marker())) dropped_since_error_ = 0;
    settle_budget(0, offset_before);
  }
  // A failed record may have left bytes past the last complete one: cut them.
  if (ftruncate(file_.get(), static_cast<off_t>(offset_)) < 0) note_error(errno);
  file_.reset();
  dev_null_.reset();
}

}  // namespace jw

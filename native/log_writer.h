// Appends a job's output to its log file as framed records (log_format.h), moving the bytes from the
// pipe with splice(2) so they never pass through user space. Owned by the reactor thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "log_budget.h"
#include "native_error.h"
#include "unique_fd.h"

namespace jw {

class LogWriter {
 public:
  // Creates the file (a new one: O_EXCL, never through a link) and writes its header. Throws
  // NativeError (stage kLog, the path).
  // `max_bytes` caps the job's output kept: record payloads, not headers or markers (see
  // docs/log-format.md, "Size cap").
  // `reuse`: the file is an emptied log of ours (at most a header long, its first block still
  // allocated): it is overwritten in place rather than truncated, so no block is freed and
  // allocated again (each free is a synchronous discard on a filesystem mounted -o discard). If it
  // is not a plain file of ours with one name (a link), its name is unlinked and a new file made.
  // `budget`: the identity's log budget (shared with its other jobs), charged with every byte
  // appended after the file header (records and markers); output beyond it is dropped as beyond
  // the cap, with a marker saying which limit was reached.
  LogWriter(const std::string& path, uint64_t max_bytes, bool reuse = false, std::shared_ptr<LogBudget> budget = nullptr);

  // Moves `available` bytes (FIONREAD) from the pipe into records of `stream` (kMaxRecordPayload at
  // most each). Bytes that cannot be kept (beyond the cap, disk full) are still consumed from the
  // pipe, so the job never blocks on a full pipe, and are counted in dropped_bytes(). Returns the
  // bytes consumed from the pipe.
  size_t append_from_pipe(int pipe_fd, uint8_t stream, size_t available);

  // Called once capture ends: records what was dropped, cuts any torn tail, closes the file.
  void finish();

  // Bytes of complete records, readable by anyone: only complete records are ever below this offset.
  uint64_t committed() const { return committed_.load(); }
  uint64_t dropped_bytes() const { return dropped_; }
  bool truncated() const { return truncated_; }
  int first_error() const { return first_error_; }  // errno of the first failed write, 0 if none

 private:
  bool write_record(uint8_t stream, const char* payload, size_t len);
  bool write_marker(const std::string& json);
  size_t splice_record(int pipe_fd, uint8_t stream, size_t take, size_t* kept);
  std::string dropped_marker() const;
  std::string truncated_marker(bool by_budget) const;
  // How much of `take` output bytes the budget grants, in records with their headers; `claimed`
  // says what was taken from the budget (settled once the bytes are written).
  size_t claim_budget(size_t take, uint64_t* claimed);
  void settle_budget(uint64_t claimed, uint64_t offset_before);
  void discard(int pipe_fd, size_t count);
  void note_error(int err);

  UniqueFd file_;
  UniqueFd dev_null_;
  uint64_t max_bytes_;   // cap on output_bytes_
  std::shared_ptr<LogBudget> budget_;  // null: no identity budget
  uint64_t output_bytes_ = 0;  // job output kept so far: the payloads of stdout and stderr records
  uint64_t offset_ = 0;  // where the next record goes (== committed_)
  std::atomic<uint64_t> committed_{0};
  uint64_t dropped_ = 0;
  uint64_t dropped_since_error_ = 0;  // dropped because writes failed, not yet reported by a marker
  bool truncated_ = false;
  int first_error_ = 0;
};

uint64_t realtime_ns();

}  // namespace jw

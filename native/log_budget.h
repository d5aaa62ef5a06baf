// Bytes of log an identity may still write, shared by every running job of that identity and by the
// JavaScript side that accounts for its finished jobs' logs (src/worker/identity-ledger.ts). The
// capture thread claims room before it writes a record and settles with what it really appended;
// JavaScript charges retained logs at start-up and releases a log's bytes when it is removed. Every
// operation is one atomic step, so the sum of what all writers keep never passes the limit (markers,
// a few dozen bytes each, are charged even beyond it).
#pragma once

#include <atomic>
#include <cstdint>

namespace jw {

class LogBudget {
 public:
  explicit LogBudget(int64_t limit) : limit_(limit) {}

  int64_t limit() const { return limit_; }
  int64_t used() const { return used_.load(); }

  // Takes up to `want` bytes of what is left; returns how many were granted (0 when none is left).
  uint64_t claim(uint64_t want) {
    int64_t used = used_.load();
    for (;;) {
      int64_t left = limit_ - used;
      if (left <= 0 || want == 0) return 0;
      int64_t grant = static_cast<int64_t>(want) < left ? static_cast<int64_t>(want) : left;
      if (used_.compare_exchange_weak(used, used + grant)) return static_cast<uint64_t>(grant);
    }
  }

  // After a claim of `claimed` bytes, `appended` were really written: the difference goes back
  // (or, for markers written beyond the claim, is charged).
  void settle(uint64_t claimed, uint64_t appended) {
    used_.fetch_add(static_cast<int64_t>(appended) - static_cast<int64_t>(claimed));
  }

  // Unconditional: positive charges bytes already on disk (retained logs), negative releases them.
  void add(int64_t bytes) { used_.fetch_add(bytes); }

 private:
  const int64_t limit_;
  std::atomic<int64_t> used_{0};
};

}  // namespace jw

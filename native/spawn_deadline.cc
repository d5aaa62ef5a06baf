#include "spawn_deadline.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

namespace jw {

// The spawns waiting now, in a list the watchdog walks; started with the first spawn and never
// stopped (it sleeps while there is nothing to watch). Process-wide: every addon instance (the main
// thread's and any worker thread's) spawns from the same process.
class SpawnWatchdog {
 public:
  static SpawnWatchdog& instance() {
    // Leaked on purpose: the detached thread may still be waiting on it while the process exits.
    static SpawnWatchdog* watchdog = new SpawnWatchdog();
    return *watchdog;
  }

  void add(SpawnDeadline* entry) {
    std::lock_guard<std::mutex> lock(mutex_);
    entry->next_ = head_;
    head_ = entry;
    if (!started_) {
      try {
        std::thread(&SpawnWatchdog::run, this).detach();
        started_ = true;
      } catch (const std::system_error&) {
        // No thread to be had (EAGAIN): this spawn goes without a deadline; the next one tries again.
      }
    }
    wake_.notify_one();
  }

  // Unlinks the entry and returns whether it fired: one lock, so no kill comes after the answer.
  bool remove(SpawnDeadline* entry) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (SpawnDeadline** link = &head_; *link != nullptr; link = &(*link)->next_) {
      if (*link == entry) {
        *link = entry->next_;
        break;
      }
    }
    return entry->fired_;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      auto now = std::chrono::steady_clock::now();
      auto next = std::chrono::steady_clock::time_point::max();
      for (SpawnDeadline* entry = head_; entry != nullptr; entry = entry->next_) {
        if (entry->fired_) continue;
        int pidfd = *entry->pidfd_;
        if (entry->deadline_ <= now && pidfd >= 0) {
          // The entry is registered, so its pidfd is open (the spawn closes it only after removing
          // the entry, which takes this mutex). ESRCH: it has exited meanwhile; fine.
          syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
          entry->fired_ = true;
        } else if (entry->deadline_ > now && entry->deadline_ < next) {
          next = entry->deadline_;
        } else if (entry->deadline_ <= now) {
          next = now + std::chrono::milliseconds(10);  // its pidfd is not written yet: look again soon
        }
      }
      if (next == std::chrono::steady_clock::time_point::max()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, next);
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  SpawnDeadline* head_ = nullptr;
  bool started_ = false;
};

SpawnDeadline::SpawnDeadline(const volatile int* pidfd, std::chrono::milliseconds limit)
    : pidfd_(pidfd), deadline_(std::chrono::steady_clock::now() + limit) {
  SpawnWatchdog::instance().add(this);
}

SpawnDeadline::~SpawnDeadline() { finish(); }

bool SpawnDeadline::finish() {
  if (!finished_) {
    finished_ = true;
    fired_at_finish_ = SpawnWatchdog::instance().remove(this);
  }
  return fired_at_finish_;
}

}  // namespace jw

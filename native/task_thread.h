// One thread that runs the tasks posted to it, in order. The capture thread hands it the work that
// may block on the kernel (a job's exit ops: a v1 rmdir can wait for an RCU grace period), so that
// such a wait never holds up moving any job's output.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

#include "native_error.h"

namespace jw {

class TaskThread {
 public:
  // Throws NativeError (stage kReactor) if the thread cannot be created.
  TaskThread() {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& error) {
      throw NativeError{Stage::kReactor, error.code().value()};
    }
  }
  // Runs what is still queued, then joins.
  ~TaskThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }
  TaskThread(const TaskThread&) = delete;
  TaskThread& operator=(const TaskThread&) = delete;

  // Any thread.
  void post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left to do
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;  // guards tasks_ and stopping_
  std::condition_variable ready_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace jw

#pragma once
// The CPU backend's threads. Not OpenMP: libgomp's workers spin at every barrier, and when the
// machine is shared (a 2-core CI runner, a build in the background) a descheduled spinner stalls
// every parallel region for a scheduler quantum -- measured here as a 17x slowdown of a 0.6B
// model. These workers spin only briefly, then sleep, so a busy machine costs a wake-up, not a
// quantum, and results stay meaningful.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace kvb::cpu {

class ThreadPool {
 public:
  static ThreadPool& instance();
  ~ThreadPool();

  // Total threads used by run(), the caller included; 0 = all cores. Not while run() is active.
  void set_threads(int n);
  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(ctx, task) for every task in [0, n_tasks) across the threads and returns when all
  // are done. Called from inside a task, it runs the tasks serially (no nested parallelism).
  void run(int n_tasks, void (*fn)(void*, int), void* ctx);

  // 0 for the calling thread, 1.. for workers: an index into per-thread scratch.
  static int current_index();

 private:
  ThreadPool();
  void worker_loop(int index, uint64_t seen);
  void drain();
  void stop_workers();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> generation_{0};
  // The current job as one word, so that claiming a task can never mix two jobs:
  // generation (32 bits) | task count (16 bits) | next unclaimed task (16 bits).
  std::atomic<uint64_t> job_{0};
  std::atomic<int> remaining_{0};
  void (*fn_)(void*, int) = nullptr;
  void* ctx_ = nullptr;
  bool stopping_ = false;
};

}  // namespace kvb::cpu

#include "kernels/cpu/thread_pool.hpp"

#include <chrono>

namespace kvb::cpu {

namespace {
thread_local int t_index = 0;
thread_local bool t_in_task = false;
// About 20 microseconds of polling before sleeping: long enough to catch the next region of a
// decode step on a quiet machine, short enough not to steal a busy one.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool& ThreadPool::instance() {
  static ThreadPool pool;
  return pool;
}

ThreadPool::ThreadPool() { set_threads(0); }

ThreadPool::~ThreadPool() { stop_workers(); }

int ThreadPool::current_index() { return t_index; }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  stopping_ = false;
}

void ThreadPool::set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (n == threads()) return;
  stop_workers();
  const uint64_t now = generation_.load();
  for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, now] { worker_loop(i, now); });
}

void ThreadPool::drain() {
  t_in_task = true;
  uint64_t job = job_.load(std::memory_order_acquire);
  while (true) {
    const uint32_t count = (job >> 16) & 0xffff, next = job & 0xffff;
    if (next >= count) break;
    // Claim `next` of exactly this job; on failure `job` is reloaded and we look again. A task
    // of a job left unclaimed keeps that job from finishing, so fn_ and ctx_ are still its own.
    if (!job_.compare_exchange_weak(job, job + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn_(ctx_, static_cast<int>(next));
    if (remaining_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
    job = job_.load(std::memory_order_acquire);
  }
  t_in_task = false;
}

void ThreadPool::worker_loop(int index, uint64_t seen) {
  t_index = index;
  while (true) {
    for (int spins = 0; generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations; ++spins) {
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
      if (stopping_) return;
      seen = generation_.load();
    }
    drain();
  }
}

void ThreadPool::run(int n_tasks, void (*fn)(void*, int), void* ctx) {
  if (n_tasks <= 0) return;
  if (t_in_task || workers_.empty() || n_tasks == 1 || n_tasks > 0xffff) {
    for (int t = 0; t < n_tasks; ++t) fn(ctx, t);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The previous job is finished (every task claimed and done), so no one reads fn_ and ctx_
    // until job_ announces this one.
    fn_ = fn;
    ctx_ = ctx;
    remaining_.store(n_tasks);
    const uint64_t generation = generation_.load() + 1;
    job_.store(((generation & 0xffffffffu) << 32) | (uint64_t(n_tasks) << 16), std::memory_order_release);
    generation_.store(generation);
  }
  wake_.notify_all();
  drain();
  int spins = 0;
  while (remaining_.load(std::memory_order_acquire) > 0 && spins < kSpinIterations) ++spins;
  if (remaining_.load() > 0) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return remaining_.load() == 0; });
  }
}

}  // namespace kvb::cpu

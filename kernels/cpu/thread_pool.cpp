#include "kernels/cpu/thread_pool.hpp"

#include <chrono>

namespace kvb::cpu {

namespace {
thread_local int t_index = 0;
thread_local bool t_in_task = false;
// Polling before sleeping, by the clock: long enough that the two halves of a memory-bound matmul
// (which finish tens of microseconds apart) and the next region of a decode step meet a thread
// still awake, since a futex wake-up costs ~40 us on these VMs; short enough not to steal a busy
// machine's core for long. (It was 20000 polls, ~7 us: a 2 MB bf16 matmul then took 140 us with
// two threads against 95 us of reading; docs/perf-notes.md.) No `pause` in the loop: under a
// hypervisor a pause loop can make the vCPU yield.
constexpr auto kSpinTime = std::chrono::microseconds(200);

// Polls done() until it holds (true) or kSpinTime has passed (false).
template <class Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (uint32_t polls = 1;; ++polls) {
    if (done()) return true;
    if (polls % 256 == 0 && std::chrono::steady_clock::now() >= deadline) return false;
  }
}
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
    spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
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
  if (!spin_until([&] { return remaining_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return remaining_.load() == 0; });
  }
}

}  // namespace kvb::cpu

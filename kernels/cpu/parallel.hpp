#pragma once
// Runs f(0..n-1) on the CPU backend's threads when `parallel`, else as a plain loop. Deciding
// before dispatch matters: a tiny model's decode step is ~40 us, so a thread wake-up per op
// would dominate it. Each thread gets one contiguous block of indices.
#include <algorithm>

#include "kernels/cpu/thread_pool.hpp"

namespace kvb::cpu {

template <typename F>
void parallel_for(int n, bool parallel, F&& f) {
  ThreadPool& pool = ThreadPool::instance();
  if (!parallel || pool.threads() == 1 || n < 2) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  struct Job {
    F* f;
    int n, blocks;
  } job{&f, n, std::min(n, pool.threads())};
  pool.run(job.blocks, [](void* ctx, int block) {
    Job& j = *static_cast<Job*>(ctx);
    const int begin = static_cast<int>(int64_t(j.n) * block / j.blocks);
    const int end = static_cast<int>(int64_t(j.n) * (block + 1) / j.blocks);
    for (int i = begin; i < end; ++i) (*j.f)(i);
  }, &job);
}

}  // namespace kvb::cpu

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "kernels/cpu/parallel.hpp"
#include "kernels/cpu/thread_pool.hpp"

namespace kvb::cpu {
namespace {

TEST(ThreadPool, EveryIndexRunsExactlyOnce) {
  ThreadPool& pool = ThreadPool::instance();
  for (int threads : {1, 2, 3, 5}) {
    pool.set_threads(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (int round = 0; round < 20000; ++round) {
      const int n = 1 + round % 37;
      std::vector<std::atomic<int>> hits(n);
      parallel_for(n, true, [&](int i) { hits[i].fetch_add(1); });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " round " << round;
    }
  }
  pool.set_threads(0);
}

TEST(ThreadPool, NestedCallsRunSeriallyInsideATask) {
  ThreadPool::instance().set_threads(3);
  std::atomic<int> total{0};
  parallel_for(6, true, [&](int) { parallel_for(10, true, [&](int) { total.fetch_add(1); }); });
  EXPECT_EQ(total.load(), 60);
  ThreadPool::instance().set_threads(0);
}

TEST(ThreadPool, IndicesOfThreadsAreDistinctAndInRange) {
  ThreadPool& pool = ThreadPool::instance();
  pool.set_threads(4);
  std::vector<std::atomic<int>> seen(4);
  parallel_for(4000, true, [&](int) { seen.at(ThreadPool::current_index()).fetch_add(1); });
  int sum = 0;
  for (auto& s : seen) sum += s.load();
  EXPECT_EQ(sum, 4000);
  pool.set_threads(0);
}

}  // namespace
}  // namespace kvb::cpu

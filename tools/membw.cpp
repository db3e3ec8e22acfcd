// Host memory bandwidth, the denominator of the CPU decode floor (docs/perf-notes.md): a decode
// step reads every weight once, so tokens/s can at best be bandwidth / bytes of weights. Reads a
// buffer far larger than the last-level cache with 1..N threads (eight-lane sums, four independent
// chains per thread and software prefetch, so the memory and not the adds is the limit), and
// copies it with memcpy.
//
//   build/kvbench_membw [GiB=4] [THREADS=all cores]
//
// Prints GB/s (10^9 bytes) per pass, the best of three: read with each thread count, and copy
// (one half of the buffer onto the other: bytes copied; read + write traffic is twice that). The
// buffer is the only allocation.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

typedef float f32x8 __attribute__((vector_size(32)));

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sums n floats from p (n a multiple of 32); the result keeps the loads from being optimised away.
float sum_floats(const float* p, size_t n) {
  f32x8 a = {}, b = {}, c = {}, d = {};
  for (size_t i = 0; i < n; i += 32) {
    // 4 KB ahead, as the matmul's prefetch of the next rows: without it the hardware prefetcher
    // alone left a third of the bandwidth unused on these VMs.
    __builtin_prefetch(p + i + 1024);
    __builtin_prefetch(p + i + 1024 + 16);
    f32x8 v[4];
    std::memcpy(v, p + i, sizeof v);
    a += v[0];
    b += v[1];
    c += v[2];
    d += v[3];
  }
  const f32x8 s = (a + b) + (c + d);
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

}  // namespace

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 4.0;
  const int max_threads = argc > 2 ? std::atoi(argv[2]) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (gib <= 0 || max_threads < 1) {
    std::fprintf(stderr, "usage: kvbench_membw [GiB > 0] [THREADS >= 1]\n");
    return 2;
  }
  const size_t floats = static_cast<size_t>(gib * (1u << 30) / sizeof(float)) / (32 * 64) * (32 * 64);
  std::vector<float> src(floats, 1.0f);
  volatile float sink = 0;
  for (int threads = 1; threads <= max_threads; ++threads) {
    double best = 0;
    for (int pass = 0; pass < 3; ++pass) {
      std::vector<std::thread> pool;
      std::vector<float> partial(threads);
      const double t0 = seconds_now();
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          const size_t begin = floats / threads * t / 32 * 32, end = t + 1 == threads ? floats : floats / threads * (t + 1) / 32 * 32;
          partial[t] = sum_floats(src.data() + begin, end - begin);
        });
      for (std::thread& th : pool) th.join();
      best = std::max(best, floats * sizeof(float) / (seconds_now() - t0) / 1e9);
      for (float p : partial) sink = sink + p;
    }
    std::printf("read, %d thread%s: %.1f GB/s\n", threads, threads == 1 ? "" : "s", best);
  }
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const double t0 = seconds_now();
    std::memcpy(src.data() + floats / 2, src.data(), floats / 2 * sizeof(float));
    best = std::max(best, floats / 2 * sizeof(float) / (seconds_now() - t0) / 1e9);
    sink = sink + src[floats - 1];
  }
  std::printf("copy (memcpy, 1 thread): %.1f GB/s copied, %.1f GB/s of traffic\n", best, 2 * best);
  return 0;
}

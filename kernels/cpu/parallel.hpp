#pragma once
// Runs f(0..n-1) across OpenMP threads when `parallel`, else as a plain loop. Deciding outside the
// pragma matters: even a region with a false `if` clause costs a libgomp team set-up (~0.3 us),
// which is a fifth of a whole decode step of a tiny model.
namespace kvb::cpu {

template <typename F>
void parallel_for(int n, bool parallel, F&& f) {
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; ++i) f(i);
  } else {
    for (int i = 0; i < n; ++i) f(i);
  }
}

}  // namespace kvb::cpu

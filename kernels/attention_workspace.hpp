#pragma once
// How the CUDA decode attention (kernels/cuda/attention.cu) splits long caches across blocks, and
// the workspace its split-K merge needs: host arithmetic, so that the engine's layout
// (engine/cuda_layout.cpp) can be counted on a machine without a GPU.
#include <algorithm>
#include <cstddef>

namespace kvb {

inline constexpr int kAttentionMinSplitSlots = 256;  // a split covers at least this many slots
inline constexpr int kAttentionMaxSplits = 64;
inline constexpr int kAttentionMaxTargetBlocks = 1024;  // bounds tokens x splits (and the workspace)

// Upper bound on the splits a launch with n tokens may use: n * splits <= kAttentionMaxTargetBlocks.
inline int attention_max_splits(int n, int capacity) {
  const int by_len = (capacity + kAttentionMinSplitSlots - 1) / kAttentionMinSplitSlots;
  const int by_blocks = kAttentionMaxTargetBlocks / n;
  return std::max(1, std::min(kAttentionMaxSplits, std::min(by_len, by_blocks)));
}

// Floats of workspace the attention of up to n tokens needs (monotone in n: a workspace sized for
// the largest batch serves every smaller one, e.g. decode after a long prefill chunk):
// acc [tokens][heads][splits][head_dim] and (max, sum) [tokens][heads][splits][2].
inline size_t attention_workspace_floats(int n, int n_heads, int head_dim, int capacity) {
  if (n <= 0 || n_heads <= 0 || head_dim <= 0 || capacity <= 0) return 0;
  size_t most = 0;
  for (int m = 1; m <= std::min(n, kAttentionMaxTargetBlocks); ++m) {
    const int s = attention_max_splits(m, capacity);
    if (s > 1) most = std::max(most, size_t(m) * s);
  }
  return most * n_heads * (size_t(head_dim) + 2);
}

}  // namespace kvb

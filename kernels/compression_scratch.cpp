#include "kernels/compression_scratch.hpp"

#include <algorithm>

namespace kvb {

namespace {

constexpr int kRedundancyTile = 64;       // keys per similarity tile (kernels/cuda/key_redundancy.cu)
constexpr int kRedundancyTargetBlocks = 256;
constexpr size_t kRedundancyBytes = 256ull << 20;  // R-KV column partials, whatever the batch

}  // namespace

int compression_work_rows(const CompressionShape& s) {
  // TriAttention: one raw row per query head. SnapKV / R-KV: the window's logits, then the
  // attention and its pooled maximum.
  return std::max(s.group, s.window > 0 ? s.window + 2 : 0);
}

int redundancy_splits(int n) {
  const int tiles = std::max(1, (n + kRedundancyTile - 1) / kRedundancyTile);
  return std::clamp((kRedundancyTargetBlocks + tiles - 1) / tiles, 1, tiles);
}

size_t redundancy_partial_slots(int capacity) {
  // splits(n) * n <= (target / tiles + 1) * tiles * tile <= target * tile + n + tile, for any n <= capacity.
  return size_t(kRedundancyTargetBlocks) * kRedundancyTile + kRedundancyTile + size_t(capacity);
}

int sort_width(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

void lay_out_compression_scratch(DeviceCarver& c, const CompressionShape& s, CompressionScratch& out) {
  out = CompressionScratch{};
  if (s.max_segments <= 0) return;
  const size_t segs = size_t(s.max_segments), cap = size_t(s.capacity);
  out.groups = c.take<DeviceGroup>(segs);
  out.segments = c.take<DeviceSegment>(segs);
  out.scores = c.take<float>(segs * cap);
  out.order = c.take<int32_t>(segs * cap);
  out.rank = c.take<int32_t>(segs * cap);
  out.kept = c.take<int32_t>(segs * cap);
  out.work = c.take<float>(segs * compression_work_rows(s) * cap);
  out.moments = c.take<double>(segs * std::max(s.group, s.window) * 2);
  if (s.capacity > kSharedSortSlots) out.sort_keys = c.take<uint64_t>(segs * sort_width(s.capacity));
  if (s.coefficient_rows > 0) out.coefficients = c.take<float>(size_t(s.coefficient_rows) * s.coefficient_floats_per_row);
  if (s.redundancy) {
    const size_t slots = redundancy_partial_slots(s.capacity);
    const size_t per_group = slots * (sizeof(double) + sizeof(int32_t)) + cap * sizeof(float);
    out.redundancy_groups = static_cast<int>(std::clamp<size_t>(kRedundancyBytes / per_group, 1, segs));
    const size_t partials = size_t(out.redundancy_groups) * slots;
    out.redundancy_columns = c.take<double>(partials);
    out.redundancy_latest = c.take<int32_t>(partials);
    out.redundancy_norms = c.take<float>(size_t(out.redundancy_groups) * cap);
  }
  out.group_args = c.take<int32_t>(segs * 2);
  out.inv_freq = c.take<double>(s.head_dim / 2);
  out.flags = c.take<int32_t>(4);
}

}  // namespace kvb

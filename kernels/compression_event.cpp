// CompressionEvent bookkeeping (kernels/compression_ops.hpp).
#include "kernels/compression_ops.hpp"

namespace kvb {

void CompressionEvent::clear() {
  segments.clear();
  group_begin.assign(1, 0);
  length.clear();
  keep.clear();
  pins.clear();
  processed.clear();
  noise_event.clear();
}

void CompressionEvent::add_group(int32_t slots, int32_t kept, const PinRule& pin, int32_t tokens, uint64_t noise) {
  if (group_begin.empty()) group_begin.push_back(0);
  length.push_back(slots);
  keep.push_back(kept);
  pins.push_back(pin);
  processed.push_back(tokens);
  noise_event.push_back(noise);
  group_begin.push_back(group_begin.back());
}

void CompressionEvent::add_segment(int layer, int seq, int kv_head) {
  segments.push_back(Segment{layer, seq, kv_head});
  ++group_begin.back();
}

CompressionEvent CompressionEvent::slice(int first, int count) const {
  CompressionEvent out;
  out.view = view;
  out.ranks = ranks;
  out.group_begin.assign(1, 0);
  for (int g = first; g < first + count; ++g) {
    out.add_group(length[g], keep[g], pins[g], processed[g], noise_event[g]);
    for (int s = group_begin[g]; s < group_begin[g + 1]; ++s) out.add_segment(segments[s].layer, segments[s].seq, segments[s].kv_head);
  }
  return out;
}

}  // namespace kvb

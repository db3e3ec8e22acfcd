#pragma once
// Retained attention mass on the CPU: the share of full attention's probability that falls on the
// keys a compressed cache still holds, measured in the lockstep reference forward of a replay
// (ForwardRecording::retained_mass_of). Before each reference forward, snapshot() records which
// positions the method's cache holds per (layer, kv-head), and every reference attention row adds
// the probability it gives those positions.
#include <cstdint>
#include <span>
#include <vector>

#include "engine/kv_cache.hpp"

namespace kvb {

class RetainedMass {
 public:
  // Positions `method` holds now, for the sequences (cache rows) of the next reference forward.
  void snapshot(const KvCache& method, std::span<const int> rows);
  // One reference attention row of (layer, seq, kv_head): probs[j] on the slot at position pos[j].
  void add(int layer, int seq, int kv_head, const float* probs, const int32_t* pos, int len);
  // Mean over layers, query heads and tokens observed for `seq` since the last take (NaN if
  // none); resets.
  double take(int seq);

 private:
  struct Row {
    int span = 0;               // positions covered per (layer, kv-head)
    std::vector<uint8_t> held;  // [layer][kv_head][span]: 1 where the method holds that position
    double sum = 0;
    int64_t count = 0;
  };
  std::vector<Row> rows_;
  int n_kv_heads_ = 0;
};

}  // namespace kvb

#pragma once
// A KV-cache policy decides, after every forward, whether a sequence's cache is compacted and
// which slots survive (docs/design.md, "Method"). `full` never evicts; budgeted methods keep the
// cache between `budget` and `budget + divide_length` slots per (layer, kv-head), so the bytes they
// report are the bytes they hold.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/kv_cache.hpp"

namespace kvb {
class AttentionObserver;
}

namespace kvb {

struct PolicyConfig {
  std::string method = "full";
  int budget = 0;            // slots kept per (layer, kv-head) after a compression; 0 = unbounded
  int divide_length = 128;   // slack: compress when the cache reaches budget + divide_length
  int sink_tokens = 4;       // streaming: attention sinks kept besides the recent window
};

class KvPolicy {
 public:
  virtual ~KvPolicy() = default;
  // Slots per (layer, sequence, kv-head) the cache needs for a sequence with this prompt and
  // this many tokens in all.
  virtual int capacity(int prompt_tokens, int total_tokens) const = 0;
  // Called after each forward that appended tokens to `seq`; compacts when due and returns the
  // number of slots evicted (summed over layers and kv-heads).
  virtual int64_t after_forward(KvCache& cache, int seq) = 0;
  // What the policy needs to see of each forward's attention (nullptr: nothing).
  virtual AttentionObserver* observer() { return nullptr; }
};

// The shared shape of the budgeted methods: the slack trigger (cut back to `budget` when a
// (layer, kv-head) cache reaches budget + divide_length) and compaction; a method only says
// which slots to keep.
class BudgetedPolicy : public KvPolicy {
 public:
  explicit BudgetedPolicy(const PolicyConfig& config) : config_(config) {}
  // A prompt longer than the trigger is held whole until the compression that follows prefill.
  int capacity(int prompt_tokens, int total_tokens) const override;
  int64_t after_forward(KvCache& cache, int seq) override;

 protected:
  // Exactly config_.budget distinct slot indices below `len` to keep for (layer, seq, kv_head).
  virtual void select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) = 0;
  const PolicyConfig config_;

 private:
  std::vector<int> keep_;  // scratch
};

// Methods kvbench knows, in the order they are reported.
const std::vector<std::string>& known_methods();

// Throws InputError naming --method / --budget for unknown methods, budgets a method cannot
// honour, and methods that are not implemented yet.
std::unique_ptr<KvPolicy> make_policy(const PolicyConfig& config);

}  // namespace kvb

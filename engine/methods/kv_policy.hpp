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
#include "engine/methods/query_stats.hpp"
#include "engine/methods/tri_scoring.hpp"

namespace kvb {
class AttentionObserver;
}

namespace kvb {

// TriAttention's selection granularity (spec 3.3): one kept set per KV head shared by all layers
// (the paper's default), one set for everything, or one per (layer, KV head).
enum class TriSelection { PerHead, Global, PerLayerHead };

struct TriAttentionOptions {
  TriScoringOptions scoring;
  TriSelection selection = TriSelection::PerHead;
  bool protect_prompt = true;  // prompt slots pinned and never scored (HF path)
  int window = 0;              // most recent tokens always kept (the vLLM runtime keeps 128)
  uint64_t seed = 0;           // tie-break noise
};

struct PolicyConfig {
  std::string method = "full";
  int budget = 0;            // slots kept per (layer, kv-head) after a compression; 0 = unbounded
  int divide_length = 128;   // compression interval (slack for triattention, streaming, h2o)
  int sink_tokens = 4;       // streaming: attention sinks kept besides the recent window
  int observation_window = 8;  // snapkv / rkv: queries whose attention scores the keys
  int pool_radius = 3;         // snapkv / rkv: max pooling kernel 2 * radius + 1
  float rkv_lambda = 0.1f;     // rkv: weight of attention against redundancy
  float rkv_threshold = 0.5f;  // rkv: cosine similarity that makes two keys near-duplicates
  TriAttentionOptions tri;
  std::shared_ptr<const QueryStats> stats;  // triattention: calibrated query statistics
};

// Where a sequence stands when its policy runs.
struct SequenceProgress {
  int prompt_tokens = 0;  // P
  int processed = 0;      // tokens fed so far, prompt included: the next token's position
  bool prefill = false;   // this forward completed the prompt
};

class KvPolicy {
 public:
  virtual ~KvPolicy() = default;
  // Slots per (layer, sequence, kv-head) the cache needs for a sequence with this prompt and
  // this many tokens in all.
  virtual int capacity(int prompt_tokens, int total_tokens) const = 0;
  // InputError naming --budget when a sequence with this prompt cannot be run within the budget.
  virtual void check_prompt(int /*prompt_tokens*/, const std::string& /*sequence_id*/) const {}
  // A new sequence takes cache row `seq` (per-sequence state starts over).
  virtual void begin_sequence(int /*seq*/) {}
  // Called after each forward that appended tokens to `seq`; compacts when due and returns the
  // number of slots evicted (summed over layers and kv-heads).
  virtual int64_t after_forward(KvCache& cache, int seq, const SequenceProgress& progress) = 0;
  // What the policy needs to see of each forward (nullptr: nothing).
  virtual AttentionObserver* observer() { return nullptr; }
};

// What every budgeted method shares: its configuration and the cache capacity it needs. Each
// method cuts a (layer, kv-head) back to `budget` slots before it exceeds budget + divide_length.
class BudgetedPolicy : public KvPolicy {
 public:
  explicit BudgetedPolicy(const PolicyConfig& config) : config_(config) {}
  // A prompt longer than budget + divide_length is held whole until the compression that follows.
  int capacity(int prompt_tokens, int total_tokens) const override;

 protected:
  const PolicyConfig config_;
};

// The slack trigger of streaming and H2O: each (layer, kv-head) is cut back to `budget` when it
// reaches budget + divide_length, keeping the slots the method selects.
class SlackPolicy : public BudgetedPolicy {
 public:
  using BudgetedPolicy::BudgetedPolicy;
  int64_t after_forward(KvCache& cache, int seq, const SequenceProgress& progress) override;

 protected:
  // Exactly config_.budget distinct slot indices below `len` to keep for (layer, seq, kv_head).
  virtual void select(const KvCache& cache, int layer, int seq, int kv_head, int len, std::vector<int>& keep) = 0;

 private:
  std::vector<int> keep_;  // scratch
};

// Slots per (layer, sequence, kv-head) a sequence needs under `config` (what KvPolicy::capacity
// returns): full attention holds prompt + new tokens; a budgeted method budget + divide_length, or
// a longer prompt whole until the compression that follows it (for TriAttention, which never
// compresses at the prefill, with the first decode token).
int cache_capacity(const PolicyConfig& config, int prompt_tokens, int total_tokens);

// The slot indices 0..len-1 ordered by their absolute positions `pos` (oldest first): what a
// method that thinks in token order (windows, sinks, pooling) sees in a compacted cache.
void slots_by_position(const int32_t* pos, int len, std::vector<int>& order);

// Methods kvbench knows, in the order they are reported.
const std::vector<std::string>& known_methods();

// Throws InputError naming the flag for unknown methods, budgets a method cannot honour and
// TriAttention without statistics: everything that can be checked before a model is loaded.
void check_policy(const PolicyConfig& config);

// check_policy, then InputError when statistics do not fit the model.
std::unique_ptr<KvPolicy> make_policy(const PolicyConfig& config, const ModelConfig& model);

}  // namespace kvb

#pragma once
// The KV-cache methods kvbench knows, as a type, and the one table that says what each of them is
// (docs/methods.md): its name, what it needs (calibrated statistics, the query window, per-slot
// attention scores), when it compresses, the cache it needs, how its configuration is checked and
// which parameters a result records. Code that asks "which method is this" asks this table; the
// methods' logic lives in engine/methods/kv_method.hpp and its implementations.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/kv_cache.hpp"
#include "engine/methods/query_stats.hpp"
#include "engine/methods/tri_scoring.hpp"

namespace kvb {

enum class Method { Full, TriAttention, SnapKV, RKV, Streaming, H2O };

// When a budgeted method compresses a sequence's cache (docs/methods.md, "Triggers"):
//  - Slack: a (layer, KV head) that reaches budget + divide_length slots is cut back to budget
//    (TriAttention as published; the fair default for streaming and H2O: the cache saw-tooths
//    between budget and budget + divide_length, so eviction is amortised over divide_length steps);
//  - EveryStep: every forward that leaves more than budget slots cuts back to exactly budget
//    (StreamingLLM and H2O as their papers run them);
//  - Schedule: after the prefill and on the forward after every length multiple of divide_length
//    (SnapKV and R-KV as the TriAttention baselines run them).
enum class Trigger { Never, Slack, EveryStep, Schedule };

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

// StreamingLLM's RoPE positions: the tokens' own (absolute, kvbench's default), or their places
// in the cache, as the StreamingLLM paper assigns them (docs/methods.md).
enum class StreamingPositions { Absolute, Cache };

struct PolicyConfig {
  Method method = Method::Full;
  int budget = 0;            // slots kept per (layer, kv-head) after a compression; 0 = unbounded
  int divide_length = 128;   // compression interval (the slack above the budget)
  std::optional<Trigger> trigger;  // nullopt: the method's default
  int sink_tokens = 4;       // streaming: attention sinks kept besides the recent window
  StreamingPositions streaming_positions = StreamingPositions::Absolute;
  int observation_window = 8;  // snapkv / rkv: queries whose attention scores the keys
  int pool_radius = 3;         // snapkv / rkv: max pooling kernel 2 * radius + 1
  float rkv_lambda = 0.1f;     // rkv: weight of attention against redundancy
  float rkv_threshold = 0.5f;  // rkv: cosine similarity that makes two keys near-duplicates
  TriAttentionOptions tri;
  std::shared_ptr<const QueryStats> stats;  // triattention: calibrated query statistics
};

struct MethodTraits {
  Method method;
  std::string_view name;
  bool budgeted;               // takes --budget (every method but full)
  bool needs_stats;            // TriAttention's calibrated query statistics
  bool query_window;           // the forward keeps each sequence's last observation_window post-RoPE queries
  bool slot_scores;            // the forward adds every slot's attention weight into a per-slot score
  bool compresses_at_prefill;  // false: a prompt is held whole until the first decode token joins it
  Trigger default_trigger;
  uint32_t triggers;           // the triggers it can run with: a bit (1 << Trigger) each
  // InputError naming the flag when `config` (of this method, budget > 0) cannot run.
  void (*check)(const PolicyConfig& config);
  // The method's parameters as a result records them.
  nlohmann::json (*parameters)(const PolicyConfig& config);
};

// The table, in the order results report methods.
std::span<const MethodTraits> all_methods();
std::vector<Method> every_method();
std::vector<std::string> every_method_name();
const MethodTraits& traits(Method method);
std::string_view method_name(Method method);
// InputError naming --method and the known methods for a name that is none of them.
Method parse_method(std::string_view name);
// "full, triattention, snapkv, rkv, streaming, h2o"
std::string method_names();

std::string_view trigger_name(Trigger trigger);
// InputError naming --trigger for an unknown name.
Trigger parse_trigger(std::string_view name);
// The trigger `config` runs with (its own, or the method's default).
Trigger trigger_of(const PolicyConfig& config);

// "method@budget", or the method alone when unbounded: a run's name in tables, traces and dumps.
std::string run_name(const PolicyConfig& config);

// Slots per (layer, sequence, kv-head) a sequence needs under `config`: full attention holds
// prompt + new tokens; a budgeted method budget + divide_length (slack, schedule) or budget + 1
// (every step), or a longer prompt whole until the compression that follows it (for a method
// that never compresses at the prefill, with the first decode token).
int cache_capacity(const PolicyConfig& config, int prompt_tokens, int total_tokens);

// Throws InputError naming the flag for budgets a method cannot honour, triggers it does not run
// with and TriAttention without statistics: everything that can be checked before a model is
// loaded.
void check_policy(const PolicyConfig& config);

// What the cache of a sequence under `config` keeps besides keys, values and positions (its
// traits: H2O's slot scores, SnapKV/R-KV's query window).
KvCacheExtras cache_extras(const PolicyConfig& config);

// The parameters a result records for `config` (trigger included).
nlohmann::json method_parameters(const PolicyConfig& config);

}  // namespace kvb

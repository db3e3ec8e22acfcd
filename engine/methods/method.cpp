#include "engine/methods/method.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "util/errors.hpp"

namespace kvb {

namespace {

using json = nlohmann::json;

constexpr uint32_t bit(Trigger t) { return 1u << static_cast<int>(t); }

void check_nothing(const PolicyConfig&) {}

void check_streaming(const PolicyConfig& c) {
  if (c.sink_tokens < 0) fail_input("--sink-tokens {}: must be at least 0", c.sink_tokens);
  if (c.budget <= c.sink_tokens)
    fail_input("--budget {}: streaming keeps {} sink tokens plus a recent window, so the budget must exceed {}", c.budget,
               c.sink_tokens, c.sink_tokens);
}

void check_h2o(const PolicyConfig& c) {
  if (c.budget < 2)
    fail_input("--budget {}: h2o splits the budget between recent and heavy-hitter tokens; use at least 2", c.budget);
}

void check_window(const PolicyConfig& c) {
  if (c.budget <= c.observation_window)
    fail_input("--budget {}: {} always keeps its observation window of {} tokens, so the budget must exceed {}", c.budget,
               method_name(c.method), c.observation_window, c.observation_window);
}

void check_triattention(const PolicyConfig& c) {
  if (c.tri.window < 0 || c.tri.window >= c.budget)
    fail_input("--tri-window {}: the recent window must be at least 0 and below the budget ({})", c.tri.window, c.budget);
  if (c.tri.scoring.offset_max < 1) fail_input("--tri-offset-max {}: must be at least 1", c.tri.scoring.offset_max);
  if (!c.stats)
    fail_input("--method triattention needs calibrated query statistics: pass --stats FILE (an official TriAttention "
               ".pt file, one written by `kvbench calibrate --model M --text FILE --out STATS`, or self to calibrate on the "
               "run's own tokens)");
}

json no_parameters(const PolicyConfig&) { return json::object(); }

json streaming_parameters(const PolicyConfig& p) {
  return {{"sink_tokens", p.sink_tokens},
          {"positions", p.streaming_positions == StreamingPositions::Cache ? "cache" : "absolute"}};
}

json h2o_parameters(const PolicyConfig& p) { return {{"recent_tokens", p.budget / 2}}; }

json window_parameters(const PolicyConfig& p) {
  json j = {{"observation_window", p.observation_window}, {"pool_kernel", 2 * p.pool_radius + 1}};
  if (p.method == Method::RKV) {
    j["lambda"] = p.rkv_lambda;
    j["similarity_threshold"] = p.rkv_threshold;
  }
  return j;
}

json triattention_parameters(const PolicyConfig& p) {
  const TriAttentionOptions& t = p.tri;
  static const char* selections[] = {"per-head", "global", "per-layer-head"};
  json j = {{"selection", selections[static_cast<int>(t.selection)]},
            {"aggregation", t.scoring.aggregation == TriAggregation::Mean ? "mean" : "max"},
            {"offset_max", t.scoring.offset_max},
            {"disable_mlr", t.scoring.disable_mlr},
            {"disable_trig", t.scoring.disable_trig},
            {"protect_prompt", t.protect_prompt},
            {"window", t.window},
            {"seed", t.seed}};
  if (p.stats)
    j["stats"] = {{"path", p.stats->source_path}, {"format", p.stats->format},
                  {"model_name", p.stats->model_name.empty() ? json(nullptr) : json(p.stats->model_name)},
                  {"token_count", p.stats->token_count ? json(*p.stats->token_count) : json(nullptr)}};
  return j;
}

// The one table. Defaults follow shared/spec/triattention.md (the HF research path).
const MethodTraits kMethods[] = {
    {Method::Full, "full", false, false, false, false, true, Trigger::Never, bit(Trigger::Never), check_nothing,
     no_parameters},
    {Method::TriAttention, "triattention", true, true, false, false, false, Trigger::Slack, bit(Trigger::Slack),
     check_triattention, triattention_parameters},
    {Method::SnapKV, "snapkv", true, false, true, false, true, Trigger::Schedule, bit(Trigger::Schedule), check_window,
     window_parameters},
    {Method::RKV, "rkv", true, false, true, false, true, Trigger::Schedule, bit(Trigger::Schedule), check_window,
     window_parameters},
    {Method::Streaming, "streaming", true, false, false, false, true, Trigger::Slack,
     bit(Trigger::Slack) | bit(Trigger::EveryStep), check_streaming, streaming_parameters},
    {Method::H2O, "h2o", true, false, false, true, true, Trigger::Slack, bit(Trigger::Slack) | bit(Trigger::EveryStep),
     check_h2o, h2o_parameters},
};

constexpr std::string_view kTriggerNames[] = {"never", "slack", "every-step", "schedule"};

}  // namespace

std::span<const MethodTraits> all_methods() { return kMethods; }

std::vector<Method> every_method() {
  std::vector<Method> out;
  for (const MethodTraits& t : kMethods) out.push_back(t.method);
  return out;
}

const MethodTraits& traits(Method m) {
  for (const MethodTraits& t : kMethods)
    if (t.method == m) return t;
  fail_runtime("method {} is not in the methods table", static_cast<int>(m));
}

std::string_view method_name(Method m) { return traits(m).name; }

std::vector<std::string> every_method_name() {
  std::vector<std::string> out;
  for (const MethodTraits& t : kMethods) out.emplace_back(t.name);
  return out;
}

std::string method_names() { return fmt::format("{}", fmt::join(every_method_name(), ", ")); }

Method parse_method(std::string_view name) {
  for (const MethodTraits& t : kMethods)
    if (t.name == name) return t.method;
  fail_input("--method {}: unknown method (known: {})", name, method_names());
}

std::string_view trigger_name(Trigger t) { return kTriggerNames[static_cast<int>(t)]; }

Trigger parse_trigger(std::string_view name) {
  for (size_t i = 1; i < std::size(kTriggerNames); ++i)
    if (kTriggerNames[i] == name) return static_cast<Trigger>(i);
  fail_input("--trigger {}: expected slack, every-step or schedule", name);
}

Trigger trigger_of(const PolicyConfig& c) {
  if (c.budget <= 0) return Trigger::Never;
  return c.trigger.value_or(traits(c.method).default_trigger);
}

std::string run_name(const PolicyConfig& c) {
  return c.budget > 0 ? fmt::format("{}@{}", method_name(c.method), c.budget) : std::string(method_name(c.method));
}

int cache_capacity(const PolicyConfig& c, int prompt_tokens, int total_tokens) {
  const Trigger trigger = trigger_of(c);
  if (trigger == Trigger::Never) return total_tokens;
  // A method that never compresses at the prefill still holds an unpinned prompt longer than its
  // trigger whole when the first decode token joins it.
  const int held_prompt = traits(c.method).compresses_at_prefill ? prompt_tokens : prompt_tokens + 1;
  const int peak = trigger == Trigger::EveryStep ? c.budget + 1 : c.budget + c.divide_length;
  return std::min(total_tokens, std::max(held_prompt, peak));
}

void check_policy(const PolicyConfig& c) {
  const MethodTraits& t = traits(c.method);
  if (!t.budgeted) return;
  if (c.budget <= 0)
    fail_input("--budget: method {} needs a positive token budget (a comma list, e.g. --budget 512,1024)", t.name);
  if (c.divide_length <= 0) fail_input("--divide-length {}: must be positive", c.divide_length);
  if (c.trigger && !(t.triggers & bit(*c.trigger)))
    fail_input("--trigger {}: {} compresses on its own trigger ({}); every-step applies to streaming and h2o",
               trigger_name(*c.trigger), t.name, trigger_name(t.default_trigger));
  t.check(c);
}

KvCacheExtras cache_extras(const PolicyConfig& c) {
  const MethodTraits& t = traits(c.method);
  KvCacheExtras e;
  e.slot_scores = t.slot_scores;
  e.window = t.query_window ? c.observation_window : 0;
  if (c.method == Method::Streaming && c.streaming_positions == StreamingPositions::Cache) e.sinks = c.sink_tokens;
  return e;
}

json method_parameters(const PolicyConfig& c) {
  json j = traits(c.method).parameters(c);
  if (c.budget > 0) j["trigger"] = trigger_name(trigger_of(c));
  return j;
}

}  // namespace kvb

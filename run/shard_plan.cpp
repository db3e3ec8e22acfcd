#include "run/shard_plan.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <queue>

#include <fmt/format.h>

#include "util/errors.hpp"

namespace kvb {

namespace {

// A whole non-negative number, or nullopt.
std::optional<int64_t> whole_number(const std::string& s) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty() || v < 0) return std::nullopt;
  return v;
}

struct EnvReader {
  const std::function<const char*(const char*)>& getenv;
  bool has(const char* name) const { return getenv(name) != nullptr; }
  // The variable as a number; InputError naming it when it is not one.
  int64_t number(const char* name) const {
    const char* v = getenv(name);
    const std::optional<int64_t> n = v ? whole_number(v) : std::nullopt;
    if (!n || *n > (int64_t(1) << 30)) fail_input("environment: {}={} is not a shard number", name, v ? v : "");
    return *n;
  }
};

ShardPlace checked(int64_t index, int64_t count, std::string placed_by) {
  if (count < 1 || index >= count)
    fail_input("environment: {} gives shard {} of {}, which does not exist", placed_by, index, count);
  return {static_cast<int>(index), static_cast<int>(count), std::move(placed_by)};
}

// A rank and size pair (MPI, torchrun); nullopt when absent.
std::optional<ShardPlace> rank_pair(const EnvReader& env, const char* rank, const char* size) {
  if (!env.has(rank) || !env.has(size)) return std::nullopt;
  return checked(env.number(rank), env.number(size), fmt::format("{}/{}", rank, size));
}

// Slurm: an array element, srun tasks, or tasks within an array element.
std::optional<ShardPlace> slurm(const EnvReader& env) {
  int64_t a = 0, array_count = 1, p = 0, tasks = 1;
  std::string by;
  if (env.has("SLURM_ARRAY_TASK_ID") && env.has("SLURM_ARRAY_TASK_COUNT")) {
    const int64_t id = env.number("SLURM_ARRAY_TASK_ID");
    const int64_t min = env.has("SLURM_ARRAY_TASK_MIN") ? env.number("SLURM_ARRAY_TASK_MIN") : 0;
    const int64_t step = env.has("SLURM_ARRAY_TASK_STEP") ? std::max<int64_t>(1, env.number("SLURM_ARRAY_TASK_STEP")) : 1;
    array_count = env.number("SLURM_ARRAY_TASK_COUNT");
    if (id < min || (id - min) % step != 0)
      fail_input("environment: SLURM_ARRAY_TASK_ID={} is not an element of the array from {} in steps of {}", id, min, step);
    a = (id - min) / step;
    by = "SLURM_ARRAY_TASK_ID";
    if (a >= array_count) return checked(a, array_count, by);
  }
  if (env.has("SLURM_PROCID") && env.has("SLURM_NTASKS")) {
    p = env.number("SLURM_PROCID");
    tasks = env.number("SLURM_NTASKS");
    if (tasks > 1) by += by.empty() ? "SLURM_PROCID/SLURM_NTASKS" : " x SLURM_PROCID/SLURM_NTASKS";
  }
  if (array_count * tasks <= 1) return std::nullopt;
  return checked(a * tasks + p, array_count * tasks, by);
}

}  // namespace

std::string ShardPlace::text() const { return fmt::format("{}/{}", index, count); }

ShardPlace parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  const std::optional<int64_t> i = slash == std::string::npos ? std::nullopt : whole_number(text.substr(0, slash));
  const std::optional<int64_t> n = slash == std::string::npos ? std::nullopt : whole_number(text.substr(slash + 1));
  if (!i || !n || *n < 1 || *n > (int64_t(1) << 20))
    fail_input("--shard {}: expected I/N, shard I (from 0) of N", text);
  if (*i >= *n) fail_input("--shard {}: shards are numbered 0 to {}", text, *n - 1);
  return {static_cast<int>(*i), static_cast<int>(*n), "--shard"};
}

std::optional<ShardPlace> shard_from_environment(const std::function<const char*(const char*)>& getenv) {
  const EnvReader env{getenv};
  using Convention = std::function<std::optional<ShardPlace>()>;
  const Convention conventions[] = {
      [&] { return rank_pair(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"); },
      [&] { return rank_pair(env, "PMI_RANK", "PMI_SIZE"); },
      [&] { return slurm(env); },
      [&] { return rank_pair(env, "RANK", "WORLD_SIZE"); },
      [&]() -> std::optional<ShardPlace> {
        if (!env.has("JOB_COMPLETION_INDEX")) return std::nullopt;
        if (!env.has("KVBENCH_SHARD_COUNT"))
          fail_input("environment: JOB_COMPLETION_INDEX is set but KVBENCH_SHARD_COUNT is not; set it to the Job's "
                     "completions (docs/cluster.md) or pass --shard I/N");
        return checked(env.number("JOB_COMPLETION_INDEX"), env.number("KVBENCH_SHARD_COUNT"),
                       "JOB_COMPLETION_INDEX/KVBENCH_SHARD_COUNT");
      },
  };
  for (const Convention& place : conventions)
    if (std::optional<ShardPlace> p = place(); p && p->count > 1) return p;
  return std::nullopt;
}

std::vector<int> assign_units(const std::vector<WorkUnit>& units, int shards) {
  std::vector<size_t> order(units.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return units[a].expected_tokens > units[b].expected_tokens; });
  // (load, shard), least loaded first; equal loads go to the lower shard.
  using Load = std::pair<int64_t, int>;
  std::priority_queue<Load, std::vector<Load>, std::greater<Load>> loads;
  for (int s = 0; s < shards; ++s) loads.push({0, s});
  std::vector<int> owner(units.size(), 0);
  for (size_t u : order) {
    auto [load, shard] = loads.top();
    loads.pop();
    owner[u] = shard;
    loads.push({load + std::max<int64_t>(1, units[u].expected_tokens), shard});
  }
  return owner;
}

}  // namespace kvb

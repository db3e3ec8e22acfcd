#include "run/merge.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "build_info.hpp"
#include "engine/model.hpp"
#include "profiler/nvml_sampler.hpp"
#include "run/journal.hpp"
#include "run/result.hpp"
#include "run/shard_manifest.hpp"
#include "run/steps_csv.hpp"
#include "util/errors.hpp"
#include "workloads/workload.hpp"

namespace kvb {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Shard {
  std::string dir;
  ShardManifest manifest;
  JournalContents journal;  // empty when the shard journalled nothing (allowed partial)
  bool complete = false;
  int64_t units_journalled = 0;
};

// The shards' folders: a folder with a manifest is one; another is a sweep folder, whose
// shard-I-of-N folders are taken in name order.
std::vector<std::string> shard_folders(const std::vector<std::string>& given) {
  std::vector<std::string> out;
  for (const std::string& dir : given) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail_input("merge: {}: no such folder", dir);
    if (has_shard_manifest(dir)) {
      out.push_back(dir);
      continue;
    }
    std::vector<std::string> inside;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
      if (e.is_directory() && has_shard_manifest(e.path().string())) inside.push_back(e.path().string());
    if (inside.empty())
      fail_input("merge: {}: neither a shard's folder (manifest.json) nor a sweep folder holding shard-I-of-N folders", dir);
    std::sort(inside.begin(), inside.end());
    out.insert(out.end(), inside.begin(), inside.end());
  }
  std::map<std::string, std::string> seen;  // canonical -> as given
  for (const std::string& dir : out) {
    const std::string canonical = fs::weakly_canonical(dir).string();
    if (const auto it = seen.find(canonical); it != seen.end())
      fail_input("merge: {} is given twice ({} and {}); give each shard once", canonical, it->second, dir);
    seen[canonical] = dir;
  }
  return out;
}

// What kind of difference a fingerprint's first differing key is, for the message.
std::string kind_of_difference(const std::string& difference) {
  const std::string key = difference.substr(0, difference.find_first_of(".:["));
  if (key == "kvbench") return "another kvbench commit";
  if (key == "model") return "another model";
  if (key == "workload") return "another workload";
  if (key == "device") return "another kind of device";
  return "another configuration";
}

std::string unit_name(const std::string& run, const Workload& w, int item, int draw) {
  const std::string id = item >= 0 && item < static_cast<int>(w.items.size()) ? w.items[item].id : fmt::format("#{}", item);
  return fmt::format("{} {} draw {}", run, id, draw);
}

// Every shard against the first: one sweep, each shard once, units owned once.
void check_one_sweep(const std::vector<Shard>& shards) {
  const Shard& first = shards.front();
  std::map<int, const Shard*> by_index;
  std::map<std::string, std::map<std::pair<int, int>, const Shard*>> owner;
  for (const Shard& s : shards) {
    const std::string d = first_difference(first.manifest.fingerprint, s.manifest.fingerprint);
    if (!d.empty())
      fail_input("merge: {} belongs to another sweep than {}: {} ({}: {} vs {})", s.dir, first.dir, kind_of_difference(d),
                 d, first.dir, s.dir);
    if (s.manifest.place.count != first.manifest.place.count)
      fail_input("merge: {} is shard {} but {} is shard {}: not one split of the sweep", s.dir, s.manifest.place.text(),
                 first.dir, first.manifest.place.text());
    if (const auto it = by_index.find(s.manifest.place.index); it != by_index.end())
      fail_input("merge: {} and {} are both shard {}; give each shard once", it->second->dir, s.dir, s.manifest.place.text());
    by_index[s.manifest.place.index] = &s;
    for (const auto& [run, units] : s.manifest.owned)
      for (const auto& unit : units)
        if (const auto [it, fresh] = owner[run].insert({unit, &s}); !fresh)
          fail_input("merge: {} and {} both own a unit of {}: not one split of the sweep", it->second->dir, s.dir, run);
  }
}

// The shard's journal against its manifest: its runs, its units only.
void read_shard_journal(Shard& s, bool allow_partial) {
  const std::string path = (fs::path(s.dir) / "journal.jsonl").string();
  if (!fs::exists(path)) {
    if (!allow_partial) fail_input("merge: {}: no journal.jsonl (the shard decoded nothing)", s.dir);
    return;
  }
  s.journal = read_journal(path, "merge");
  json fingerprint = s.journal.fingerprint;
  if (fingerprint.is_object()) fingerprint.erase("shard");
  if (const std::string d = first_difference(s.manifest.fingerprint, fingerprint); !d.empty())
    fail_input("merge: {}: journal.jsonl was written for another run than manifest.json ({})", s.dir, d);
  for (const auto& [run, contents] : s.journal.runs) {
    const auto owned = s.manifest.owned.find(run);
    for (const auto& [key, sequence] : contents.sequences) {
      if (owned == s.manifest.owned.end() || !owned->second.count(key))
        fail_input("merge: {}: journal.jsonl holds {} item {} draw {}, which the shard does not own", s.dir, run,
                   key.first, key.second);
      ++s.units_journalled;
    }
  }
}

// The model (its tokenizer, to write texts and grade) and the workload the shards read, read
// again; each file the shards hashed must hash the same now.
std::pair<Model, Workload> load_inputs(const ShardManifest& m, bool hash_files) {
  const json& in = m.inputs;
  Workload workload = resolve_workload(in.at("prompt").get<std::string>(), in.at("workload").get<std::string>());
  const int limit = in.at("limit").get<int>();
  if (limit > 0 && workload.items.size() > size_t(limit)) workload.items.resize(limit);
  const json& w = m.fingerprint.at("workload");
  if (workload.sha256 != w.at("sha256").get<std::string>() || workload.items.size() != w.at("items").get<size_t>())
    fail_input("merge: {}: not the workload the shards read (sha256 {} vs {})", workload.source, workload.sha256,
               w.at("sha256").get<std::string>());
  LoadOptions lo;
  lo.skip_weights = true;
  lo.hash_files = hash_files;
  lo.tokenizer_path = in.at("tokenizer").get<std::string>();
  Model model = load_model(in.at("model").get<std::string>(), lo);
  std::map<std::string, std::string> hashed;  // file name -> sha256, as the shards read them
  for (const json& f : m.result_header.at("model").at("files"))
    if (f.value("sha256", "") != "") hashed[fs::path(f.value("path", "")).filename().string()] = f["sha256"];
  for (const ModelFile& f : model.info.files) {
    const auto it = hashed.find(fs::path(f.path).filename().string());
    if (hash_files && it != hashed.end() && it->second != f.sha256)
      fail_input("merge: {}: not the file the shards read (sha256 {} vs {})", f.path, f.sha256, it->second);
  }
  return {std::move(model), std::move(workload)};
}

// One run of the sweep, its sequences from every shard in request order, its counts summed and
// its timings over the device-seconds of the shards that finished it.
MethodRun merge_run(const json& descriptor, const std::vector<Shard>& shards, json& per_shard) {
  MethodRun run;
  run.name = descriptor.at("name").get<std::string>();
  run.method = parse_method(descriptor.at("method").get<std::string>());
  run.budget = descriptor.at("budget").get<int>();
  run.divide_length = descriptor.at("divide_length").get<int>();
  run.parameters = descriptor.at("parameters");
  std::map<std::pair<int, int>, SequenceOutcome> sequences;
  DecodeStats& st = run.output.stats;
  bool timed = true;
  for (size_t k = 0; k < shards.size(); ++k) {
    const Shard& s = shards[k];
    if (!s.manifest.owned.count(run.name)) continue;
    for (const json& d : s.manifest.runs)
      if (d.at("name") == run.name) run.batch = std::max(run.batch, d.at("batch").get<int>());
    const auto it = s.journal.runs.find(run.name);
    if (it == s.journal.runs.end()) {
      timed = false;
      continue;
    }
    for (const auto& [key, o] : it->second.sequences) sequences[key] = o;
    if (!it->second.complete) {
      timed = false;
      continue;
    }
    const JournalRun::Complete& c = *it->second.complete;
    const DecodeStats& x = c.stats;
    st.prefill_tokens += x.prefill_tokens;
    st.prefill_seconds += x.prefill_seconds;
    st.decode_tokens += x.decode_tokens;
    st.decode_seconds += x.decode_seconds;
    st.step_seconds.insert(st.step_seconds.end(), x.step_seconds.begin(), x.step_seconds.end());
    st.step_kv_slots.insert(st.step_kv_slots.end(), x.step_kv_slots.begin(), x.step_kv_slots.end());
    st.kv_peak_bytes = std::max(st.kv_peak_bytes, x.kv_peak_bytes);
    st.kv_capacity_bytes = std::max(st.kv_capacity_bytes, x.kv_capacity_bytes);
    st.compression_events += x.compression_events;
    st.evicted_slots += x.evicted_slots;
    st.compression_seconds += x.compression_seconds;
    run.peak_rss_bytes = std::max(run.peak_rss_bytes, c.peak_rss_bytes);
    run.timed_sequences += c.timed_sequences;
    per_shard[k]["runs"].push_back(
        {{"name", run.name}, {"sequences", it->second.sequences.size()}, {"decode_tokens", x.decode_tokens},
         {"decode_seconds", x.decode_seconds},
         {"decode_tokens_per_s", x.decode_seconds > 0 ? json(x.decode_tokens / x.decode_seconds) : json(nullptr)},
         {"prefill_tokens_per_s", x.prefill_seconds > 0 ? json(x.prefill_tokens / x.prefill_seconds) : json(nullptr)}});
  }
  for (auto& [key, o] : sequences) run.output.sequences.push_back(std::move(o));
  if (timed) run.repetitions = {st};
  const int decoded = static_cast<int>(run.output.sequences.size());
  if (run.timed_sequences < decoded) run.from_journal = decoded - run.timed_sequences;
  return run;
}

}  // namespace

MergeResult merge_shards(const MergeOptions& o, const std::function<void(const std::string&)>& progress) {
  if (o.folders.empty()) fail_input("merge: no shard folder given");
  std::vector<Shard> shards;
  for (const std::string& dir : shard_folders(o.folders)) {
    Shard& s = shards.emplace_back();
    s.dir = dir;
    s.manifest = read_shard_manifest(dir);
  }
  std::sort(shards.begin(), shards.end(),
            [](const Shard& a, const Shard& b) { return a.manifest.place.index < b.manifest.place.index; });
  check_one_sweep(shards);
  for (Shard& s : shards) {
    s.complete = shard_is_complete(s.dir);
    read_shard_journal(s, o.allow_partial);
  }
  const ShardManifest& first = shards.front().manifest;
  auto [model, workload] = load_inputs(first, o.hash_files);

  // What is missing: whole shards, and units of the shards given.
  std::vector<int> missing_shards;
  for (int i = 0, k = 0; i < first.place.count; ++i) {
    if (k < static_cast<int>(shards.size()) && shards[k].manifest.place.index == i) ++k;
    else missing_shards.push_back(i);
  }
  int64_t owned_total = 0, missing_units = 0;
  std::vector<std::string> missing_named;
  for (const Shard& s : shards)
    for (const auto& [run, units] : s.manifest.owned) {
      owned_total += static_cast<int64_t>(units.size());
      const auto it = s.journal.runs.find(run);
      for (const auto& [item, draw] : units)
        if (it == s.journal.runs.end() || !it->second.sequences.count({item, draw})) {
          ++missing_units;
          if (missing_named.size() < 3) missing_named.push_back(unit_name(run, workload, item, draw));
        }
    }
  missing_units += first.total_units - owned_total;  // the units of the shards not given
  if (!o.allow_partial) {
    if (!missing_shards.empty())
      fail_input("merge: shard(s) {} of {} not given ({} units); give every shard's folder, or pass --allow-partial",
                 fmt::join(missing_shards, ", "), first.place.count, first.total_units - owned_total);
    for (const Shard& s : shards)
      if (!s.complete)
        fail_input("merge: {} (shard {}) is unfinished: {} of its units journalled and no shard-complete.json; resume "
                   "it (kvbench run --resume {}) or pass --allow-partial",
                   s.dir, s.manifest.place.text(), s.units_journalled, s.dir);
    if (missing_units > 0)
      fail_input("merge: {} unit(s) not journalled (first: {}); resume their shards, or pass --allow-partial", missing_units,
                 fmt::join(missing_named, "; "));
  }
  const bool partial = missing_units > 0 || std::any_of(shards.begin(), shards.end(), [](const Shard& s) { return !s.complete; });

  json per_shard = json::array();
  std::string started = first.result_header.value("started_at", "");
  for (const Shard& s : shards) {
    const json& h = s.manifest.result_header;
    const json& device = h.at("device");
    std::string gpu;
    for (const json& g : device.value("gpus", json::array()))
      if (fmt::format("cuda:{}", g.value("index", -1)) == device.value("kind", "")) gpu = g.value("name", "");
    started = std::min(started, h.value("started_at", started));
    per_shard.push_back({{"index", s.manifest.place.index}, {"count", s.manifest.place.count},
                         {"placed_by", s.manifest.place.placed_by}, {"folder", s.dir},
                         {"host", h.at("host").value("hostname", "")}, {"device", device.value("kind", "")},
                         {"gpu", gpu.empty() ? json(nullptr) : json(gpu)}, {"started_at", h.value("started_at", "")},
                         {"command_line", s.manifest.command_line}, {"complete", s.complete},
                         {"units", 0}, {"units_journalled", s.units_journalled}, {"runs", json::array()}});
    for (const auto& [run, units] : s.manifest.owned) per_shard.back()["units"] = per_shard.back()["units"].get<int64_t>() + int64_t(units.size());
  }
  std::vector<MethodRun> runs;
  for (const json& descriptor : first.runs) runs.push_back(merge_run(descriptor, shards, per_shard));

  const std::string mode_name = first.result_header.at("settings").at("mode").get<std::string>();
  const RunMode mode = mode_name == "replay" ? RunMode::Replay : mode_name == "throughput" ? RunMode::Throughput : RunMode::Generate;
  MergeResult out;
  out.partial = partial;
  out.document = first.result_header;
  out.document["command_line"] = o.command_line;
  out.document["started_at"] = started;
  out.document["finished_at"] = utc_timestamp();
  out.document["status"] = partial ? "partial" : "complete";
  out.document["runs"] = runs_to_json(runs, model, workload, mode, first.weights_bytes);
  out.document["device"]["gpu_telemetry"] =
      profiler::telemetry_not_sampled("not sampled by a merge: each shard's result.json holds its GPU's telemetry");
  out.document["merged"] = {{"merged_by", {{"version", build::kVersion}, {"git_commit", build::kGitCommit}}},
                            {"shards", per_shard},
                            {"shard_count", first.place.count},
                            {"missing_shards", missing_shards},
                            {"missing_units", missing_units},
                            {"total_units", first.total_units}};
  out.steps_csv = render_steps_csv(runs, mode);
  progress(fmt::format("merged {} of {} shard(s): {} of {} units{}", shards.size(), first.place.count,
                       first.total_units - missing_units, first.total_units, partial ? " (partial)" : ""));
  return out;
}

}  // namespace kvb

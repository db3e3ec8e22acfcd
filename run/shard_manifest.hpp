#pragma once
// What a shard of a sweep leaves beside its journal, for `kvbench merge` (run/merge.hpp):
//   manifest.json        written before it decodes: its place, the configuration's fingerprint
//                        (kvbench's commit, the model's and workload's digests, every setting a
//                        token depends on), the inputs merge reads again (tokenizer, workload),
//                        its result header, its runs and the units it owns
//   shard-complete.json  written once its result is: the completion marker
// Both are written atomically (a crash leaves the old file or none). Reading a folder that holds
// no manifest, or a manifest that is not one, is an InputError naming the folder.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "run/shard_plan.hpp"

namespace kvb {

// The (item, draw) pairs a shard decodes, by run name.
using OwnedUnits = std::map<std::string, std::set<std::pair<int, int>>>;

struct ShardManifest {
  ShardPlace place;
  nlohmann::json fingerprint;             // run_fingerprint: equal for every shard of one sweep
  std::vector<std::string> command_line;  // reproduces this shard (--shard I/N included)
  // What merge loads again to grade and write text: {model, tokenizer, workload, prompt, limit},
  // paths made absolute.
  nlohmann::json inputs;
  nlohmann::json result_header;  // the shard's result document without its runs
  uint64_t weights_bytes = 0;    // as the shard's backend held them
  // Every run of the sweep, in order: {name, method, budget, divide_length, batch, parameters}.
  nlohmann::json runs = nlohmann::json::array();
  OwnedUnits owned;
  int64_t total_units = 0;       // in the whole sweep
  int64_t expected_tokens = 0;   // this shard's share, and the sweep's (the balance)
  int64_t total_expected_tokens = 0;
};

void write_shard_manifest(const std::string& dir, const ShardManifest& manifest);
// The manifest in `dir`; InputError when there is none or it is malformed.
ShardManifest read_shard_manifest(const std::string& dir);
bool has_shard_manifest(const std::string& dir);

// The completion marker: written after the shard's result.json, when every unit it owns finished.
void mark_shard_complete(const std::string& dir, const ShardPlace& place);
bool shard_is_complete(const std::string& dir);

}  // namespace kvb

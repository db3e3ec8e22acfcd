#pragma once
// `kvbench merge`: the shards of one sweep (run/shard_manifest.hpp) joined into one result, every
// aggregate recomputed from the per-unit records in the shards' journals (never by averaging
// averages): tokens, grades, accuracy with its intervals and paired differences, fidelity per
// step, KV bytes per sequence. Timings stay per device: each shard's device and tokens/s are
// listed under `merged.shards`; a run's own rates are its tokens over the device-seconds of all
// its shards (the shards ran on one kind of device: the fingerprint holds it).
//
// Refused with an InputError naming the shard: a shard of another configuration, kvbench commit,
// model, workload or device (the first setting that differs); a shard or folder given twice; a
// missing shard or an unfinished one (units not journalled, no completion marker), unless
// allow_partial, which marks the result partial (status "partial") and names what is missing.
// The model's tokenizer and the workload are read again (to write texts and grade answers) and
// must be the files the shards read (sha256).
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kvb {

struct MergeOptions {
  std::vector<std::string> folders;  // shards' folders, or sweep folders holding shard-I-of-N folders
  bool allow_partial = false;
  bool hash_files = true;            // check the re-read model files against the shards' sha256
  std::vector<std::string> command_line;
};

struct MergeResult {
  nlohmann::json document;
  std::string steps_csv;
  bool partial = false;
};

MergeResult merge_shards(const MergeOptions& options, const std::function<void(const std::string&)>& progress);

}  // namespace kvb

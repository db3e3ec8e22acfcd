#pragma once
// --dump-kept FILE: the absolute positions each method keeps at every compression event, one JSON
// line per (run, sequence, event), so that anyone can check kvbench's decisions against their own
// implementation of a method:
//   {"run": "snapkv@64", "method": "snapkv", "budget": 64, "sequence": "story-1", "event": 0,
//    "processed": 129, "kept": [{"layer": 0, "kv_head": 0, "positions": [0, 3, ...]}, ...]}
// `processed` is the number of tokens the sequence had fed when it compressed (the position of the
// next token); `event` counts that sequence's earlier compressions; positions are ascending; only
// the (layer, KV head)s the event compacted are listed. Lines are written as events happen to
// FILE.partial, which becomes FILE when the run ends (also when it is interrupted or fails), so a
// reader never sees half a file (a run that ends on bad input, before anything is measured, leaves
// none). InputError naming --dump-kept when the file cannot be written.
#include <cstdio>
#include <string>

#include "engine/methods/kv_method.hpp"

namespace kvb {

class KeptLog {
 public:
  explicit KeptLog(std::string path);
  ~KeptLog();
  KeptLog(const KeptLog&) = delete;
  KeptLog& operator=(const KeptLog&) = delete;

  void write(const std::string& run, const PolicyConfig& policy, const std::string& sequence, const KeptEvent& event);
  // Closes the file and moves it into place.
  void finish();

 private:
  std::string path_, partial_;
  std::FILE* file_ = nullptr;
};

}  // namespace kvb

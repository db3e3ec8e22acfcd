#pragma once
// Writers of torch.save-style files for tests and fuzz seeds: a small zip writer (stored or
// deflated entries, correct CRCs), a pickle writer emitting what torch.save emits for a
// TriAttention stats dict, and a whole fake stats file with knobs for corruption.
#include <cstdint>
#include <string>
#include <vector>

namespace kvb::test {

struct ZipEntryIn {
  std::string name, data;
  bool deflate = false;
};

inline void put16(std::string& s, uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); }
inline void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }

std::string make_zip(const std::vector<ZipEntryIn>& entries);

struct PickleOut {
  std::string s = "\x80\x02";
  void op(char c) { s += c; }
  void str(const std::string& v) { op('X'); put32(s, static_cast<uint32_t>(v.size())); s += v; }
  void integer(int v) { op('J'); put32(s, static_cast<uint32_t>(v)); }
  void global(const std::string& module, const std::string& name) { op('c'); s += module + "\n" + name + "\n"; }
  // _rebuild_tensor_v2(storage(key, numel), offset, (n,), (1,), False, OrderedDict())
  void tensor(const std::string& key, int storage_numel, int offset, int n,
              const std::string& storage_global = "FloatStorage") {
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('(');
    str("storage");
    global("torch", storage_global);
    str(key);
    str("cpu");
    integer(storage_numel);
    op('t');
    op('Q');
    integer(offset);
    integer(n);
    op('\x85');
    integer(1);
    op('\x85');
    op('\x89');
    global("collections", "OrderedDict");
    op(')');
    op('R');
    op('t');
    op('R');
  }
};

struct FakeStatsOptions {
  int layers = 2, heads = 2, freqs = 4;
  int storage_numel_claim = -1;       // numel written in the persistent id (default: the real one)
  std::string storage_global = "FloatStorage";
  std::string extra_global_module;    // emits an extra GLOBAL before the stats when set
  std::string extra_metadata;         // raw pickle of extra key/value pairs inside "metadata"
  bool deflate = false;
};

// Values are a deterministic function of (layer, head, field, f) so tests can check them.
float fake_value(int l, int h, int k, int f);

std::string fake_stats_pt(const FakeStatsOptions& o);

}  // namespace kvb::test

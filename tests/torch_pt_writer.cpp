#include "tests/torch_pt_writer.hpp"

#include <zlib.h>

#include <fmt/format.h>

#include "tests/test_support.hpp"

namespace kvb::test {

namespace {

std::string raw_deflate(const std::string& in) { return test::deflate_bytes(in, -MAX_WBITS); }

}  // namespace

std::string make_zip(const std::vector<ZipEntryIn>& entries) {
  std::string out, central;
  for (const ZipEntryIn& e : entries) {
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(e.data.data()), e.data.size()));
    const std::string body = e.deflate ? raw_deflate(e.data) : e.data;
    const uint16_t method = e.deflate ? 8 : 0;
    const uint32_t offset = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50); put16(out, 20); put16(out, 0); put16(out, method); put16(out, 0); put16(out, 0);
    put32(out, crc); put32(out, static_cast<uint32_t>(body.size())); put32(out, static_cast<uint32_t>(e.data.size()));
    put16(out, static_cast<uint16_t>(e.name.size())); put16(out, 0);
    out += e.name;
    out += body;
    put32(central, 0x02014b50); put16(central, 20); put16(central, 20); put16(central, 0); put16(central, method);
    put16(central, 0); put16(central, 0); put32(central, crc); put32(central, static_cast<uint32_t>(body.size()));
    put32(central, static_cast<uint32_t>(e.data.size())); put16(central, static_cast<uint16_t>(e.name.size()));
    put16(central, 0); put16(central, 0); put16(central, 0); put16(central, 0); put32(central, 0); put32(central, offset);
    central += e.name;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50); put16(out, 0); put16(out, 0);
  put16(out, static_cast<uint16_t>(entries.size())); put16(out, static_cast<uint16_t>(entries.size()));
  put32(out, static_cast<uint32_t>(central.size())); put32(out, cd_offset); put16(out, 0);
  return out;
}

float fake_value(int l, int h, int k, int f) { return (k == 2 ? 2.0f : 0.5f) + 0.01f * f + 0.1f * h + l + 0.001f * k; }

std::string fake_stats_pt(const FakeStatsOptions& o) {
  PickleOut p;
  std::vector<ZipEntryIn> storages;
  p.op('}');
  p.op('(');
  p.str("metadata");
  p.op('}');
  p.op('(');
  p.str("rope_style");
  p.str("half");
  p.str("sampled_heads");
  p.op(']');
  p.op('(');
  for (int l = 0; l < o.layers; ++l)
    for (int h = 0; h < o.heads; ++h) {
      p.op(']'); p.op('('); p.integer(l); p.integer(h); p.op('e');
    }
  p.op('e');
  p.str("head_dim");
  p.integer(2 * o.freqs);
  p.str("model_name");
  p.str("fake/model");
  p.s += o.extra_metadata;
  p.op('u');
  if (!o.extra_global_module.empty()) {
    p.str("evil");
    p.global(o.extra_global_module, "system");
  }
  p.str("stats");
  p.op('}');
  p.op('(');
  const char* names[3] = {"q_mean_real", "q_mean_imag", "q_abs_mean"};
  int key = 0;
  for (int l = 0; l < o.layers; ++l)
    for (int h = 0; h < o.heads; ++h) {
      p.str(fmt::format("layer{:02d}_head{:02d}", l, h));
      p.op('}');
      p.op('(');
      for (int k = 0; k < 3; ++k) {
        std::string data;
        for (int f = 0; f < o.freqs; ++f) {
          const float v = fake_value(l, h, k, f);
          data.append(reinterpret_cast<const char*>(&v), 4);
        }
        const std::string skey = std::to_string(key++);
        storages.push_back({"arch/data/" + skey, data, o.deflate});
        p.str(names[k]);
        p.tensor(skey, o.storage_numel_claim >= 0 ? o.storage_numel_claim : o.freqs, 0, o.freqs, o.storage_global);
      }
      p.op('u');
    }
  p.op('u');
  p.op('u');
  p.op('.');
  std::vector<ZipEntryIn> entries = {{"arch/data.pkl", p.s, o.deflate}, {"arch/byteorder", "little"}};
  entries.insert(entries.end(), storages.begin(), storages.end());
  entries.push_back({"arch/version", "3\n"});
  return make_zip(entries);
}

}  // namespace kvb::test

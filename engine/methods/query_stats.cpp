#include "engine/methods/query_stats.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engine/methods/torch_pt_reader.hpp"
#include "engine/safetensors_file.hpp"
#include "util/errors.hpp"
#include "util/quote.hpp"
#include "util/mapped_file.hpp"

namespace kvb {

namespace {

using nlohmann::json;

// Upper bounds that keep a corrupt file from turning into a huge allocation; real models are far
// below them (the largest open models have ~128 layers x 128 heads, head_dim <= 512).
constexpr int kMaxLayers = 1024;
constexpr int kMaxHeads = 1024;
constexpr int64_t kMaxHeadSlots = 1 << 17;
constexpr int kMaxHeadDim = 4096;

constexpr const char* kFormatName = "kvbench-query-stats";
constexpr const char* kFormatVersion = "1";
const char* const kTensorNames[3] = {"q_mean_real", "q_mean_imag", "q_abs_mean"};

std::vector<float>& field(HeadStats& h, int k) {
  return k == 0 ? h.q_mean_real : k == 1 ? h.q_mean_imag : h.q_abs_mean;
}
const std::vector<float>& field(const HeadStats& h, int k) {
  return k == 0 ? h.q_mean_real : k == 1 ? h.q_mean_imag : h.q_abs_mean;
}

void check_rope_style(const std::string& style, const std::string& path) {
  if (style != "half" && style != "interleaved")
    fail_input("{}: rope style {} is neither 'half' nor 'interleaved'", path, quote(style));
}

// HF's rope_type names as calibrate.py records them, in kvbench's spelling.
std::string scaling_name(const std::string& rope_type) { return rope_type == "default" ? "none" : rope_type; }

// Every value finite and every |z| mean non-negative: a NaN here would silently poison every
// score computed from the head.
void check_head_values(const HeadStats& h, int layer, int head, const std::string& path) {
  for (int k = 0; k < 3; ++k)
    for (float v : field(h, k))
      if (!std::isfinite(v) || (k == 2 && v < 0))
        fail_input("{}: {} of layer {} head {} holds an invalid value {}", path, kTensorNames[k], layer, head, v);
}

// ---------------------------------------------------------------------------------------------
// Official TriAttention .pt files.

// "layer{LL}_head{HH}" -> (LL, HH); nullopt for any other key.
std::optional<std::pair<int, int>> parse_head_key(std::string_view key) {
  auto number = [&](std::string_view prefix, int& out) {
    if (!key.starts_with(prefix)) return false;
    key.remove_prefix(prefix.size());
    size_t n = 0;
    while (n < key.size() && n < 6 && key[n] >= '0' && key[n] <= '9') ++n;
    if (n == 0 || std::from_chars(key.data(), key.data() + n, out).ec != std::errc()) return false;
    key.remove_prefix(n);
    return true;
  };
  int layer = 0, head = 0;
  if (!number("layer", layer) || !number("_head", head) || !key.empty()) return std::nullopt;
  return std::make_pair(layer, head);
}

// ---------------------------------------------------------------------------------------------
// kvbench's safetensors format.

std::string format_double(double v) { return fmt::format("{}", v); }  // shortest form that reads back exactly

const std::string* meta_string(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  return it == meta.end() || it->second.empty() ? nullptr : &it->second;
}

int64_t parse_int(const std::string& text, const std::string& path, const std::string& key, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    fail_input("{}: metadata {} = {} is not an integer in [{}, {}]", path, key, quote(text), lo, hi);
  return v;
}

double parse_double(const std::string& text, const std::string& path, const std::string& key) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) || v <= 0)
    fail_input("{}: metadata {} = {} is not a positive number", path, key, quote(text));
  return v;
}

}  // namespace

const HeadStats& QueryStats::at(int layer, int head) const {
  if (layer < 0 || layer >= n_layers || head < 0 || head >= n_heads)
    throw std::out_of_range(fmt::format("query stats: (layer {}, head {}) outside {} x {}", layer, head, n_layers, n_heads));
  return heads.at(static_cast<size_t>(layer) * n_heads + head);
}

QueryStats read_query_stats_pt(const std::string& path) {
  const pt::TorchFile file(path);
  using pt::Kind;
  const pt::Object& root = file.root();
  if (root.kind != Kind::Dict) fail_input("{}: top-level object is a {}, expected a dict", path, pt::to_string(root.kind));
  const pt::Object* stats_obj = file.find(root, "stats");
  if (!stats_obj || stats_obj->kind != Kind::Dict) fail_input("{}: no 'stats' dict; not a TriAttention stats file", path);

  QueryStats qs;
  qs.format = "torch-pt";
  qs.source_path = path;
  int meta_head_dim = 0;
  const pt::Object* sampled = nullptr;
  if (const pt::Object* meta = file.find(root, "metadata")) {
    if (meta->kind != Kind::Dict) fail_input("{}: 'metadata' is a {}, expected a dict", path, pt::to_string(meta->kind));
    auto str = [&](const char* key) -> const std::string* {
      const pt::Object* v = file.find(*meta, key);
      if (!v) return nullptr;
      if (v->kind != Kind::Str) fail_input("{}: metadata {} is a {}, expected a str", path, key, pt::to_string(v->kind));
      return &v->s;
    };
    if (const pt::Object* hd = file.find(*meta, "head_dim")) {
      if (hd->kind != Kind::Int || hd->i < 2 || hd->i > kMaxHeadDim || hd->i % 2)
        fail_input("{}: metadata head_dim is not an even integer in [2, {}]", path, kMaxHeadDim);
      meta_head_dim = static_cast<int>(hd->i);
    }
    if (const std::string* s = str("rope_style")) qs.rope_style = *s;
    if (const std::string* s = str("model_name")) qs.model_name = *s;
    if (const std::string* s = str("rope_type")) qs.rope_scaling_type = scaling_name(*s);
    if (const pt::Object* t = file.find(*meta, "rope_theta")) {
      const double v = t->kind == Kind::Float ? t->f : t->kind == Kind::Int ? static_cast<double>(t->i) : NAN;
      if (!std::isfinite(v) || v <= 0) fail_input("{}: metadata rope_theta is not a positive number", path);
      qs.rope_theta = v;
    }
    sampled = file.find(*meta, "sampled_heads");
    if (sampled && sampled->kind != Kind::List && sampled->kind != Kind::Tuple)
      fail_input("{}: metadata sampled_heads is a {}, expected a list", path, pt::to_string(sampled->kind));
  }
  check_rope_style(qs.rope_style, path);

  // Index the stats entries by (layer, head).
  std::map<std::pair<int, int>, const pt::Object*> entries;
  for (size_t k = 0; k + 1 < stats_obj->items.size(); k += 2) {
    const pt::Object& key = file.object(stats_obj->items[k]);
    const auto lh = key.kind == Kind::Str ? parse_head_key(key.s) : std::nullopt;
    if (!lh) fail_input("{}: stats key {} is not of the form layerLL_headHH", path, key.kind == Kind::Str ? key.s : pt::to_string(key.kind));
    if (!entries.emplace(*lh, &file.object(stats_obj->items[k + 1])).second)
      fail_input("{}: stats hold layer {} head {} twice", path, lh->first, lh->second);
  }

  // The reference loader uses exactly the heads listed in sampled_heads; without that list,
  // every entry.
  std::vector<std::pair<int, int>> wanted;
  if (sampled) {
    for (uint32_t id : sampled->items) {
      const pt::Object& pair = file.object(id);
      const bool ok = (pair.kind == Kind::List || pair.kind == Kind::Tuple) && pair.items.size() == 2 &&
                      file.object(pair.items[0]).kind == Kind::Int && file.object(pair.items[1]).kind == Kind::Int;
      if (!ok) fail_input("{}: sampled_heads entry is not a [layer, head] pair of integers", path);
      const int64_t l = file.object(pair.items[0]).i, h = file.object(pair.items[1]).i;
      if (l < 0 || l >= kMaxLayers || h < 0 || h >= kMaxHeads)
        fail_input("{}: sampled head [{}, {}] is out of range", path, l, h);
      wanted.emplace_back(static_cast<int>(l), static_cast<int>(h));
    }
  } else {
    for (const auto& [lh, obj] : entries) wanted.push_back(lh);
  }
  if (wanted.empty()) fail_input("{}: the file holds no heads", path);
  for (const auto& [l, h] : wanted) {
    if (l >= kMaxLayers || h >= kMaxHeads) fail_input("{}: layer {} head {} is out of range", path, l, h);
    qs.n_layers = std::max(qs.n_layers, l + 1);
    qs.n_heads = std::max(qs.n_heads, h + 1);
  }
  if (int64_t(qs.n_layers) * qs.n_heads > kMaxHeadSlots)
    fail_input("{}: {} layers x {} heads is implausibly large", path, qs.n_layers, qs.n_heads);
  qs.heads.resize(static_cast<size_t>(qs.n_layers) * qs.n_heads);

  int n_freqs = meta_head_dim / 2;  // 0 until known
  for (const auto& [l, h] : wanted) {
    auto it = entries.find({l, h});
    if (it == entries.end()) fail_input("{}: sampled head layer {} head {} has no stats entry", path, l, h);
    const pt::Object& e = *it->second;
    // A head's dict holds three tensors; the bound keeps the key lookups below linear in the
    // file even when a hostile file shares one huge dict among all heads.
    if (e.kind != Kind::Dict || e.items.size() > 2 * 16)
      fail_input("{}: stats of layer {} head {} are not a small dict of tensors", path, l, h);
    HeadStats& hs = qs.heads[static_cast<size_t>(l) * qs.n_heads + h];
    if (hs.present()) continue;  // listed twice in sampled_heads
    for (int k = 0; k < 3; ++k) {
      const pt::Object* t = file.find(e, kTensorNames[k]);
      if (!t || t->kind != Kind::Tensor)
        fail_input("{}: stats of layer {} head {} have no {} tensor", path, l, h, kTensorNames[k]);
      if (t->shape.size() != 1 || t->shape[0] < 1 || t->shape[0] > kMaxHeadDim / 2)
        fail_input("{}: {} of layer {} head {} has shape [{}], expected one dimension of head_dim/2", path,
                   kTensorNames[k], l, h, fmt::join(t->shape, ", "));
      if (n_freqs == 0) n_freqs = static_cast<int>(t->shape[0]);
      if (t->shape[0] != n_freqs)
        fail_input("{}: {} of layer {} head {} has {} frequencies, expected {}{}", path, kTensorNames[k], l, h,
                   t->shape[0], n_freqs, meta_head_dim ? " (metadata head_dim / 2)" : "");
      field(hs, k) = file.values(*t);
    }
    check_head_values(hs, l, h, path);
  }
  qs.head_dim = 2 * n_freqs;
  return qs;
}

QueryStats read_query_stats_safetensors(const std::string& path) {
  const SafetensorsFile file(path, "stats file (.pt or kvbench safetensors)");
  std::map<std::string, std::string> meta = file.metadata();
  if (meta["format"] != kFormatName)
    fail_input("{}: not a kvbench query-stats file (metadata format {}, expected '{}')", path, quote(meta["format"]), kFormatName);
  if (meta["version"] != kFormatVersion)
    fail_input("{}: query-stats format version {} is not supported (expected {})", path, quote(meta["version"]), kFormatVersion);

  QueryStats qs;
  qs.format = "kvbench-safetensors";
  qs.source_path = path;
  auto required_int = [&](const char* key, int64_t lo, int64_t hi) {
    const std::string* s = meta_string(meta, key);
    if (!s) fail_input("{}: metadata {} is missing", path, key);
    return static_cast<int>(parse_int(*s, path, key, lo, hi));
  };
  qs.n_layers = required_int("n_layers", 1, kMaxLayers);
  qs.n_heads = required_int("n_heads", 1, kMaxHeads);
  qs.head_dim = required_int("head_dim", 2, kMaxHeadDim);
  if (qs.head_dim % 2) fail_input("{}: metadata head_dim {} is odd", path, qs.head_dim);
  if (int64_t(qs.n_layers) * qs.n_heads > kMaxHeadSlots)
    fail_input("{}: {} layers x {} heads is implausibly large", path, qs.n_layers, qs.n_heads);
  const std::string* pairing = meta_string(meta, "rope_pairing");
  if (!pairing) fail_input("{}: metadata rope_pairing is missing", path);
  qs.rope_style = *pairing;
  check_rope_style(qs.rope_style, path);
  if (const std::string* s = meta_string(meta, "model_name")) qs.model_name = *s;
  if (const std::string* s = meta_string(meta, "model_source")) qs.model_source = *s;
  if (const std::string* s = meta_string(meta, "n_kv_heads")) qs.n_kv_heads = static_cast<int>(parse_int(*s, path, "n_kv_heads", 1, kMaxHeads));
  if (const std::string* s = meta_string(meta, "rope_theta")) qs.rope_theta = parse_double(*s, path, "rope_theta");
  if (const std::string* s = meta_string(meta, "rope_scaling_type")) qs.rope_scaling_type = *s;
  if (const std::string* s = meta_string(meta, "rope_scaling_factor")) qs.rope_scaling_factor = parse_double(*s, path, "rope_scaling_factor");
  if (const std::string* s = meta_string(meta, "token_count")) qs.token_count = parse_int(*s, path, "token_count", 0, INT64_MAX);

  const int F = qs.n_freqs();
  qs.heads.resize(static_cast<size_t>(qs.n_layers) * qs.n_heads);
  for (int k = 0; k < 3; ++k) {
    const std::string where = fmt::format("{}: tensor {}", path, kTensorNames[k]);
    const SafetensorsTensor* t = file.find(kTensorNames[k]);
    if (!t) fail_input("{}: missing", where);
    if (t->dtype != "F32") fail_input("{}: dtype is not F32", where);
    if (t->shape != std::vector<int64_t>{qs.n_layers, qs.n_heads, F})
      fail_input("{}: shape [{}] does not match the metadata's [{}, {}, {}]", where, fmt::join(t->shape, ", "),
                 qs.n_layers, qs.n_heads, F);
    const uint8_t* data = t->data;
    for (size_t h = 0; h < qs.heads.size(); ++h) {
      std::vector<float>& out = field(qs.heads[h], k);
      out.resize(F);
      std::memcpy(out.data(), data + h * F * 4, static_cast<size_t>(F) * 4);
    }
  }
  for (int l = 0; l < qs.n_layers; ++l)
    for (int h = 0; h < qs.n_heads; ++h) check_head_values(qs.at(l, h), l, h, path);
  return qs;
}

QueryStats read_query_stats(const std::string& path) {
  // Dispatch on content, not the file name: a zip archive is a torch.save file.
  char magic[4] = {};
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_input("{}: cannot open: {}", path, std::strerror(errno));
    in.read(magic, 4);
  }
  if (std::memcmp(magic, "PK\x03\x04", 4) == 0 || std::memcmp(magic, "PK\x05\x06", 4) == 0)
    return read_query_stats_pt(path);
  return read_query_stats_safetensors(path);
}

void write_query_stats(const std::string& path, const QueryStats& qs) {
  if (qs.n_layers < 1 || qs.n_heads < 1 || qs.head_dim < 2 || qs.head_dim % 2 ||
      qs.heads.size() != static_cast<size_t>(qs.n_layers) * qs.n_heads)
    fail_input("{}: cannot write query stats of {} layers x {} heads x head_dim {} holding {} heads", path,
               qs.n_layers, qs.n_heads, qs.head_dim, qs.heads.size());
  check_rope_style(qs.rope_style, path);
  const size_t F = qs.n_freqs();
  for (int l = 0; l < qs.n_layers; ++l)
    for (int h = 0; h < qs.n_heads; ++h)
      for (int k = 0; k < 3; ++k)
        if (field(qs.at(l, h), k).size() != F)
          fail_input("{}: cannot write query stats: layer {} head {} {} has {} values, expected {} (the format "
                     "needs every head)",
                     path, l, h, kTensorNames[k], field(qs.at(l, h), k).size(), F);

  json meta = {{"format", kFormatName},
               {"version", kFormatVersion},
               {"n_layers", std::to_string(qs.n_layers)},
               {"n_heads", std::to_string(qs.n_heads)},
               {"head_dim", std::to_string(qs.head_dim)},
               {"rope_pairing", qs.rope_style}};
  if (!qs.model_name.empty()) meta["model_name"] = qs.model_name;
  if (!qs.model_source.empty()) meta["model_source"] = qs.model_source;
  if (qs.n_kv_heads) meta["n_kv_heads"] = std::to_string(*qs.n_kv_heads);
  if (qs.rope_theta) meta["rope_theta"] = format_double(*qs.rope_theta);
  if (!qs.rope_scaling_type.empty()) meta["rope_scaling_type"] = qs.rope_scaling_type;
  if (qs.rope_scaling_factor) meta["rope_scaling_factor"] = format_double(*qs.rope_scaling_factor);
  if (qs.token_count) meta["token_count"] = std::to_string(*qs.token_count);

  json header = {{"__metadata__", meta}};
  const uint64_t tensor_bytes = qs.heads.size() * F * 4;
  for (int k = 0; k < 3; ++k)
    header[kTensorNames[k]] = {{"dtype", "F32"},
                               {"shape", {qs.n_layers, qs.n_heads, F}},
                               {"data_offsets", {k * tensor_bytes, (k + 1) * tensor_bytes}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes, as safetensors writers do

  // Write beside the target and rename, so a failed write never leaves a half file under the name.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail_input("{}: cannot write: {}", path, std::strerror(errno));
    const uint64_t n = text.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (int k = 0; k < 3; ++k)
      for (const HeadStats& h : qs.heads)
        out.write(reinterpret_cast<const char*>(field(h, k).data()), static_cast<std::streamsize>(F * 4));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      fail_input("{}: writing failed: {}", path, std::strerror(errno));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail_input("{}: cannot write: {}", path, ec.message());
  }
}

void check_stats_match_model(const QueryStats& qs, const ModelConfig& c, const std::string& path,
                             const std::string& model_label) {
  if (qs.n_layers != c.n_layers || qs.n_heads != c.n_heads || qs.head_dim != c.head_dim)
    fail_input("{}: stats are for {} layers x {} heads x head_dim {}, model {} has {} x {} x {}", path, qs.n_layers,
               qs.n_heads, qs.head_dim, model_label, c.n_layers, c.n_heads, c.head_dim);
  // rope_style is not compared: statistics are indexed by frequency, and z_f is the same number
  // whether a checkpoint stores pair f in lanes (f, f + d/2) or (2f, 2f+1) (converting one to the
  // other permutes wq/wk rows to match; tests/test_calibration.cpp checks it on stories260K).
  if (qs.n_kv_heads && *qs.n_kv_heads != c.n_kv_heads)
    fail_input("{}: stats were measured on a model with {} KV heads, model {} has {}", path, *qs.n_kv_heads,
               model_label, c.n_kv_heads);
  auto differs = [](double a, double b) { return std::abs(a - b) > 1e-6 * std::max(std::abs(a), std::abs(b)); };
  if (qs.rope_theta && differs(*qs.rope_theta, c.rope_theta))
    fail_input("{}: stats were measured with rope_theta {}, model {} has {}", path, *qs.rope_theta, model_label,
               c.rope_theta);
  if (!qs.rope_scaling_type.empty()) {
    const std::string model_type = to_string(c.rope_scaling.type);
    if (qs.rope_scaling_type != model_type)
      fail_input("{}: stats were measured with rope scaling '{}', model {} uses '{}'", path, qs.rope_scaling_type,
                 model_label, model_type);
    if (c.rope_scaling.type != RopeScalingType::None && qs.rope_scaling_factor &&
        differs(*qs.rope_scaling_factor, c.rope_scaling.factor))
      fail_input("{}: stats were measured with rope scaling factor {}, model {} has {}", path,
                 *qs.rope_scaling_factor, model_label, c.rope_scaling.factor);
  }
  const size_t F = qs.n_freqs();
  for (int l = 0; l < qs.n_layers; ++l)
    for (int h = 0; h < qs.n_heads; ++h) {
      const HeadStats& hs = qs.at(l, h);
      if (hs.q_mean_real.size() != F || hs.q_mean_imag.size() != F || hs.q_abs_mean.size() != F)
        fail_input("{}: stats have no entry for layer {} head {} (every head of model {} needs one)", path, l, h,
                   model_label);
    }
}

}  // namespace kvb

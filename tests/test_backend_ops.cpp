// Every CUDA op (kernels/cuda/ops_cuda.hpp, and store_window_queries from compression_cuda.hpp)
// against its CPU reference, in the style of llama.cpp's test-backend-ops.
//
// Contract. A table (all_cases) lists one row per (op, shape, parameters): a generator of random
// host inputs at awkward sizes, the CPU reference (kernels/ops.hpp, RopeTable, KvCache, the bf16
// and counter-hash helpers) that computes the expected outputs, each with a tolerance, and the
// CUDA call. One driver (run_case) runs every row twice, once per poison byte (0xff, then 0x5a):
// it uploads the inputs, fills every output the op does not update in place with the poison (so
// an element the kernel leaves unwritten fails, even one whose right value is 0xff bytes, a NaN),
// runs the CUDA op, and compares each output with the CPU's: bit for bit, within an absolute
// bound (abs + rel |want|, for fp32 sums taken in another order), or within a relative one
// (rel max(|want|, floor)); inputs the op must not write must come back unchanged. The GPU reads
// bf16 where the CPU reads the floats those bf16 values hold exactly. One gtest per op
// (Cuda/BackendOps.MatchesCpu/<op>) runs that op's rows; a failure names the row. What does not
// fit a row (empty launches, counts past 2^31, logits_stats' per-field checks, argument errors)
// is a separate CudaBackendOps test on the same helpers. GPU tests skip where no GPU answers; a
// build without the CUDA backend has one skipped placeholder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "kernels/attention_workspace.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "engine/fidelity.hpp"
#include "engine/kv_cache.hpp"
#include "engine/model_config.hpp"
#include "engine/rope.hpp"
#include "kernels/bf16.hpp"
#include "util/counter_hash.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "kernels/gpu_info.hpp"
#include "kernels/ops.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"
#endif

namespace kvb {
namespace {

TEST(AttentionWorkspace, SizedForTheLargestBatchServesEverySmallerOne) {
  // Callers size the workspace once, for their largest batch; decode then runs with n = 1.
  for (int cap : {1, 255, 257, 8200, 131072})
    for (int hd : {64, 128}) {
      size_t prev = 0;
      for (int n = 1; n <= 3000; ++n) {
        const size_t w = attention_workspace_floats(n, 32, hd, cap);
        ASSERT_GE(w, prev) << "n " << n << " capacity " << cap;
        prev = w;
      }
      EXPECT_LE(prev, size_t(1024) * 32 * (hd + 2)) << "capacity " << cap;  // a few MiB at most
    }
  EXPECT_EQ(attention_workspace_floats(1, 32, 128, 256), 0u);  // one span: no split
}

#ifdef KVBENCH_HAVE_CUDA

// --- Host helpers ------------------------------------------------------------------------------

std::vector<float> random_floats(size_t n, std::mt19937& rng, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

int random_int(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = bf16_from_float(x[i]);
  return out;
}

std::vector<float> to_f32(const std::vector<bf16>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = float_from_bf16(x[i]);
  return out;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return s.str();
}

// --- The harness -------------------------------------------------------------------------------

using Data = std::variant<std::vector<float>, std::vector<bf16>, std::vector<int32_t>, std::vector<uint32_t>,
                          std::vector<double>>;
using Tensors = std::map<std::string, Data>;

template <class T>
const std::vector<T>& tensor(const Tensors& t, const std::string& name) {
  return std::get<std::vector<T>>(t.at(name));
}

// How a CUDA output must match the CPU's. Bit-exact: the same bytes (NaN payloads and signed
// zeros included; integer outputs are always compared so). Otherwise, at every element,
// |got - want| <= abs * scale[i] + rel * max(|want|, floor), which NaN fails; `scale` (1 where
// empty) is a per-element magnitude such as sum_k |x_k w_k| of a dot product, for a bound that
// survives cancellation.
struct Tolerance {
  bool exact = true;
  double abs = 0, rel = 0, floor = 0;
  std::vector<float> scale;
};
Tolerance bit_exact() { return {}; }
Tolerance absolute(double abs, double rel = 0) { return {false, abs, rel, 0, {}}; }
Tolerance relative(double rel, double floor) { return {false, 0, rel, floor, {}}; }

struct Output {
  std::string name;  // an input's name: the op updates that input in place
  Data want;
  Tolerance tol;
  std::vector<int64_t> dims;  // row-major shape, for the coordinates of a mismatch (flat when empty)
};
using Outputs = std::vector<Output>;

// The device copies of a case's tensors, by name, each `misalign` elements into its allocation.
class DeviceTensors {
 public:
  explicit DeviceTensors(size_t misalign) : misalign_(misalign) {}

  // A tensor of `host`'s type and size, every byte `poison`, then `host` itself when `upload`.
  void add(const std::string& name, const Data& host, int poison, bool upload) {
    std::visit(
        [&](const auto& v) {
          using T = typename std::decay_t<decltype(v)>::value_type;
          const size_t bytes = (misalign_ + v.size()) * sizeof(T);
          // At least one byte: an empty tensor still gets a pointer.
          Tensor t{cuda::DeviceBuffer<uint8_t>(std::max<size_t>(bytes, 1), name.c_str()), misalign_ * sizeof(T),
                   std::vector<T>(), v.size()};
          t.bytes.fill(poison);
          if (upload) cuda::copy_to_device_bytes(t.bytes.get() + t.offset, v.data(), v.size() * sizeof(T));
          tensors_.insert_or_assign(name, std::move(t));
        },
        host);
  }

  template <class T>
  T* get(const std::string& name) const {
    const Tensor& t = tensors_.at(name);
    if (!std::holds_alternative<std::vector<T>>(t.empty)) throw std::logic_error("tensor " + name + ": wrong type");
    return reinterpret_cast<T*>(t.bytes.get() + t.offset);
  }
  size_t size(const std::string& name) const { return tensors_.at(name).count; }

  Data download(const std::string& name) const {
    const Tensor& t = tensors_.at(name);
    Data out = t.empty;
    std::visit(
        [&](auto& v) {
          v.resize(t.count);
          cuda::copy_to_host_bytes(v.data(), t.bytes.get() + t.offset, v.size() * sizeof(v[0]));
        },
        out);
    return out;
  }

 private:
  struct Tensor {
    cuda::DeviceBuffer<uint8_t> bytes;
    size_t offset;  // bytes
    Data empty;     // an empty vector of the element type
    size_t count;
  };
  size_t misalign_;
  std::map<std::string, Tensor> tensors_;
};

struct Case {
  std::string op;      // one gtest per op runs its rows in table order
  std::string params;  // shape and parameters
  std::function<Tensors(std::mt19937&)> inputs;
  std::function<Outputs(const Tensors&)> cpu;
  std::function<void(const DeviceTensors&)> cuda;
  size_t misalign = 0;  // elements each device tensor sits into its allocation (unaligned pointers)
};

std::string coordinates(size_t i, const std::vector<int64_t>& dims) {
  if (dims.empty()) return "[" + std::to_string(i) + "]";
  std::vector<int64_t> at(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    at[d] = int64_t(i % size_t(dims[d]));
    i /= size_t(dims[d]);
  }
  std::string s = "[";
  for (size_t d = 0; d < at.size(); ++d) s += (d ? ", " : "") + std::to_string(at[d]);
  return s + "]";
}

template <class T>
std::string show(T v) {
  std::ostringstream s;
  s.precision(9);
  s << +v;
  if constexpr (std::is_same_v<T, float>) s << " (bits 0x" << std::hex << bits_of(v) << ")";
  if constexpr (std::is_same_v<T, bf16>) s << " (0x" << std::hex << v << ")";
  return s.str();
}

// Whether got matches want; a failure names the first mismatch.
template <class T>
bool compare(const std::string& what, const std::vector<T>& got, const std::vector<T>& want, const Tolerance& tol,
             const std::vector<int64_t>& dims) {
  if (got.size() != want.size()) {
    ADD_FAILURE() << what << ": " << got.size() << " elements, want " << want.size();
    return false;
  }
  auto bound = [&](size_t i) {
    return tol.abs * (tol.scale.empty() ? 1.0 : double(tol.scale[i])) +
           tol.rel * std::max(std::fabs(double(want[i])), tol.floor);
  };
  auto matches = [&](size_t i) {
    if constexpr (std::is_floating_point_v<T>)
      if (!tol.exact) return std::fabs(double(got[i]) - double(want[i])) <= bound(i);
    return std::memcmp(&got[i], &want[i], sizeof(T)) == 0;
  };
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (!matches(i) && bad++ == 0) first = i;
  if (bad == 0) return true;
  std::ostringstream bound_text;
  if (!tol.exact) bound_text << ", bound " << bound(first);
  ADD_FAILURE() << what << ": " << bad << " of " << want.size() << " elements differ, the first at "
                << coordinates(first, dims) << ": got " << show(got[first]) << ", want " << show(want[first])
                << bound_text.str();
  return false;
}

bool compare(const std::string& what, const Data& got, const Data& want, const Tolerance& tol,
             const std::vector<int64_t>& dims) {
  return std::visit(
      [&](const auto& w) { return compare(what, std::get<std::decay_t<decltype(w)>>(got), w, tol, dims); }, want);
}

void run_case(const Case& c) {
  const std::string name = c.op + " (" + c.params + ")";
  SCOPED_TRACE(name);
  std::mt19937 rng(20250611);
  const Tensors in = c.inputs(rng);
  const Outputs want = c.cpu(in);
  auto written = [&](const std::string& input) {
    return std::any_of(want.begin(), want.end(), [&](const Output& o) { return o.name == input; });
  };
  for (const auto& [poison, label] : {std::pair{0xff, "0xff"}, std::pair{0x5a, "0x5a"}}) {
    SCOPED_TRACE(std::string("outputs poisoned with bytes ") + label);
    DeviceTensors dev(c.misalign);
    for (const auto& [input, data] : in) dev.add(input, data, poison, true);
    for (const Output& o : want)
      if (!in.count(o.name)) dev.add(o.name, o.want, poison, false);
    c.cuda(dev);
    cuda::synchronize(name.c_str());
    bool ok = true;
    for (const Output& o : want) ok &= compare(o.name, dev.download(o.name), o.want, o.tol, o.dims);
    for (const auto& [input, data] : in)
      if (!written(input))
        ok &= compare(input + " (an input: must stay as it was)", dev.download(input), data, bit_exact(), {});
    if (!ok) return;
  }
}

// --- Elementwise and row ops -------------------------------------------------------------------

void embedding_cases(std::vector<Case>& out) {
  for (auto [vocab, n, dim] : std::vector<std::tuple<int, int, int>>{{1, 1, 1},
                                                                     {5, 3, 7},
                                                                     {1000, 1, 64},
                                                                     {1000, 33, 257},
                                                                     {2000, 17, 4096},
                                                                     {3, 5, 5121},
                                                                     {7, 2, 20000},
                                                                     {50, 3000, 1000}})
    out.push_back({"embedding", cat("vocab ", vocab, ", n ", n, ", dim ", dim),
                   [=](std::mt19937& rng) {
                     std::vector<int32_t> tokens(n);
                     for (int32_t& t : tokens) t = random_int(rng, 0, vocab - 1);
                     tokens[0] = vocab - 1;  // the last row of the table
                     if (n > 1) tokens[n - 1] = 0;
                     return Tensors{{"table", to_bf16(random_floats(size_t(vocab) * dim, rng))}, {"tokens", tokens}};
                   },
                   [=](const Tensors& t) {
                     const auto& table = tensor<bf16>(t, "table");
                     const auto& tokens = tensor<int32_t>(t, "tokens");
                     std::vector<float> x(size_t(n) * dim);
                     for (int i = 0; i < n; ++i)
                       for (int j = 0; j < dim; ++j)
                         x[size_t(i) * dim + j] = float_from_bf16(table[size_t(tokens[i]) * dim + j]);
                     return Outputs{{"x", x, bit_exact(), {n, dim}}};
                   },
                   [=](const DeviceTensors& d) {
                     cuda::embedding(d.get<float>("x"), d.get<bf16>("table"), d.get<int32_t>("tokens"), n, dim);
                   }});
}

ModelConfig rope_config(int head_dim, RopePairing pairing, RopeScalingType type) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_pairing = pairing;
  c.rope_scaling.type = type;
  switch (type) {
    case RopeScalingType::None:
      c.rope_theta = 10000.0;
      break;
    case RopeScalingType::Linear:
      c.rope_theta = 10000.0;
      c.rope_scaling.factor = 2.0;
      break;
    case RopeScalingType::Llama3:  // Llama 3.1
      c.rope_theta = 500000.0;
      c.rope_scaling.factor = 8.0;
      c.rope_scaling.low_freq_factor = 1.0;
      c.rope_scaling.high_freq_factor = 4.0;
      c.rope_scaling.original_max_position = 8192;
      break;
    case RopeScalingType::Yarn:  // Qwen-style YaRN, attention factor derived: 0.1 ln 4 + 1
      c.rope_theta = 1000000.0;
      c.rope_scaling.factor = 4.0;
      c.rope_scaling.original_max_position = 32768;
      c.rope_scaling.beta_fast = 32.0;
      c.rope_scaling.beta_slow = 1.0;
      c.rope_scaling.attention_factor = 0.0;
      break;
  }
  return c;
}

void rope_cases(std::vector<Case>& out) {
  for (int hd : {64, 128})
    for (RopePairing pairing : {RopePairing::Half, RopePairing::Interleaved})
      for (RopeScalingType type :
           {RopeScalingType::None, RopeScalingType::Linear, RopeScalingType::Llama3, RopeScalingType::Yarn})
        for (auto [n, n_heads] : std::vector<std::pair<int, int>>{{1, 1}, {5, 3}, {37, 8}, {3, 40}, {300, 2}}) {
          const ModelConfig config = rope_config(hd, pairing, type);
          out.push_back(
              {"rope",
               cat("head_dim ", hd, ", ", to_string(pairing), ", ", to_string(type), ", n ", n, ", heads ", n_heads),
               [=](std::mt19937& rng) {
                 std::vector<int32_t> pos(n);
                 for (int32_t& p : pos) p = random_int(rng, 0, 40000);
                 pos[0] = 40000;
                 if (n > 1) pos[1] = 0;
                 if (n > 2) pos[2] = 1;
                 return Tensors{{"x", random_floats(size_t(n) * n_heads * hd, rng)},
                                {"pos", pos},
                                {"inv_freq", RopeTable(config).inv_freq()}};
               },
               [=](const Tensors& t) {
                 const RopeTable table(config);
                 if (type == RopeScalingType::Yarn) {
                   EXPECT_GT(table.attention_scale(), 1.0);  // the scale is exercised
                 }
                 std::vector<float> x = tensor<float>(t, "x");
                 for (int i = 0; i < n; ++i)
                   table.apply(x.data() + size_t(i) * n_heads * hd, n_heads, tensor<int32_t>(t, "pos")[i]);
                 return Outputs{{"x", x, relative(1e-5, 1.0), {n, n_heads, hd}}};
               },
               [=](const DeviceTensors& d) {
                 cuda::rope(d.get<float>("x"), d.get<int32_t>("pos"), n, n_heads, hd, d.get<double>("inv_freq"),
                            static_cast<float>(rope_attention_scale(config)), pairing == RopePairing::Interleaved);
               }});
        }
}

void rmsnorm_cases(std::vector<Case>& out) {
  for (bool in_place : {false, true})
    for (auto [rows, n] :
         std::vector<std::pair<int, int>>{{1, 1}, {3, 7}, {5, 64}, {17, 255}, {2, 257}, {9, 4096}, {1, 5121}}) {
      const std::string y = in_place ? "x" : "y";  // y may alias x
      out.push_back(
          {"rmsnorm", cat("rows ", rows, ", n ", n, in_place ? ", in place" : ""),
           [=](std::mt19937& rng) {
             return Tensors{{"x", random_floats(size_t(rows) * n, rng)}, {"w", random_floats(n, rng, 0.5f, 1.5f)}};
           },
           [=](const Tensors& t) {
             std::vector<float> want(size_t(rows) * n);
             cpu::rmsnorm(want.data(), tensor<float>(t, "x").data(), tensor<float>(t, "w").data(), rows, n, 1e-5f);
             return Outputs{{y, want, relative(1e-5, 1.0), {rows, n}}};
           },
           [=](const DeviceTensors& d) {
             cuda::rmsnorm(d.get<float>(y), d.get<float>("x"), d.get<float>("w"), rows, n, 1e-5f);
           }});
    }
}

void swiglu_cases(std::vector<Case>& out) {
  for (int64_t n :
       {int64_t(1), int64_t(7), int64_t(255), int64_t(256), int64_t(257), int64_t(100003), int64_t(1) << 20 | 3})
    out.push_back({"swiglu", cat("n ", n),
                   [=](std::mt19937& rng) {
                     std::vector<float> gate = random_floats(size_t(n), rng, -12.0f, 12.0f);
                     // Saturated ends: exp(-g) overflows to inf (silu -> -0) and underflows to 0 (silu -> g).
                     gate[0] = -100.0f;
                     if (n > 1) gate[size_t(n) - 1] = 100.0f;
                     if (n > 2) gate[1] = 0.0f;
                     return Tensors{{"gate", gate}, {"up", random_floats(size_t(n), rng)}};
                   },
                   [=](const Tensors& t) {
                     std::vector<float> gate = tensor<float>(t, "gate");
                     cpu::swiglu(gate.data(), tensor<float>(t, "up").data(), n);
                     return Outputs{{"gate", gate, relative(1e-5, 1e-25), {}}};
                   },
                   [=](const DeviceTensors& d) { cuda::swiglu(d.get<float>("gate"), d.get<float>("up"), n); }});
}

void add_bias_cases(std::vector<Case>& out) {
  // 70001 rows pass the 65535 limit of gridDim.y; 3000 x 1000 and 1 x 3000001 (the residual add)
  // have more columns than the grid's x extent covers in one sweep.
  for (auto [rows, n] : std::vector<std::pair<int, int>>{
           {1, 1}, {3, 7}, {17, 255}, {2, 257}, {5, 4096}, {70001, 3}, {2, 20000}, {3000, 1000}, {1, 3000001}})
    out.push_back({"add_bias", cat("rows ", rows, ", n ", n),
                   [=](std::mt19937& rng) {
                     return Tensors{{"y", random_floats(size_t(rows) * n, rng)}, {"b", random_floats(size_t(n), rng)}};
                   },
                   [=](const Tensors& t) {
                     std::vector<float> y = tensor<float>(t, "y");
                     cpu::add_bias(y.data(), tensor<float>(t, "b").data(), rows, n);
                     return Outputs{{"y", y, bit_exact(), {rows, n}}};  // one fp32 add
                   },
                   [=](const DeviceTensors& d) { cuda::add_bias(d.get<float>("y"), d.get<float>("b"), rows, n); }});
}

// Floats that exercise every branch of round-to-nearest-even: ties both ways, carries into the
// next binade and into infinity, subnormals, signed zeros, infinities and NaNs with assorted
// payloads; then random bit patterns (every class) and exact ties on random bf16 values.
std::vector<float> bf16_rounding_inputs(std::mt19937& rng) {
  const uint32_t bits[] = {
      0x00000000u, 0x80000000u,                            // +-0
      0x3f800000u, 0xbf800000u,                            // +-1
      0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u,  // ties to even, either side
      0xbf808000u, 0xbf818000u, 0x3fff8000u, 0x3fffffffu,  // negative ties, binade carry
      0x7f7fffffu, 0xff7fffffu, 0x7f7f7fffu, 0x7f7f8000u,  // overflow to inf at the top
      0x00000001u, 0x80000001u, 0x00008000u, 0x00018000u,  // subnormals, subnormal ties
      0x00010000u, 0x007fffffu, 0x00800000u, 0x00ff8000u,  // smallest bf16 subnormal, carry to normal
      0x7f800000u, 0xff800000u,                            // +-inf
      0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,  // NaNs: quiet, signalling, payloads
      0x7fffffffu, 0xffffffffu, 0x7f80ffffu, 0x7fa00000u, 0x7f810000u,
  };
  std::vector<float> out;
  for (uint32_t u : bits) out.push_back(from_bits(u));
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 1'000'003; ++i) out.push_back(from_bits(any_bits(rng)));
  std::uniform_int_distribution<uint32_t> low(0, 0xffffu);
  for (int i = 0; i < 100'000; ++i) {
    const uint32_t b = any_bits(rng) & 0xffff0000u;
    out.push_back(from_bits(b | 0x8000u));
    out.push_back(from_bits(b | low(rng)));
  }
  return out;
}

// Every bf16 bit pattern (NaN payloads and subnormals included), plus a few more for an odd count.
std::vector<bf16> all_bf16() {
  std::vector<bf16> out;
  for (uint32_t b = 0; b <= 0xffffu; ++b) out.push_back(static_cast<bf16>(b));
  for (bf16 b : {bf16(0x7fc1), bf16(0x0001), bf16(0x8000)}) out.push_back(b);
  return out;
}

// The first n of those inputs (all of them for n = 0).
template <class T>
std::vector<T> first(std::vector<T> v, size_t n) {
  if (n > 0) v.resize(n);
  return v;
}

void bf16_conversion_cases(std::vector<Case>& out) {
  for (size_t n : {size_t(1), size_t(7), size_t(257), size_t(0)}) {
    const std::string count = n > 0 ? cat("n ", n) : "all";
    out.push_back(
        {"f32_to_bf16", count,
         [=](std::mt19937& rng) {
           return Tensors{{"x", first(bf16_rounding_inputs(rng), n)}};
         },
         [](const Tensors& t) {
           return Outputs{{"y", to_bf16(tensor<float>(t, "x")), bit_exact(), {}}};
         },
         [](const DeviceTensors& d) { cuda::f32_to_bf16(d.get<bf16>("y"), d.get<float>("x"), int64_t(d.size("x"))); }});
    out.push_back(
        {"bf16_to_f32", count,
         [=](std::mt19937&) {
           return Tensors{{"x", first(all_bf16(), n)}};
         },
         [](const Tensors& t) {
           return Outputs{{"y", to_f32(tensor<bf16>(t, "x")), bit_exact(), {}}};
         },
         [](const DeviceTensors& d) { cuda::bf16_to_f32(d.get<float>("y"), d.get<bf16>("x"), int64_t(d.size("x"))); }});
  }
}

// cuda::matmul against cpu::matmul on the bf16-rounded x and w; x_scratch must hold x rounded to
// bf16. in = 0 must write zeros (empty sums).
Case matmul_case(int rows, int in, int out, size_t misalign) {
  return {"matmul",
          cat("rows ", rows, ", in ", in, ", out ", out, ", misaligned by ", misalign),
          [=](std::mt19937& rng) {
            return Tensors{{"x", random_floats(size_t(rows) * in, rng)},
                           {"w", to_bf16(random_floats(size_t(out) * in, rng))}};
          },
          [=](const Tensors& t) {
            const std::vector<bf16> xb = to_bf16(tensor<float>(t, "x"));
            const std::vector<float> xr = to_f32(xb), wr = to_f32(tensor<bf16>(t, "w"));
            std::vector<float> y(size_t(rows) * out), xa(xr.size()), wa(wr.size());
            cpu::matmul(y.data(), xr.data(), wr.data(), rows, in, out);
            for (size_t i = 0; i < xr.size(); ++i) xa[i] = std::fabs(xr[i]);
            for (size_t i = 0; i < wr.size(); ++i) wa[i] = std::fabs(wr[i]);
            Tolerance tol = absolute(1e-4, 1e-2);
            tol.scale.resize(y.size());  // sum_i |x_i w_i|, the size of the accumulation
            cpu::matmul(tol.scale.data(), xa.data(), wa.data(), rows, in, out);
            return Outputs{{"y", y, tol, {rows, out}}, {"x_scratch", xb, bit_exact(), {rows, in}}};
          },
          [=](const DeviceTensors& d) {
            cuda::matmul(d.get<float>("y"), d.get<float>("x"), d.get<bf16>("w"), rows, in, out,
                         d.get<bf16>("x_scratch"));
          },
          misalign};
}

void matmul_cases(std::vector<Case>& out) {
  for (auto [rows, in, n_out] : std::vector<std::tuple<int, int, int>>{{1, 1, 1},
                                                                       {1, 7, 3},
                                                                       {3, 17, 33},
                                                                       {2, 64, 7},
                                                                       {33, 257, 129},
                                                                       {1, 4096, 4096},
                                                                       {5, 896, 4864},
                                                                       {7, 4096, 11008},
                                                                       {128, 1024, 1024},
                                                                       {2, 896, 151936},
                                                                       {3, 0, 5}})
    out.push_back(matmul_case(rows, in, n_out, 0));
  // Odd element offsets leave w and x_scratch 2-byte and x and y 4-byte aligned; the same shapes
  // aligned afterwards must get their own cached plans, and the first shapes again their old ones.
  for (size_t misalign : {size_t(1), size_t(3), size_t(0), size_t(1)})
    for (auto [rows, in, n_out] : std::vector<std::tuple<int, int, int>>{{3, 64, 40}, {1, 4096, 512}, {6, 333, 77}})
      out.push_back(matmul_case(rows, in, n_out, misalign));
}

void synthetic_fill_cases(std::vector<Case>& out) {
  // 3000001 elements outrun the grid (8192 blocks of 256): the grid-stride loop goes round.
  for (auto [n, key, scale, offset] : std::vector<std::tuple<int64_t, uint64_t, float, float>>{
           {1, 0x1234abcdull, 0.05f, 1.0f}, {70001, 0x1234abcdull, 0.05f, 1.0f}, {3000001, 7, 0.02f, 0.0f}})
    out.push_back({"synthetic_fill", cat("n ", n, ", key ", key), [](std::mt19937&) { return Tensors{}; },
                   [=](const Tensors&) {
                     std::vector<float> f(static_cast<size_t>(n));
                     for (int64_t i = 0; i < n; ++i) f[size_t(i)] = synthetic_value(key, uint64_t(i), scale, offset);
                     return Outputs{{"f32", f, bit_exact(), {}}, {"bf16", to_bf16(f), bit_exact(), {}}};
                   },
                   [=](const DeviceTensors& d) {
                     cuda::synthetic_fill(d.get<float>("f32"), n, key, scale, offset);
                     cuda::synthetic_fill(d.get<bf16>("bf16"), n, key, scale, offset);
                   }});
}

// --- The KV cache: append_kv, attention, slot_attention ----------------------------------------

// One layer of the device KV cache: [n_seqs][n_kv][cap] slots of hd lanes; head s * n_kv + h.
struct CacheShape {
  int n_seqs, n_kv, cap, hd;
  size_t heads() const { return size_t(n_seqs) * n_kv; }
};

// Tensors <prefix>positions and <prefix>lengths of a layer whose head i holds the positions
// slots[i] in slot order. The slots at or above a length hold the stale position 0, visible to
// every query: only the length says they are dead.
void put_slots(Tensors& t, const std::string& prefix, const CacheShape& c,
               const std::vector<std::vector<int32_t>>& slots) {
  std::vector<int32_t> positions(c.heads() * c.cap, 0), lengths(c.heads());
  for (size_t i = 0; i < c.heads(); ++i) {
    lengths[i] = int32_t(slots[i].size());
    std::copy(slots[i].begin(), slots[i].end(), positions.begin() + i * c.cap);
  }
  t[prefix + "positions"] = positions;
  t[prefix + "lengths"] = lengths;
}

// The same plus random bf16 keys "k" (and values "v"), in every slot, stale ones included.
void put_cache(Tensors& t, const CacheShape& c, const std::vector<std::vector<int32_t>>& slots, std::mt19937& rng,
               bool values = true) {
  put_slots(t, "", c, slots);
  t["k"] = to_bf16(random_floats(c.heads() * c.cap * c.hd, rng));
  if (values) t["v"] = to_bf16(random_floats(c.heads() * c.cap * c.hd, rng));
}

// `len` distinct positions from [0, span) (span >= len: the rest were "evicted"), in random slot order.
std::vector<int32_t> random_positions(int len, int span, std::mt19937& rng) {
  std::vector<int32_t> all(span);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(len);
  return all;
}

// append_kv against KvCache::append_slot on a one-layer KvCache (whose storage has the device
// layer's layout) holding the same slots, the new K and V rounded to bf16 as the device stores
// them: keys, values, positions and lengths bit for bit. Heads start with 0 .. 20 slots.
Case append_kv_case(int hd, int n_kv, int n_seqs, int cap, const std::vector<int32_t>& seq) {
  const CacheShape c{n_seqs, n_kv, cap, hd};
  const int n = int(seq.size());
  return {
      "append_kv", cat("head_dim ", hd, ", kv heads ", n_kv, ", sequences ", n_seqs, ", capacity ", cap, ", n ", n),
      [=](std::mt19937& rng) {
        std::vector<std::vector<int32_t>> slots(c.heads());
        for (auto& head : slots) {
          head.resize(size_t(random_int(rng, 0, 20)));
          for (int32_t& p : head) p = random_int(rng, 0, 1000);
        }
        Tensors t;
        put_cache(t, c, slots, rng);
        std::vector<int32_t> pos(n);
        for (int32_t& p : pos) p = random_int(rng, 0, 5000);
        t["seq"] = seq;
        t["pos"] = pos;
        t["k_in"] = random_floats(size_t(n) * n_kv * hd, rng, -3.0f, 3.0f);
        t["v_in"] = random_floats(size_t(n) * n_kv * hd, rng, -3.0f, 3.0f);
        return t;
      },
      [=](const Tensors& t) {
        ModelConfig cfg;
        cfg.n_layers = 1;
        cfg.n_heads = cfg.n_kv_heads = n_kv;
        cfg.head_dim = hd;
        KvCache cache(cfg, n_seqs, cap);
        const KvStorage<float> st = cache.storage();
        const std::vector<float> k = to_f32(tensor<bf16>(t, "k")), v = to_f32(tensor<bf16>(t, "v"));
        std::copy(k.begin(), k.end(), st.keys);
        std::copy(v.begin(), v.end(), st.values);
        const auto& positions = tensor<int32_t>(t, "positions");
        std::copy(positions.begin(), positions.end(), st.positions);
        for (int s = 0; s < n_seqs; ++s)
          for (int h = 0; h < n_kv; ++h) cache.set_length(0, s, h, tensor<int32_t>(t, "lengths")[size_t(s) * n_kv + h]);
        auto rounded = [](float x) { return float_from_bf16(bf16_from_float(x)); };
        for (int i = 0; i < n; ++i)
          for (int h = 0; h < n_kv; ++h) {
            const int slot = cache.append_slot(0, seq[i], h, tensor<int32_t>(t, "pos")[i]);
            const size_t from = (size_t(i) * n_kv + h) * hd;
            for (int e = 0; e < hd; ++e) {
              cache.keys(0, seq[i], h)[size_t(slot) * hd + e] = rounded(tensor<float>(t, "k_in")[from + e]);
              cache.values(0, seq[i], h)[size_t(slot) * hd + e] = rounded(tensor<float>(t, "v_in")[from + e]);
            }
          }
        const size_t slots = cache.geometry().slots();
        const std::vector<int32_t> lengths(st.lengths, st.lengths + cache.geometry().heads());
        return Outputs{
            {"k", to_bf16(std::vector<float>(st.keys, st.keys + slots * hd)), bit_exact(), {n_seqs, n_kv, cap, hd}},
            {"v", to_bf16(std::vector<float>(st.values, st.values + slots * hd)), bit_exact(), {n_seqs, n_kv, cap, hd}},
            {"positions", std::vector<int32_t>(st.positions, st.positions + slots), bit_exact(), {n_seqs, n_kv, cap}},
            {"lengths", lengths, bit_exact(), {n_seqs, n_kv}}};
      },
      [=](const DeviceTensors& d) {
        cuda::append_kv(d.get<bf16>("k"), d.get<bf16>("v"), d.get<int32_t>("positions"), d.get<int32_t>("lengths"),
                        d.get<float>("k_in"), d.get<float>("v_in"), d.get<int32_t>("seq"), d.get<int32_t>("pos"), n,
                        n_kv, hd, cap);
      }};
}

void append_kv_cases(std::vector<Case>& out) {
  // A batch mixing sequences, with runs and with a sequence's tokens apart.
  for (int hd : {64, 128, 40}) out.push_back(append_kv_case(hd, 3, 4, 50, {2, 0, 2, 2, 1, 0, 3, 2, 2, 1}));
  // More tokens than a block's threads: a prefill run of 150, then three sequences interleaved.
  std::vector<int32_t> long_batch;
  for (int i = 0; i < 300; ++i) long_batch.push_back(i < 150 ? 1 : i % 3);
  out.push_back(append_kv_case(128, 8, 3, 400, long_batch));
}

struct Gqa {
  int n_kv, group;
};
const std::vector<Gqa> kGqa{{2, 1}, {3, 4}, {1, 7}, {2, 8}};
const std::vector<Gqa> kWideGqa{{1, 20}, {2, 32}};  // groups above 16: several head chunks per KV head

// cuda::attention over a cache layer for the batch (seq, pos) that `make` generates (tensors k,
// v, positions, lengths, seq, pos), queries uniform in [-q_scale, q_scale]: every (token, query
// head) against cpu::attention_head on the same bf16 keys and values. With `workspace`, the
// split-K path where the kernel takes it (the workspace poisoned too); without, one span.
Case attention_case(const std::string& op, const std::string& params, const CacheShape& c, int group, float q_scale,
                    bool workspace, const std::function<void(Tensors&, std::mt19937&)>& make) {
  const int n_heads = c.n_kv * group, hd = c.hd;
  return {op,
          cat(params, ", head_dim ", hd, ", kv heads ", c.n_kv, ", group ", group, ", q in +-", q_scale,
              workspace ? ", workspace" : ", no workspace"),
          [=](std::mt19937& rng) {
            Tensors t;
            make(t, rng);
            t["q"] = random_floats(tensor<int32_t>(t, "seq").size() * n_heads * hd, rng, -q_scale, q_scale);
            return t;
          },
          [=](const Tensors& t) {
            const std::vector<float> k = to_f32(tensor<bf16>(t, "k")), v = to_f32(tensor<bf16>(t, "v"));
            const auto& q = tensor<float>(t, "q");
            const auto &seq = tensor<int32_t>(t, "seq"), &pos = tensor<int32_t>(t, "pos");
            const auto &positions = tensor<int32_t>(t, "positions"), &lengths = tensor<int32_t>(t, "lengths");
            const int n = int(seq.size());
            std::vector<float> out(q.size()), probs(c.cap);
            for (int i = 0; i < n; ++i)
              for (int h = 0; h < n_heads; ++h) {
                const size_t head = size_t(seq[i]) * c.n_kv + h / group, at = (size_t(i) * n_heads + h) * hd;
                cpu::attention_head(out.data() + at, probs.data(), q.data() + at, k.data() + head * c.cap * hd,
                                    v.data() + head * c.cap * hd, positions.data() + head * c.cap, lengths[head],
                                    pos[i], hd);
              }
            return Outputs{{"out", out, absolute(1e-4, 1e-3), {n, n_heads, hd}}};
          },
          [=](const DeviceTensors& d) {
            const int n = int(d.size("seq"));
            const size_t ws_floats = attention_workspace_floats(n, n_heads, hd, c.cap);
            cuda::DeviceBuffer<float> ws(std::max<size_t>(ws_floats, 1), "workspace");
            ws.fill(0xff);
            cuda::attention(d.get<float>("out"), d.get<float>("q"), d.get<bf16>("k"), d.get<bf16>("v"),
                            d.get<int32_t>("positions"), d.get<int32_t>("lengths"), d.get<int32_t>("seq"),
                            d.get<int32_t>("pos"), n, n_heads, c.n_kv, hd, c.cap,
                            workspace && ws_floats > 0 ? ws.get() : nullptr);
          }};
}

// Decode: one token per sequence, in batch order `order`. KV head h of sequence s holds
// max(1, lens[s] - 3h) slots (per-head eviction) of positions [0, span), span = lens[s] * 5 / 4;
// even sequences' token sits at span - 1 (its own slot in KV head 0, mid-cache), odd ones' at
// 2/3 of the span (the later slots masked).
Case decode_case(int hd, Gqa g, const std::vector<int>& lens, int cap, const std::vector<int32_t>& order, float q_scale,
                 bool workspace) {
  const CacheShape c{int(lens.size()), g.n_kv, cap, hd};
  return attention_case("attention_decode", cat("capacity ", cap, ", sequences ", lens.size()), c, g.group, q_scale,
                        workspace, [=](Tensors& t, std::mt19937& rng) {
                          std::vector<std::vector<int32_t>> slots(c.heads());
                          std::vector<int32_t> qpos(c.n_seqs), pos;
                          for (int s = 0; s < c.n_seqs; ++s) {
                            const int span = lens[s] + lens[s] / 4;
                            for (int h = 0; h < g.n_kv; ++h) {
                              const int len = std::max(1, lens[s] - 3 * h);
                              std::vector<int32_t>& p = slots[size_t(s) * g.n_kv + h];
                              p = random_positions(len, span, rng);
                              if (h == 0 && s % 2 == 0) p[len / 2] = span - 1;
                            }
                            qpos[s] = s % 2 == 0 ? span - 1 : std::max(0, span * 2 / 3);
                          }
                          put_cache(t, c, slots, rng);
                          for (int s : order) pos.push_back(qpos[s]);
                          t["seq"] = order;
                          t["pos"] = pos;
                        });
}

// Prefill: a chunk of m tokens of sequence 1 (positions p0 ..), after `prev` slots (fewer in
// later KV heads) of positions [0, prev * 9/8), all in scrambled slot order; sequences 0 and 2
// hold unrelated slots the kernel must not read.
Case prefill_case(int hd, Gqa g, int prev, int m) {
  const CacheShape c{3, g.n_kv, prev + m + 3, hd};
  return attention_case("attention_prefill", cat(prev, " slots before, chunk of ", m), c, g.group, 2.0f, true,
                        [=](Tensors& t, std::mt19937& rng) {
                          std::vector<std::vector<int32_t>> slots(c.heads());
                          for (int other : {0, 2})
                            for (int h = 0; h < g.n_kv; ++h)
                              slots[size_t(other) * g.n_kv + h] = random_positions(std::min(c.cap, 50), 60, rng);
                          const int prev_span = prev + prev / 8, p0 = prev_span + 2;
                          for (int h = 0; h < g.n_kv; ++h) {
                            const int prev_h = std::max(0, prev - 2 * h);
                            std::vector<int32_t>& p = slots[size_t(g.n_kv) + h];
                            p = random_positions(prev_h, std::max(prev_h, prev_span), rng);
                            for (int i = 0; i < m; ++i) p.push_back(p0 + i);  // the chunk's own slots
                            std::shuffle(p.begin(), p.end(), rng);
                          }
                          put_cache(t, c, slots, rng);
                          std::vector<int32_t> pos(m);
                          std::iota(pos.begin(), pos.end(), p0);
                          t["seq"] = std::vector<int32_t>(m, 1);
                          t["pos"] = pos;
                        });
}

// Prefill chunks of two sequences, decode tokens of others, a sequence's tokens split across the
// batch, and a KV head whose every slot lies after the query (no visible slot: zeros).
Case mixed_case(int hd, Gqa g, bool workspace) {
  const CacheShape c{5, g.n_kv, 700, hd};
  return attention_case(
      "attention_mixed", "5 sequences", c, g.group, 2.0f, workspace, [=](Tensors& t, std::mt19937& rng) {
        std::vector<std::vector<int32_t>> slots(c.heads());
        for (int s = 0; s < c.n_seqs; ++s)
          for (int h = 0; h < g.n_kv; ++h) {
            std::vector<int32_t>& p = slots[size_t(s) * g.n_kv + h];
            p.resize(size_t(100 * (s + 1) + 17 * h));
            std::iota(p.begin(), p.end(), s == 4 && h == 1 ? 10000 : 0);  // (4, 1): invisible from every query
            std::shuffle(p.begin(), p.end(), rng);
          }
        put_cache(t, c, slots, rng);
        const std::vector<int32_t> seq{0, 0, 0, 2, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 0, 2};
        std::vector<int32_t> pos(seq.size());
        for (size_t i = 0; i < seq.size(); ++i) pos[i] = int32_t(50 + 7 * i);
        t["seq"] = seq;
        t["pos"] = pos;
      });
}

void attention_cases(std::vector<Case>& out) {
  const std::vector<int> lens{1, 7, 129, 1000, 8193};
  const std::vector<int32_t> order{3, 0, 4, 1, 2};  // batch order differs from sequence order
  const std::vector<std::pair<int, int>> chunks{{0, 1}, {0, 37}, {7, 5}, {1000, 33}, {8100, 93}, {129, 100}};
  for (int hd : {64, 128})
    for (const Gqa g : kGqa) {
      for (bool ws : {true, false})
        for (float q_scale : {1.0f, 4.0f}) out.push_back(decode_case(hd, g, lens, 8200, order, q_scale, ws));
      for (auto [prev, m] : chunks) out.push_back(prefill_case(hd, g, prev, m));
    }
  for (int hd : {64, 128})
    for (bool ws : {true, false}) out.push_back(mixed_case(hd, {2, 4}, ws));

  // The other head dims the kernel supports.
  for (int hd : {8, 16, 32, 48, 80, 96}) {
    for (const Gqa g : kGqa) {
      for (bool ws : {true, false}) out.push_back(decode_case(hd, g, lens, 8200, order, 4.0f, ws));
      for (auto [prev, m] : {std::pair{0, 37}, std::pair{129, 100}}) out.push_back(prefill_case(hd, g, prev, m));
    }
    for (bool ws : {true, false}) out.push_back(mixed_case(hd, {2, 4}, ws));
  }
  // GQA groups above 16.
  for (int hd : {64, 128})
    for (const Gqa g : kWideGqa) {
      for (bool ws : {true, false}) {
        out.push_back(decode_case(hd, g, lens, 8200, order, 4.0f, ws));
        out.push_back(mixed_case(hd, g, ws));
      }
      for (auto [prev, m] : {std::pair{0, 37}, std::pair{1000, 33}, std::pair{129, 100}})
        out.push_back(prefill_case(hd, g, prev, m));
    }
  // Long decode caches, split across many blocks (kernels/attention_workspace.hpp): 5000 slots,
  // and 12289 (one more than 48 spans of 256) beside shorter sequences.
  for (int hd : {64, 80, 128})
    for (const Gqa g : {Gqa{2, 8}, Gqa{1, 32}})
      for (bool ws : {true, false}) {
        out.push_back(decode_case(hd, g, {5000}, 5000, {0}, 4.0f, ws));
        out.push_back(decode_case(hd, g, {12289, 700, 12000}, 12289, {2, 0, 1}, 4.0f, ws));
      }
}

// slot_attention's two reductions against the weights cpu::attention_head computes: per-slot
// sums over tokens and query heads, added to the scores already there (H2O), and per sequence
// the weight on the positions a second cache holds (retained mass; the bitmap built by
// mark_held_positions, from a poisoned buffer, must be exact). Each sequence has a decode token
// and an earlier, prefill-like one.
Case slot_attention_case(int hd, Gqa g) {
  const std::vector<int> lens{1, 129, 650};
  const CacheShape c{int(lens.size()), g.n_kv, 700, hd};
  const int n_heads = g.n_kv * g.group, words = (c.cap + 31) / 32;
  return {"slot_attention", cat("head_dim ", hd, ", kv heads ", g.n_kv, ", group ", g.group),
          [=](std::mt19937& rng) {
            std::vector<std::vector<int32_t>> slots(c.heads()), held(c.heads());
            std::vector<int32_t> seq, pos;
            for (int s = 0; s < c.n_seqs; ++s) {
              for (int h = 0; h < g.n_kv; ++h) {
                const size_t head = size_t(s) * g.n_kv + h;
                slots[head] = random_positions(lens[s], lens[s] + 3, rng);
                held[head].assign(slots[head].begin(), slots[head].begin() + (lens[s] + 1) / 2);
              }
              seq.insert(seq.end(), {s, s});
              pos.insert(pos.end(), {lens[s] + 2, lens[s] / 2});
            }
            Tensors t;
            put_cache(t, c, slots, rng, false);
            put_slots(t, "held_", c, held);
            t["seq"] = seq;
            t["pos"] = pos;
            t["q"] = random_floats(seq.size() * n_heads * hd, rng, -1.0f, 1.0f);
            t["scores"] = random_floats(c.heads() * c.cap, rng, 0.0f, 1.0f);
            t["mass"] = random_floats(size_t(c.n_seqs), rng, 0.0f, 1.0f);
            return t;
          },
          [=](const Tensors& t) {
            const std::vector<float> k = to_f32(tensor<bf16>(t, "k"));
            const auto& q = tensor<float>(t, "q");
            const auto &seq = tensor<int32_t>(t, "seq"), &pos = tensor<int32_t>(t, "pos");
            const auto &positions = tensor<int32_t>(t, "positions"), &lengths = tensor<int32_t>(t, "lengths");
            const auto& held_positions = tensor<int32_t>(t, "held_positions");
            const auto& held_lengths = tensor<int32_t>(t, "held_lengths");
            std::vector<uint32_t> held(c.heads() * words, 0);
            for (size_t head = 0; head < c.heads(); ++head)
              for (int j = 0; j < held_lengths[head]; ++j) {
                const int p = held_positions[head * c.cap + j];
                held[head * words + p / 32] |= 1u << (p % 32);
              }
            const std::vector<float>& scores0 = tensor<float>(t, "scores");
            const std::vector<float>& mass0 = tensor<float>(t, "mass");
            std::vector<double> scores(scores0.begin(), scores0.end()), mass(mass0.begin(), mass0.end());
            std::vector<float> out(hd), probs(c.cap);
            for (size_t i = 0; i < seq.size(); ++i)
              for (int h = 0; h < n_heads; ++h) {
                const size_t head = size_t(seq[i]) * g.n_kv + h / g.group;
                const int len = lengths[head];
                // Only the weights are compared: the keys stand in for the values.
                cpu::attention_head(out.data(), probs.data(), q.data() + (i * n_heads + h) * hd,
                                    k.data() + head * c.cap * hd, k.data() + head * c.cap * hd,
                                    positions.data() + head * c.cap, len, pos[i], hd);
                for (int j = 0; j < len; ++j) {
                  const int p = positions[head * c.cap + j];
                  if (p > pos[i]) continue;
                  scores[head * c.cap + j] += probs[j];
                  if (held[head * words + p / 32] >> (p % 32) & 1u) mass[size_t(seq[i])] += probs[j];
                }
              }
            return Outputs{{"scores",
                            std::vector<float>(scores.begin(), scores.end()),
                            absolute(1e-4, 1e-3),
                            {c.n_seqs, g.n_kv, c.cap}},
                           {"mass", std::vector<float>(mass.begin(), mass.end()), absolute(1e-4, 1e-3), {}},
                           {"held", held, bit_exact(), {c.n_seqs, g.n_kv, words}}};
          },
          [=](const DeviceTensors& d) {
            cuda::mark_held_positions(d.get<uint32_t>("held"), d.get<int32_t>("held_positions"),
                                      d.get<int32_t>("held_lengths"), int(c.heads()), c.cap, words);
            cuda::slot_attention(d.get<float>("q"), d.get<bf16>("k"), d.get<int32_t>("positions"),
                                 d.get<int32_t>("lengths"), d.get<int32_t>("seq"), d.get<int32_t>("pos"),
                                 int(d.size("seq")), n_heads, g.n_kv, hd, c.cap, d.get<float>("scores"),
                                 d.get<uint32_t>("held"), words, d.get<float>("mass"));
          }};
}

void slot_attention_cases(std::vector<Case>& out) {
  for (int hd : {64, 128})
    for (const Gqa g : kGqa) out.push_back(slot_attention_case(hd, g));
  for (int hd : {16, 80, 256})  // up to 256
    for (const Gqa g : kWideGqa) out.push_back(slot_attention_case(hd, g));
}

// store_window_queries against what the CPU forward records (test::record_window_query into a
// KvCache with a query window): the CPU records every token in batch order, later ones
// overwriting earlier ones in ring slot pos % window; the device stores only the last `window`
// tokens of each sequence in the batch (`which`). The rings, random beforehand, must agree bit
// for bit, the other layers untouched. Runs: (sequence, first position, tokens), consecutive.
struct Run {
  int seq, first_pos, count;
};
Case window_queries_case(int n_heads, int group, int hd, int window, int n_layers, int layer, int n_seqs,
                         const std::vector<Run>& runs) {
  ModelConfig cfg;
  cfg.n_layers = n_layers;
  cfg.n_heads = n_heads;
  cfg.n_kv_heads = n_heads / group;
  cfg.head_dim = hd;
  const KvCacheExtras extras{.window = window};
  return {"store_window_queries",
          cat("heads ", n_heads, ", group ", group, ", head_dim ", hd, ", window ", window, ", layer ", layer, " of ",
              n_layers, ", runs ", runs.size()),
          [=](std::mt19937& rng) {
            std::vector<int32_t> seq, pos, which;
            for (const Run& r : runs)
              for (int i = 0; i < r.count; ++i) {
                seq.push_back(r.seq);
                pos.push_back(r.first_pos + i);
                if (i >= r.count - window) which.push_back(int32_t(seq.size()) - 1);
              }
            const size_t ring_floats = KvCache(cfg, n_seqs, 1, extras).geometry().window_floats();
            return Tensors{{"ring", random_floats(ring_floats, rng)},
                           {"q", random_floats(seq.size() * n_heads * hd, rng)},
                           {"which", which},
                           {"seq", seq},
                           {"pos", pos}};
          },
          [=](const Tensors& t) {
            KvCache cache(cfg, n_seqs, 1, extras);
            float* ring = cache.storage().window_queries;
            const auto& ring0 = tensor<float>(t, "ring");
            std::copy(ring0.begin(), ring0.end(), ring);
            const auto &seq = tensor<int32_t>(t, "seq"), &pos = tensor<int32_t>(t, "pos");
            for (size_t i = 0; i < seq.size(); ++i)
              test::record_window_query(cache, layer, seq[i], pos[i], tensor<float>(t, "q").data() + i * n_heads * hd);
            return Outputs{{"ring",
                            std::vector<float>(ring, ring + ring0.size()),
                            bit_exact(),
                            {n_seqs, n_layers, n_heads / group, window, group, hd}}};
          },
          [=](const DeviceTensors& d) {
            cuda::store_window_queries(d.get<float>("ring"), d.get<float>("q"), d.get<int32_t>("which"),
                                       int(d.size("which")), d.get<int32_t>("seq"), d.get<int32_t>("pos"), n_heads,
                                       group, hd, window, layer, n_layers);
          }};
}

void window_queries_cases(std::vector<Case>& out) {
  // Nine tokens of sequence 1 (positions 0 .. 8), then one of sequence 0 (position 5).
  out.push_back(window_queries_case(4, 2, 3, 4, 2, 1, 2, {{1, 0, 9}, {0, 5, 1}}));
  out.push_back(window_queries_case(28, 7, 128, 32, 3, 2, 4, {{2, 100, 50}, {0, 7, 1}, {1, 31, 32}, {3, 0, 5}}));
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (auto add :
       {embedding_cases, rope_cases, rmsnorm_cases, swiglu_cases, add_bias_cases, bf16_conversion_cases, matmul_cases,
        synthetic_fill_cases, append_kv_cases, attention_cases, slot_attention_cases, window_queries_cases})
    add(cases);
  return cases;
}

// The table's ops, each once, in table order.
std::vector<std::string> table_ops() {
  std::vector<std::string> ops;
  for (const Case& c : all_cases())
    if (std::find(ops.begin(), ops.end(), c.op) == ops.end()) ops.push_back(c.op);
  return ops;
}

// One test per op runs its rows in table order, in one process (so matmul's rows also check
// that a cuBLASLt plan cached for one shape and alignment serves no other): Cuda/BackendOps.*.
class BackendOps : public test::GpuTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(BackendOps, MatchesCpu) {
  for (const Case& c : all_cases())
    if (c.op == GetParam()) run_case(c);
}

INSTANTIATE_TEST_SUITE_P(Cuda, BackendOps, ::testing::ValuesIn(table_ops()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// --- What does not fit a row -------------------------------------------------------------------

class CudaBackendOps : public test::GpuTest {};

TEST_F(CudaBackendOps, EmptyInputsLaunchNothing) {
  cuda::rmsnorm(nullptr, nullptr, nullptr, 0, 64, 1e-5f);
  cuda::rmsnorm(nullptr, nullptr, nullptr, 4, 0, 1e-5f);
  cuda::embedding(nullptr, nullptr, nullptr, 0, 64);
  cuda::embedding(nullptr, nullptr, nullptr, 4, 0);
  cuda::rope(nullptr, nullptr, 0, 8, 128, nullptr, 1.0f, false);
  cuda::rope(nullptr, nullptr, 3, 0, 128, nullptr, 1.0f, true);
  cuda::swiglu(nullptr, nullptr, 0);
  cuda::add_bias(nullptr, nullptr, 0, 16);
  cuda::add_bias(nullptr, nullptr, 16, 0);
  cuda::f32_to_bf16(nullptr, nullptr, 0);
  cuda::bf16_to_f32(nullptr, nullptr, 0);
  cuda::matmul(nullptr, nullptr, nullptr, 0, 64, 64, nullptr);
  cuda::matmul(nullptr, nullptr, nullptr, 4, 64, 0, nullptr);
  cuda::logits_stats(nullptr, nullptr, nullptr, nullptr, 0, 32000);
  cuda::logits_stats(nullptr, nullptr, nullptr, nullptr, 4, 0);
  cuda::append_kv(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 2, 64, 16);
  cuda::attention(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 8, 2, 64, 16, nullptr);
  cuda::slot_attention(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 8, 2, 64, 16, nullptr, nullptr, 1,
                       nullptr);
  cuda::mark_held_positions(nullptr, nullptr, nullptr, 0, 16, 1);
  cuda::store_window_queries(nullptr, nullptr, nullptr, 0, nullptr, nullptr, 8, 4, 64, 4, 0, 1);
  cuda::synthetic_fill(static_cast<float*>(nullptr), 0, 1, 1.0f, 0.0f);
  cuda::synthetic_fill(static_cast<bf16*>(nullptr), 0, 1, 1.0f, 0.0f);
  EXPECT_NO_THROW(cuda::synchronize("empty inputs"));
}

// logits_stats against compare_logits (engine/fidelity.hpp): argmaxes exactly, log-probabilities
// to 1e-5 relative (1e-5 absolute below 1), KL to 1e-9 + 1e-5 relative (both sides are double up
// to the fp32 result: only the final rounding and the order of the sums differ).
void expect_stats(const cuda::LogitStats& got, const StepFidelity& want, const std::string& where) {
  EXPECT_EQ(got.method_argmax, want.method_argmax) << where;
  EXPECT_EQ(got.full_argmax, want.full_argmax) << where;
  EXPECT_NEAR(got.method_logprob, want.method_logprob, 1e-5 * std::max(1.0, std::fabs(want.method_logprob))) << where;
  EXPECT_NEAR(got.full_logprob, want.full_logprob, 1e-5 * std::max(1.0, std::fabs(want.full_logprob))) << where;
  EXPECT_NEAR(got.kl, want.kl, 1e-9 + 1e-5 * want.kl) << where;
}

TEST_F(CudaBackendOps, LogitsStatsMatchCompareLogits) {
  std::mt19937 rng(88);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (int vocab : {1, 7, 32000, 151936}) {
    // Rows: 0 method far from full, 1 method identical to full (KL exactly 0), 2 method close to full,
    // 3 ties for the maximum in both rows (the lowest id wins), 4 target at the argmax.
    const int rows = 5;
    std::vector<float> full = random_floats(size_t(rows) * vocab, rng, -8.0f, 8.0f);
    std::vector<float> method(full.size());
    std::vector<int32_t> targets(rows);
    for (int r = 0; r < rows; ++r) {
      float* f = full.data() + size_t(r) * vocab;
      float* m = method.data() + size_t(r) * vocab;
      const float spread = r == 0 ? 2.0f : r == 2 ? 0.01f : r == 1 ? 0.0f : 0.5f;
      for (int i = 0; i < vocab; ++i) m[i] = f[i] + spread * noise(rng);
      targets[r] = random_int(rng, 0, vocab - 1);
      if (r == 3) {
        const float top_f = *std::max_element(f, f + vocab) + 1.0f, top_m = *std::max_element(m, m + vocab) + 1.0f;
        for (int i : {vocab - 1, vocab / 2, (vocab * 2) / 3}) {  // the lowest of these must win
          f[i] = top_f;
          m[i] = top_m;
        }
      }
      if (r == 4) targets[r] = int32_t(std::max_element(m, m + vocab) - m);
    }

    cuda::DeviceBuffer<float> dfull(full, "full"), dmethod(method, "method");
    cuda::DeviceBuffer<int32_t> dtargets(targets, "targets");
    cuda::DeviceBuffer<cuda::LogitStats> dout(rows, "stats");
    for (bool with_full : {true, false}) {
      dout.fill(0xff);
      cuda::logits_stats(dout.get(), dmethod.get(), with_full ? dfull.get() : nullptr, dtargets.get(), rows, vocab);
      cuda::synchronize("logits_stats test");
      const std::vector<cuda::LogitStats> got = dout.download();
      for (int r = 0; r < rows; ++r) {
        const float* m = method.data() + size_t(r) * vocab;
        const float* f = with_full ? full.data() + size_t(r) * vocab : m;
        const std::string where = cat("vocab ", vocab, ", row ", r, with_full ? "" : ", no reference");
        expect_stats(got[r], compare_logits(f, m, vocab, targets[r]), where);
        if (!with_full || r == 1) {
          EXPECT_EQ(got[r].kl, 0.0f) << where;
        }
        if (!with_full) {
          EXPECT_EQ(got[r].full_logprob, got[r].method_logprob) << where;
          EXPECT_EQ(got[r].full_argmax, got[r].method_argmax) << where;
        }
        if (r == 3 && vocab > 1) {
          EXPECT_EQ(got[r].method_argmax, std::min({vocab - 1, vocab / 2, (vocab * 2) / 3})) << where;
        }
      }
    }
  }
}

TEST_F(CudaBackendOps, LogitsStatsTiesGoToTheLowerId) {
  // Small hand-made rows: all equal, ties at the ends, a tie straddling two threads' strides.
  const int vocab = 1100;
  std::vector<float> method(3 * vocab, 0.0f), full(3 * vocab, -1.0f);
  method[vocab + 1099] = 5.0f;
  method[vocab + 600] = 5.0f;
  method[vocab + 1] = 5.0f;  // row 1: ids 1, 600, 1099 tie -> 1
  method[2 * vocab + 1099] = 2.0f;
  method[2 * vocab + 513] = 2.0f;  // row 2: 513 (a thread's second element) beats 1099
  full[vocab + 7] = 3.0f;
  full[vocab + 520] = 3.0f;
  const std::vector<int32_t> targets = {0, 600, 1099};
  cuda::DeviceBuffer<float> dmethod(method, "method"), dfull(full, "full");
  cuda::DeviceBuffer<int32_t> dtargets(targets, "targets");
  cuda::DeviceBuffer<cuda::LogitStats> dout(3, "stats");
  dout.fill(0xff);
  cuda::logits_stats(dout.get(), dmethod.get(), dfull.get(), dtargets.get(), 3, vocab);
  cuda::synchronize("logits_stats ties");
  const std::vector<cuda::LogitStats> got = dout.download();
  EXPECT_EQ(got[0].method_argmax, 0);
  EXPECT_EQ(got[0].full_argmax, 0);
  EXPECT_NEAR(got[0].method_logprob, -std::log(double(vocab)), 1e-5);
  EXPECT_EQ(got[1].method_argmax, 1);
  EXPECT_EQ(got[1].full_argmax, 7);
  EXPECT_EQ(got[2].method_argmax, 513);
  EXPECT_EQ(got[2].full_argmax, 0);
  for (int r = 0; r < 3; ++r)
    expect_stats(got[r],
                 compare_logits(full.data() + size_t(r) * vocab, method.data() + size_t(r) * vocab, vocab, targets[r]),
                 cat("row ", r));
}

template <class T>
std::vector<T> download_slice(const cuda::DeviceBuffer<T>& b, size_t offset, size_t count) {
  std::vector<T> host(count);
  cuda::copy_to_host_bytes(host.data(), b.get() + offset, count * sizeof(T));
  return host;
}

// Counts past 2^31 elements: every op indexes in 64 bits. Inputs are set with memset byte patterns
// (no 8 GB uploads) and only slices at the start, around 2^31 and at the end are checked.
TEST_F(CudaBackendOps, CountsPast2To31UseWideIndices) {
  constexpr size_t kN = (size_t(1) << 31) + (size_t(1) << 20);  // floats in the big buffers
  const uint64_t gpu_memory = query_gpus().gpus.front().memory_bytes;
  if (gpu_memory < (uint64_t(32) << 30)) GTEST_SKIP() << "needs 32 GiB of GPU memory, this GPU has " << gpu_memory;
  const size_t kTwo31 = size_t(1) << 31;
  const float pattern_a = from_bits(0x3f3f3f3fu);  // memset 0x3f: 0.747...
  const float pattern_b = from_bits(0x40404040u);  // memset 0x40: 3.004...
  cuda::DeviceBuffer<float> big(kN, "big");
  cuda::DeviceBuffer<float> up(kN, "up");
  cuda::DeviceBuffer<bf16> half(kN, "half");
  const size_t slices[] = {0, kTwo31 - 4096, kTwo31, kN - 4096};

  // f32_to_bf16, then bf16_to_f32 back.
  big.fill(0x3f);
  half.fill(0xff);
  cuda::f32_to_bf16(half.get(), big.get(), int64_t(kN));
  cuda::synchronize("f32_to_bf16 large");
  for (size_t at : slices)
    for (bf16 b : download_slice(half, at, 4096)) ASSERT_EQ(b, bf16_from_float(pattern_a)) << "slice at " << at;
  big.fill(0xff);
  cuda::bf16_to_f32(big.get(), half.get(), int64_t(kN));
  cuda::synchronize("bf16_to_f32 large");
  for (size_t at : slices)
    for (float v : download_slice(big, at, 4096))
      ASSERT_EQ(bits_of(v), bits_of(float_from_bf16(bf16_from_float(pattern_a)))) << "slice at " << at;

  // swiglu over all of it.
  big.fill(0x3f);
  up.fill(0x40);
  float swiglu_want = pattern_a;
  cpu::swiglu(&swiglu_want, &pattern_b, 1);
  cuda::swiglu(big.get(), up.get(), int64_t(kN));
  cuda::synchronize("swiglu large");
  for (size_t at : slices)
    for (float v : download_slice(big, at, 4096)) ASSERT_NEAR(v, swiglu_want, 1e-5f * swiglu_want) << "slice at " << at;

  // add_bias and embedding as rows of 4096.
  const int dim = 4096;
  const int rows = static_cast<int>(kN / dim);
  big.fill(0x3f);
  up.fill(0x40);  // the bias: its first row
  cuda::add_bias(big.get(), up.get(), rows, dim);
  cuda::synchronize("add_bias large");
  for (size_t at : slices)
    for (float v : download_slice(big, at, 4096)) ASSERT_EQ(v, pattern_a + pattern_b) << "slice at " << at;

  std::mt19937 rng(99);
  const std::vector<bf16> table = to_bf16(random_floats(dim, rng));
  cuda::DeviceBuffer<bf16> dtable(table, "table");
  cuda::DeviceBuffer<int32_t> tokens(size_t(rows), "tokens");
  tokens.fill(0);
  big.fill(0xff);
  cuda::embedding(big.get(), dtable.get(), tokens.get(), rows, dim);
  cuda::synchronize("embedding large");
  for (size_t at : slices) {
    const std::vector<float> got = download_slice(big, at, 4096);
    for (size_t j = 0; j < got.size(); ++j)
      ASSERT_EQ(bits_of(got[j]), uint32_t(table[(at + j) % dim]) << 16) << "slice at " << at << ", j " << j;
  }

  // rope: 32 heads of 128 per token; every position 0x01010101 (memset 0x01).
  const RopeTable rope_table(rope_config(128, RopePairing::Half, RopeScalingType::None));
  cuda::DeviceBuffer<double> dinv(rope_table.inv_freq(), "inv_freq");
  cuda::DeviceBuffer<int32_t> pos(size_t(rows), "pos");
  pos.fill(0x01);
  big.fill(0x3f);
  cuda::rope(big.get(), pos.get(), rows, 32, 128, dinv.get(), 1.0f, false);
  cuda::synchronize("rope large");
  std::vector<float> rope_want(4096, pattern_a);
  rope_table.apply(rope_want.data(), 32, 0x01010101);
  for (size_t at : slices) {  // every slice starts on a token boundary
    const std::vector<float> got = download_slice(big, at, 4096);
    for (size_t j = 0; j < got.size(); ++j)
      ASSERT_NEAR(got[j], rope_want[j], 1e-5f) << "slice at " << at << ", j " << j;
  }

  // logits_stats over rows of 151936: equal logits everywhere -> argmax 0, log p = -log(vocab).
  const int vocab = 151936;
  const int lrows = static_cast<int>(kN / vocab);
  ASSERT_GT(size_t(lrows) * vocab, kTwo31);
  big.fill(0x3f);
  cuda::DeviceBuffer<int32_t> targets(size_t(lrows), "targets");
  targets.fill(0);
  cuda::DeviceBuffer<cuda::LogitStats> stats(size_t(lrows), "stats");
  stats.fill(0xff);
  cuda::logits_stats(stats.get(), big.get(), nullptr, targets.get(), lrows, vocab);
  cuda::synchronize("logits_stats large");
  for (const cuda::LogitStats& s : download_slice(stats, size_t(lrows) - 64, 64)) {
    EXPECT_EQ(s.method_argmax, 0);
    EXPECT_NEAR(s.method_logprob, -std::log(double(vocab)), 1e-5);
    EXPECT_EQ(s.kl, 0.0f);
  }
}

TEST(CudaBackendOpsArgs, UnsupportedAttentionHeadDimFailsClearly) {
  // Checked before any device call, so this runs without a GPU too.
  try {
    cuda::attention(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 2, 40, 16, nullptr);
    FAIL() << "no exception";
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim 40 unsupported"), std::string::npos) << e.what();
  }
}

#else

TEST(CudaBackendOps, BuiltWithoutCuda) {
  GTEST_SKIP() << "this build has no CUDA backend (nvcc not found at configure time)";
}

#endif

}  // namespace
}  // namespace kvb

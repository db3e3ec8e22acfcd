// The CUDA elementwise ops, rope, the bf16 conversions, the cuBLASLt matmul and logits_stats against
// their CPU references (kernels/ops.hpp, RopeTable::apply, kvb::bf16_from_float, compare_logits) on
// random inputs of awkward sizes; outputs poisoned first so an unwritten element fails. Skips where
// no GPU answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "engine/fidelity.hpp"
#include "engine/model_config.hpp"
#include "engine/rope.hpp"
#include "kernels/bf16.hpp"
#include "kernels/gpu_info.hpp"
#include "test_support.hpp"
#include "kernels/ops.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#endif

namespace kvb {
namespace {

#ifdef KVBENCH_HAVE_CUDA

class CudaElementwise : public ::kvb::test::GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    gpu_memory_ = query_gpus().gpus.front().memory_bytes;
  }
  uint64_t gpu_memory_ = 0;
};

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

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

template <class T>
std::vector<T> download_slice(const cuda::DeviceBuffer<T>& b, size_t offset, size_t count) {
  std::vector<T> host(count);
  cuda::copy_to_host_bytes(host.data(), b.get() + offset, count * sizeof(T));
  return host;
}

// --- embedding ---------------------------------------------------------------------------------

TEST_F(CudaElementwise, EmbeddingGathersBf16RowsExactly) {
  std::mt19937 rng(11);
  for (auto [vocab, n, dim] : std::vector<std::tuple<int, int, int>>{
           {1, 1, 1}, {5, 3, 7}, {1000, 1, 64}, {1000, 33, 257}, {2000, 17, 4096}, {3, 5, 5121}, {7, 2, 20000}, {50, 3000, 1000}}) {
    const std::vector<bf16> table = to_bf16(random_vector(size_t(vocab) * dim, rng));
    std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
    std::vector<int32_t> tokens(n);
    for (int32_t& t : tokens) t = pick(rng);
    tokens[0] = vocab - 1;  // the last row of the table
    if (n > 1) tokens[n - 1] = 0;

    cuda::DeviceBuffer<bf16> dtable(table, "table");
    cuda::DeviceBuffer<int32_t> dtokens(tokens, "tokens");
    cuda::DeviceBuffer<float> dx(size_t(n) * dim, "x");
    dx.fill(0xff);
    cuda::embedding(dx.get(), dtable.get(), dtokens.get(), n, dim);
    cuda::synchronize("embedding test");
    const std::vector<float> got = dx.download();
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < dim; ++j) {
        const bf16 want = table[size_t(tokens[i]) * dim + j];
        ASSERT_EQ(bits_of(got[size_t(i) * dim + j]), uint32_t(want) << 16)
            << "token " << i << " (id " << tokens[i] << "), feature " << j << " (n " << n << ", dim " << dim << ")";
      }
  }
}

// --- rope --------------------------------------------------------------------------------------

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

TEST_F(CudaElementwise, RopeMatchesRopeTable) {
  std::mt19937 rng(22);
  std::uniform_int_distribution<int32_t> pick_pos(0, 40000);
  for (int head_dim : {64, 128})
    for (RopePairing pairing : {RopePairing::Half, RopePairing::Interleaved})
      for (RopeScalingType type :
           {RopeScalingType::None, RopeScalingType::Linear, RopeScalingType::Llama3, RopeScalingType::Yarn})
        for (auto [n, n_heads] : std::vector<std::pair<int, int>>{{1, 1}, {5, 3}, {37, 8}, {3, 40}, {300, 2}}) {
          const ModelConfig config = rope_config(head_dim, pairing, type);
          const RopeTable table(config);
          if (type == RopeScalingType::Yarn) ASSERT_GT(table.attention_scale(), 1.0);  // the scale is exercised
          const size_t per_token = size_t(n_heads) * head_dim;
          const std::vector<float> x = random_vector(size_t(n) * per_token, rng);
          std::vector<int32_t> pos(n);
          for (int32_t& p : pos) p = pick_pos(rng);
          pos[0] = 40000;
          if (n > 1) pos[1] = 0;
          if (n > 2) pos[2] = 1;

          std::vector<float> expected = x;
          for (int i = 0; i < n; ++i) table.apply(expected.data() + size_t(i) * per_token, n_heads, pos[i]);

          cuda::DeviceBuffer<float> dx(x, "x");
          cuda::DeviceBuffer<int32_t> dpos(pos, "pos");
          cuda::DeviceBuffer<double> dinv(table.inv_freq(), "inv_freq");
          cuda::rope(dx.get(), dpos.get(), n, n_heads, head_dim, dinv.get(), static_cast<float>(table.attention_scale()),
                     pairing == RopePairing::Interleaved);
          cuda::synchronize("rope test");
          const std::vector<float> got = dx.download();
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_NEAR(got[i], expected[i], 1e-5f * std::max(1.0f, std::fabs(expected[i])))
                << "at " << i << " (token " << i / per_token << ", pos " << pos[i / per_token] << "; head_dim "
                << head_dim << ", " << to_string(pairing) << ", " << to_string(type) << ", n " << n << ", heads "
                << n_heads << ")";
        }
}

// --- swiglu and add_bias -----------------------------------------------------------------------

TEST_F(CudaElementwise, SwigluMatchesCpu) {
  std::mt19937 rng(33);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(255), int64_t(256), int64_t(257), int64_t(100003),
                    int64_t(1) << 20 | 3}) {
    std::vector<float> gate = random_vector(size_t(n), rng, -12.0f, 12.0f);
    const std::vector<float> up = random_vector(size_t(n), rng);
    // Saturated ends: exp(-g) overflows to inf (silu -> -0) and underflows to 0 (silu -> g).
    gate[0] = -100.0f;
    if (n > 1) gate[size_t(n) - 1] = 100.0f;
    if (n > 2) gate[1] = 0.0f;
    std::vector<float> expected = gate;
    cpu::swiglu(expected.data(), up.data(), n);

    cuda::DeviceBuffer<float> dgate(gate, "gate"), dup(up, "up");
    cuda::swiglu(dgate.get(), dup.get(), n);
    cuda::synchronize("swiglu test");
    const std::vector<float> got = dgate.download();
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "NaN at " << i << " (n " << n << ")";
      ASSERT_NEAR(got[i], expected[i], 1e-5f * std::fabs(expected[i]) + 1e-30f)
          << "at " << i << ", gate " << gate[i] << ", up " << up[i] << " (n " << n << ")";
    }
  }
}

TEST_F(CudaElementwise, AddBiasMatchesCpuExactly) {
  std::mt19937 rng(44);
  // 70001 rows pass the 65535 limit of gridDim.y; 3000 x 1000 and 1 x 3000001 (the residual add)
  // have more columns than the grid's x extent covers in one sweep.
  for (auto [rows, n] : std::vector<std::pair<int, int>>{
           {1, 1}, {3, 7}, {17, 255}, {2, 257}, {5, 4096}, {70001, 3}, {2, 20000}, {3000, 1000}, {1, 3000001}}) {
    const std::vector<float> y = random_vector(size_t(rows) * n, rng);
    const std::vector<float> b = random_vector(size_t(n), rng);
    std::vector<float> expected = y;
    cpu::add_bias(expected.data(), b.data(), rows, n);

    cuda::DeviceBuffer<float> dy(y, "y"), db(b, "b");
    cuda::add_bias(dy.get(), db.get(), rows, n);
    cuda::synchronize("add_bias test");
    const std::vector<float> got = dy.download();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(got[i], expected[i]) << "at " << i << " (rows " << rows << ", n " << n << ")";  // one fp32 add
  }
}

// --- bf16 conversions --------------------------------------------------------------------------

// Values that exercise every branch of round-to-nearest-even: ties both ways, carries into the next
// binade and into infinity, subnormals, signed zeros, infinities and NaNs with assorted payloads.
std::vector<float> special_floats() {
  const uint32_t bits[] = {
      0x00000000u, 0x80000000u,                                      // +-0
      0x3f800000u, 0xbf800000u,                                      // +-1
      0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u,            // ties to even, either side
      0xbf808000u, 0xbf818000u, 0x3fff8000u, 0x3fffffffu,            // negative ties, binade carry
      0x7f7fffffu, 0xff7fffffu, 0x7f7f7fffu, 0x7f7f8000u,            // overflow to inf at the top
      0x00000001u, 0x80000001u, 0x00008000u, 0x00018000u,            // subnormals, subnormal ties
      0x00010000u, 0x007fffffu, 0x00800000u, 0x00ff8000u,            // smallest bf16 subnormal, carry to normal
      0x7f800000u, 0xff800000u,                                      // +-inf
      0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u,            // NaNs: quiet, signalling, payloads
      0x7fffffffu, 0xffffffffu, 0x7f80ffffu, 0x7fa00000u, 0x7f810000u,
  };
  std::vector<float> out;
  for (uint32_t u : bits) out.push_back(from_bits(u));
  return out;
}

TEST_F(CudaElementwise, F32ToBf16MatchesHostConversionBitForBit) {
  std::mt19937 rng(55);
  std::vector<float> all = special_floats();
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 1'000'003; ++i) all.push_back(from_bits(any_bits(rng)));  // every class, NaNs included
  std::uniform_int_distribution<uint32_t> low(0, 0xffffu);
  for (int i = 0; i < 100'000; ++i) {  // exact ties on random bf16 values, both parities
    const uint32_t b = any_bits(rng) & 0xffff0000u;
    all.push_back(from_bits(b | 0x8000u));
    all.push_back(from_bits(b | low(rng)));
  }
  for (size_t n : {size_t(1), size_t(7), size_t(257), all.size()}) {
    const std::vector<float> x(all.begin(), all.begin() + n);
    cuda::DeviceBuffer<float> dx(x, "x");
    cuda::DeviceBuffer<bf16> dy(n, "y");
    for (int poison : {0xff, 0x5a}) {  // two poisons: 0xffff is itself the right answer for one NaN
      dy.fill(poison);
      cuda::f32_to_bf16(dy.get(), dx.get(), int64_t(n));
      cuda::synchronize("f32_to_bf16 test");
      const std::vector<bf16> got = dy.download();
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(got[i], bf16_from_float(x[i])) << std::hex << "float bits 0x" << bits_of(x[i]) << std::dec
                                                 << " at " << i << " (n " << n << ")";
    }
  }
}

TEST_F(CudaElementwise, Bf16ToF32MatchesHostConversionBitForBit) {
  // Every bf16 bit pattern (NaN payloads and subnormals included), plus a few more for an odd count.
  std::vector<bf16> all;
  for (uint32_t b = 0; b <= 0xffffu; ++b) all.push_back(static_cast<bf16>(b));
  for (bf16 b : {bf16(0x7fc1), bf16(0x0001), bf16(0x8000)}) all.push_back(b);
  for (size_t n : {size_t(1), size_t(7), size_t(257), all.size()}) {
    const std::vector<bf16> x(all.begin(), all.begin() + n);
    cuda::DeviceBuffer<bf16> dx(x, "x");
    cuda::DeviceBuffer<float> dy(n, "y");
    for (int poison : {0xff, 0x5a}) {
      dy.fill(poison);
      cuda::bf16_to_f32(dy.get(), dx.get(), int64_t(n));
      cuda::synchronize("bf16_to_f32 test");
      const std::vector<float> got = dy.download();
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(bits_of(got[i]), bits_of(float_from_bf16(x[i])))
            << std::hex << "bf16 0x" << x[i] << std::dec << " at " << i << " (n " << n << ")";
    }
  }
}

// --- matmul (cuBLASLt) -------------------------------------------------------------------------

// Runs cuda::matmul on (x, w) placed `offset` elements into their buffers (offsets make pointers
// less than 256-byte aligned) and checks y against cpu::matmul on the bf16-rounded x and w, and that
// x_scratch holds x rounded to bf16.
void check_matmul(int rows, int in, int out, std::mt19937& rng, size_t offset = 0, int repeats = 1) {
  SCOPED_TRACE("rows " + std::to_string(rows) + ", in " + std::to_string(in) + ", out " + std::to_string(out) +
               ", offset " + std::to_string(offset));
  const std::vector<float> x = random_vector(size_t(rows) * in, rng);
  const std::vector<bf16> w = to_bf16(random_vector(size_t(out) * in, rng));
  const std::vector<bf16> xb = to_bf16(x);
  const std::vector<float> xr = to_f32(xb), wr = to_f32(w);
  std::vector<float> expected(size_t(rows) * out), scale(size_t(rows) * out);
  cpu::matmul(expected.data(), xr.data(), wr.data(), rows, in, out);
  // sum_i |x_i w_i|: the size of the accumulation, for a tolerance that survives cancellation.
  std::vector<float> xa(xr.size()), wa(wr.size());
  for (size_t i = 0; i < xr.size(); ++i) xa[i] = std::fabs(xr[i]);
  for (size_t i = 0; i < wr.size(); ++i) wa[i] = std::fabs(wr[i]);
  cpu::matmul(scale.data(), xa.data(), wa.data(), rows, in, out);

  std::vector<float> x_padded(offset, 0.0f);
  x_padded.insert(x_padded.end(), x.begin(), x.end());
  std::vector<bf16> w_padded(offset, 0);
  w_padded.insert(w_padded.end(), w.begin(), w.end());
  cuda::DeviceBuffer<float> dx(x_padded, "x");
  cuda::DeviceBuffer<bf16> dw(w_padded, "w");
  cuda::DeviceBuffer<float> dy(offset + size_t(rows) * out, "y");
  cuda::DeviceBuffer<bf16> dscratch(offset + size_t(rows) * in, "x_scratch");
  for (int rep = 0; rep < repeats; ++rep) {  // repeats reuse the cached plan
    dy.fill(0xff);
    dscratch.fill(0xff);
    cuda::matmul(dy.get() + offset, dx.get() + offset, dw.get() + offset, rows, in, out, dscratch.get() + offset);
    cuda::synchronize("matmul test");
    const std::vector<bf16> scratch = download_slice(dscratch, offset, size_t(rows) * in);
    for (size_t i = 0; i < scratch.size(); ++i) ASSERT_EQ(scratch[i], xb[i]) << "x_scratch at " << i;
    const std::vector<float> got = download_slice(dy, offset, size_t(rows) * out);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "unwritten or NaN at " << i << " (repeat " << rep << ")";
      ASSERT_NEAR(got[i], expected[i], 1e-2f * std::fabs(expected[i]) + 1e-4f * scale[i])
          << "at row " << i / out << ", column " << i % out << " (repeat " << rep << ")";
    }
  }
}

TEST_F(CudaElementwise, MatmulMatchesCpuOnBf16RoundedInputs) {
  std::mt19937 rng(66);
  for (auto [rows, in, out] : std::vector<std::tuple<int, int, int>>{{1, 1, 1},
                                                                     {1, 7, 3},
                                                                     {3, 17, 33},
                                                                     {2, 64, 7},
                                                                     {33, 257, 129},
                                                                     {1, 4096, 4096},
                                                                     {5, 896, 4864},
                                                                     {7, 4096, 11008},
                                                                     {128, 1024, 1024},
                                                                     {2, 896, 151936}})
    check_matmul(rows, in, out, rng, 0, 2);
}

TEST_F(CudaElementwise, MatmulHandlesUnalignedPointersAndShapeChanges) {
  std::mt19937 rng(77);
  // Odd element offsets leave w and x_scratch 2-byte and x and y 4-byte aligned; the same shapes
  // aligned afterwards must get their own cached plans, and the first shape again its old one.
  for (size_t offset : {size_t(1), size_t(3), size_t(0), size_t(1)}) {
    check_matmul(3, 64, 40, rng, offset);
    check_matmul(1, 4096, 512, rng, offset);
    check_matmul(6, 333, 77, rng, offset);
  }
}

TEST_F(CudaElementwise, MatmulWithEmptyInnerDimensionWritesZeros) {
  cuda::DeviceBuffer<float> dy(15, "y");
  dy.fill(0xff);
  cuda::matmul(dy.get(), nullptr, nullptr, 3, 0, 5, nullptr);
  cuda::synchronize("matmul in = 0");
  for (float v : dy.download()) ASSERT_EQ(v, 0.0f);
}

// --- logits_stats ------------------------------------------------------------------------------

void expect_stats(const cuda::LogitStats& got, const StepFidelity& want, const std::string& where) {
  EXPECT_EQ(got.method_argmax, want.method_argmax) << where;
  EXPECT_EQ(got.full_argmax, want.full_argmax) << where;
  EXPECT_NEAR(got.method_logprob, want.method_logprob, 1e-5 * std::max(1.0, std::fabs(want.method_logprob))) << where;
  EXPECT_NEAR(got.full_logprob, want.full_logprob, 1e-5 * std::max(1.0, std::fabs(want.full_logprob))) << where;
  // Both sides are double up to the fp32 result: only the final rounding (and the order of the sums) differ.
  EXPECT_NEAR(got.kl, want.kl, 1e-9 + 1e-5 * want.kl) << where;
}

TEST_F(CudaElementwise, LogitsStatsMatchCompareLogits) {
  std::mt19937 rng(88);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  for (int vocab : {1, 7, 32000, 151936}) {
    // Rows: 0 method far from full, 1 method identical to full (KL exactly 0), 2 method close to full,
    // 3 ties for the maximum in both rows (the lowest id wins), 4 target at the argmax.
    const int rows = 5;
    std::vector<float> full = random_vector(size_t(rows) * vocab, rng, -8.0f, 8.0f);
    std::vector<float> method(full.size());
    std::vector<int32_t> targets(rows);
    std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
    for (int r = 0; r < rows; ++r) {
      float* f = full.data() + size_t(r) * vocab;
      float* m = method.data() + size_t(r) * vocab;
      const float spread = r == 0 ? 2.0f : r == 2 ? 0.01f : r == 1 ? 0.0f : 0.5f;
      for (int i = 0; i < vocab; ++i) m[i] = f[i] + spread * noise(rng);
      targets[r] = pick(rng);
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
        const StepFidelity want = compare_logits(f, m, vocab, targets[r]);
        const std::string where =
            "vocab " + std::to_string(vocab) + ", row " + std::to_string(r) + (with_full ? "" : ", no reference");
        expect_stats(got[r], want, where);
        if (!with_full || r == 1) EXPECT_EQ(got[r].kl, 0.0f) << where;
        if (!with_full) {
          EXPECT_EQ(got[r].full_logprob, got[r].method_logprob) << where;
          EXPECT_EQ(got[r].full_argmax, got[r].method_argmax) << where;
        }
        if (r == 3 && vocab > 1) EXPECT_EQ(got[r].method_argmax, std::min({vocab - 1, vocab / 2, (vocab * 2) / 3}))
            << where;
      }
    }
  }
}

TEST_F(CudaElementwise, LogitsStatsTiesGoToTheLowerId) {
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
  for (int r = 0; r < 3; ++r) {
    const StepFidelity want = compare_logits(full.data() + size_t(r) * vocab, method.data() + size_t(r) * vocab,
                                             vocab, targets[r]);
    expect_stats(got[r], want, "row " + std::to_string(r));
  }
}

// --- edge counts -------------------------------------------------------------------------------

TEST_F(CudaElementwise, EmptyInputsLaunchNothing) {
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
  EXPECT_NO_THROW(cuda::synchronize("empty inputs"));
}

// Counts past 2^31 elements: every op indexes in 64 bits. Inputs are set with memset byte patterns
// (no 8 GB uploads) and only slices at the start, around 2^31 and at the end are checked.
TEST_F(CudaElementwise, CountsPast2To31UseWideIndices) {
  constexpr size_t kN = (size_t(1) << 31) + (size_t(1) << 20);  // floats in the big buffers
  if (gpu_memory_ < (uint64_t(32) << 30)) GTEST_SKIP() << "needs 32 GiB of GPU memory, this GPU has " << gpu_memory_;
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
  const std::vector<bf16> table = to_bf16(random_vector(dim, rng));
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
  const ModelConfig config = rope_config(128, RopePairing::Half, RopeScalingType::None);
  const RopeTable rope_table(config);
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

#else

TEST(CudaElementwise, BuiltWithoutCuda) {
  GTEST_SKIP() << "this build has no CUDA backend (nvcc not found at configure time)";
}

#endif

}  // namespace
}  // namespace kvb

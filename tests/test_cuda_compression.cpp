// The CUDA compression kernels (kernels/cuda/compression_cuda.hpp) against their CPU references
// (kernels/compression_ops.hpp, and KvCache::compact for the compaction) on the same inputs: the
// GPU reads bf16 keys, the CPU the floats those bf16 values hold exactly. Awkward sizes, outputs
// poisoned first (0xff bytes: NaN floats, -1 ints) so an unwritten element fails. Results
// accumulated in fp32 must agree to ~1e-4 relative; top_k, max_pool, gather_rows and compact
// bit for bit (with many ties in the scores). Skips where no GPU answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/bf16.hpp"
#include "kernels/compression_ops.hpp"
#include "kernels/gpu_info.hpp"
#include "test_support.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "engine/kv_cache.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#endif

namespace kvb {
namespace {

#ifdef KVBENCH_HAVE_CUDA

class CudaCompression : public ::kvb::test::GpuTest {};

const int kSizes[] = {1, 7, 129, 1000, 4097};

std::vector<float> random_vector(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// bf16 data for the GPU and the floats it holds exactly, for the CPU reference.
struct Bf16Data {
  std::vector<bf16> bits;
  std::vector<float> values;
};

Bf16Data to_bf16(const std::vector<float>& x) {
  Bf16Data r;
  r.bits.resize(x.size());
  r.values.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    r.bits[i] = bf16_from_float(x[i]);
    r.values[i] = float_from_bf16(r.bits[i]);
  }
  return r;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

// Every element written (not NaN) and |got - want| <= rel * |want| + abs.
void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "unwritten or NaN at " << i << " (" << what << ")";
    ASSERT_NEAR(got[i], want[i], rel * std::fabs(want[i]) + abs) << "at " << i << " (" << what << ")";
  }
}

double sum_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s;
}

// ---------------------------------------------------------------------------------------------
// tri_scores

void check_tri_scores(int n, int d, bool interleaved, int n_u, std::mt19937& rng) {
  const Bf16Data keys = to_bf16(random_vector(size_t(n) * d, rng, -2.0f, 2.0f));
  const auto u = random_vector(size_t(std::max(n_u, 1)) * d, rng, -1.0f, 1.0f);
  const auto e = random_vector(size_t(d / 2), rng, 0.0f, 1.0f);
  std::vector<float> want(n);
  cpu::tri_scores(want.data(), keys.values.data(), n, d, interleaved, n_u > 0 ? u.data() : nullptr, n_u, e.data());

  cuda::DeviceBuffer<bf16> dk(keys.bits, "keys");
  cuda::DeviceBuffer<float> du(u, "u"), de(e, "e"), dout(n, "scores");
  dout.fill(0xff);
  cuda::tri_scores(dout.get(), dk.get(), n, d, interleaved, n_u > 0 ? du.get() : nullptr, n_u, de.get());
  cuda::synchronize("tri_scores test");
  const std::string what = "n " + std::to_string(n) + " d " + std::to_string(d) +
                           " interleaved " + std::to_string(interleaved) + " n_u " + std::to_string(n_u);
  expect_near_all(dout.download(), want, 0.0, 1e-4 * std::max(1.0, max_abs(want)), what);
}

TEST_F(CudaCompression, TriScoresMatchCpu) {
  std::mt19937 rng(41);
  for (int d : {64, 128})
    for (bool interleaved : {false, true})
      for (int n_u : {0, 1, 17})
        for (int n : kSizes) ASSERT_NO_FATAL_FAILURE(check_tri_scores(n, d, interleaved, n_u, rng));
}

TEST_F(CudaCompression, TriScoresManyQueriesSpanSeveralSharedChunks) {
  // 200 queries of 128 lanes (100 KiB) do not fit beside the key tile: u goes through in chunks.
  std::mt19937 rng(43);
  for (int d : {64, 128})
    for (bool interleaved : {false, true}) ASSERT_NO_FATAL_FAILURE(check_tri_scores(1000, d, interleaved, 200, rng));
}

// ---------------------------------------------------------------------------------------------
// zscore

TEST_F(CudaCompression, ZscoreMatchesCpu) {
  std::mt19937 rng(47);
  for (int n : {1, 7, 129, 1000, 4097, 16384}) {
    const auto x = random_vector(n, rng, -30.0f, 50.0f);
    std::vector<float> want = x;
    cpu::zscore(want.data(), n);
    cuda::DeviceBuffer<float> dx(x, "x");
    cuda::zscore(dx.get(), n);
    cuda::synchronize("zscore test");
    ASSERT_NO_FATAL_FAILURE(
        expect_near_all(dx.download(), want, 0.0, 1e-4 * std::max(1.0, max_abs(want)), "n " + std::to_string(n)));
  }
}

TEST_F(CudaCompression, ZscoreConstantIsZeroAndTinyStdIsClamped) {
  for (float c : {0.0f, 3.0f, -2.5f, 1024.0f})
    for (int n : {9, 1000}) {
      cuda::DeviceBuffer<float> dx(std::vector<float>(n, c), "x");
      cuda::zscore(dx.get(), n);
      cuda::synchronize("zscore constant test");
      for (float v : dx.download()) ASSERT_EQ(v, 0.0f) << "constant " << c << " n " << n;
    }
  // mean 1e-7, population std 1e-7 < 1e-6: divided by 1e-6.
  std::vector<float> x = {0.0f, 2e-7f}, want = x;
  cpu::zscore(want.data(), 2);
  cuda::DeviceBuffer<float> dx(x, "x");
  cuda::zscore(dx.get(), 2);
  cuda::synchronize("zscore clamp test");
  ASSERT_NO_FATAL_FAILURE(expect_near_all(dx.download(), want, 1e-4, 1e-7, "clamped std"));
  EXPECT_NEAR(want[0], -0.1, 1e-4);
}

// ---------------------------------------------------------------------------------------------
// window_attention

TEST_F(CudaCompression, WindowAttentionMatchesCpu) {
  std::mt19937 rng(53);
  for (int d : {64, 128})
    for (auto [W, G] : std::vector<std::pair<int, int>>{{8, 1}, {8, 4}, {8, 7}, {8, 8}, {1, 1}, {3, 7}})
      for (int n : kSizes) {
        const Bf16Data keys = to_bf16(random_vector(size_t(n) * d, rng, -1.0f, 1.0f));
        const auto queries = random_vector(size_t(W) * G * d, rng, -2.0f, 2.0f);
        std::vector<float> want(n);
        cpu::window_attention(want.data(), queries.data(), W, G, keys.values.data(), n, d);

        cuda::DeviceBuffer<bf16> dk(keys.bits, "keys");
        cuda::DeviceBuffer<float> dq(queries, "queries"), dout(n, "attention");
        dout.fill(0xff);
        cuda::window_attention(dout.get(), dq.get(), W, G, dk.get(), n, d);
        cuda::synchronize("window_attention test");
        const std::vector<float> got = dout.download();
        const std::string what = "n " + std::to_string(n) + " d " + std::to_string(d) + " W " + std::to_string(W) +
                                 " G " + std::to_string(G);
        ASSERT_NO_FATAL_FAILURE(expect_near_all(got, want, 1e-4, 1e-6 * max_abs(want), what));
        EXPECT_NEAR(sum_of(got), 1.0, 1e-4) << what;
      }
}

// ---------------------------------------------------------------------------------------------
// max_pool

TEST_F(CudaCompression, MaxPoolMatchesCpuExactly) {
  std::mt19937 rng(59);
  for (int radius : {0, 1, 3, 40})
    for (int n : kSizes)
      for (bool ties : {false, true}) {
        auto in = random_vector(n, rng, -3.0f, -1.0f);  // negative: a 0 padding would show
        if (ties)
          for (float& x : in) x = std::round(x * 4.0f) / 4.0f;
        std::vector<float> want(n);
        cpu::max_pool(want.data(), in.data(), n, radius);
        cuda::DeviceBuffer<float> din(in, "in"), dout(n, "out");
        dout.fill(0xff);
        cuda::max_pool(dout.get(), din.get(), n, radius);
        cuda::synchronize("max_pool test");
        const std::vector<float> got = dout.download();
        for (int j = 0; j < n; ++j) ASSERT_EQ(got[j], want[j]) << "radius " << radius << " n " << n << " at " << j;
      }
}

// ---------------------------------------------------------------------------------------------
// key_redundancy

// bf16 keys around four random centres (two below 64 keys; noise 0.3 or 1.2 around a centre: cosines near 0.92,
// 0.61 or 0.41 within a cluster, near 0 across), built one at a time: a candidate whose cosine
// (double, on its bf16 values) with an earlier key lies within `margin` of the threshold is drawn
// again, so fp32 rounding on the GPU cannot flip a comparison. Key 3 is zero. `similar_pairs`
// counts the ordered pairs above the threshold.
Bf16Data clustered_bf16_keys(int n, int d, double threshold, double margin, std::mt19937& rng, int& similar_pairs) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, n < 64 ? 1 : 3);  // few keys: two clusters, so some are similar
  std::vector<std::vector<float>> centre(4, std::vector<float>(d));
  for (auto& c : centre)
    for (float& v : c) v = g(rng);
  Bf16Data keys;
  keys.bits.assign(size_t(n) * d, 0);
  keys.values.assign(size_t(n) * d, 0.0f);
  std::vector<double> unit(size_t(n) * d, 0.0);  // accepted keys normalised (zero key: zeros)
  std::vector<float> raw(d);
  std::vector<double> cand(d);
  similar_pairs = 0;
  for (int i = 0; i < n; ++i) {
    if (i == 3) continue;  // the zero key: similarity 0 to everything
    for (int attempt = 0;; ++attempt) {
      if (attempt == 10000) {
        ADD_FAILURE() << "could not draw key " << i << " away from the threshold";
        return keys;
      }
      const auto& c = centre[pick(rng)];
      const float noise = (i % 3 == 0) ? 1.2f : 0.3f, scale = 0.5f + 0.1f * float(i % 7);
      for (int x = 0; x < d; ++x) raw[x] = float_from_bf16(bf16_from_float(scale * (c[x] + noise * g(rng))));
      double ss = 0;
      for (int x = 0; x < d; ++x) ss += double(raw[x]) * raw[x];
      if (ss == 0) continue;
      for (int x = 0; x < d; ++x) cand[x] = raw[x] / std::sqrt(ss);
      bool ok = true;
      int above = 0;
      for (int j = 0; j < i && ok; ++j) {
        double dot = 0;
        for (int x = 0; x < d; ++x) dot += unit[size_t(j) * d + x] * cand[x];
        if (j != 3 && std::fabs(dot - threshold) < margin) ok = false;
        above += dot > threshold;
      }
      if (!ok) continue;
      similar_pairs += 2 * above;
      for (int x = 0; x < d; ++x) {
        keys.bits[size_t(i) * d + x] = bf16_from_float(raw[x]);
        keys.values[size_t(i) * d + x] = raw[x];
        unit[size_t(i) * d + x] = cand[x];
      }
      break;
    }
  }
  return keys;
}

void check_key_redundancy(const Bf16Data& keys, int n, int d, float threshold, const std::string& what) {
  std::vector<float> want(n);
  cpu::key_redundancy(want.data(), keys.values.data(), n, d, threshold);
  cuda::DeviceBuffer<bf16> dk(keys.bits, "keys");
  cuda::DeviceBuffer<float> dout(n, "redundancy");
  dout.fill(0xff);
  cuda::key_redundancy(dout.get(), dk.get(), n, d, threshold);
  cuda::synchronize("key_redundancy test");
  const std::vector<float> got = dout.download();
  ASSERT_NO_FATAL_FAILURE(expect_near_all(got, want, 1e-4, 1e-6 * max_abs(want), what));
  EXPECT_NEAR(sum_of(got), 1.0, 1e-4) << what;
}

TEST_F(CudaCompression, KeyRedundancyMatchesCpuOnClusteredKeys) {
  std::mt19937 rng(61);
  for (int d : {64, 128})
    for (int n : kSizes) {
      int similar_pairs = 0;
      const Bf16Data keys = clustered_bf16_keys(n, d, 0.5, 1e-4, rng, similar_pairs);
      ASSERT_FALSE(HasFailure());
      if (n >= 7) EXPECT_GT(similar_pairs, n) << "the clusters must exercise the threshold: d " << d << " n " << n;
      ASSERT_NO_FATAL_FAILURE(
          check_key_redundancy(keys, n, d, 0.5f, "n " + std::to_string(n) + " d " + std::to_string(d)));
    }
}

TEST_F(CudaCompression, KeyRedundancyHandCasesAtHeadDim2) {
  // tests/test_compression_ops.cpp's five keys (exact in bf16): the latest similar key, not the
  // most similar one, is protected, a row without a similar key zeroes its entry for key 0, and
  // the threshold argument is used.
  const Bf16Data keys = to_bf16({1, 0, 2.5f, 0, 0, 0.5f, 3, 4, -7, 0});
  for (float threshold : {0.5f, 0.7f})
    for (int n : {1, 4, 5})
      ASSERT_NO_FATAL_FAILURE(check_key_redundancy(
          keys, n, 2, threshold, "hand case n " + std::to_string(n) + " threshold " + std::to_string(threshold)));
}

// ---------------------------------------------------------------------------------------------
// gather_rows

TEST_F(CudaCompression, GatherRowsCopiesTheIndexedRowsExactly) {
  std::mt19937 rng(67);
  for (int d : {64, 128, 3})
    for (int n : kSizes)
      for (int offset : {0, 1}) {  // offset 1: rows and out only 2-byte aligned (the 16-bit path)
        const int m = n + 5;
        const Bf16Data rows = to_bf16(random_vector(size_t(m) * d + offset, rng, -3.0f, 3.0f));
        std::uniform_int_distribution<int> pick(0, m - 1);
        std::vector<int32_t> index(n);
        for (int32_t& i : index) i = pick(rng);
        cuda::DeviceBuffer<bf16> drows(rows.bits, "rows"), dout(size_t(n) * d + offset, "out");
        cuda::DeviceBuffer<int32_t> dindex(index, "index");
        dout.fill(0xff);
        cuda::gather_rows(dout.get() + offset, drows.get() + offset, dindex.get(), n, d);
        cuda::synchronize("gather_rows test");
        const std::vector<bf16> got = dout.download();
        for (int i = 0; i < n; ++i)
          for (int c = 0; c < d; ++c)
            ASSERT_EQ(got[offset + size_t(i) * d + c], rows.bits[offset + size_t(index[i]) * d + c])
                << "d " << d << " n " << n << " offset " << offset << " row " << i << " lane " << c;
        if (offset) ASSERT_EQ(got[0], 0xffff) << "wrote before out";
      }
}

// ---------------------------------------------------------------------------------------------
// top_k

// The device top-k equals cpu::top_k exactly for every k, and leaves out[min(k, n)..] untouched.
void check_top_k(const std::vector<float>& score, const std::string& what) {
  const int n = static_cast<int>(score.size());
  cuda::DeviceBuffer<float> ds(score, "scores");
  for (int k : {0, 1, n / 2, n - 1, n, n + 5}) {
    if (k < 0) continue;
    std::vector<int> want;
    cpu::top_k(score.data(), n, k, want);
    const size_t written = std::min(k, n);
    cuda::DeviceBuffer<int32_t> dout(written + 3, "top");
    dout.fill(0xff);
    cuda::top_k(dout.get(), ds.get(), n, k);
    cuda::synchronize("top_k test");
    const std::vector<int32_t> got = dout.download();
    ASSERT_EQ(want.size(), written);
    for (size_t r = 0; r < written; ++r) ASSERT_EQ(got[r], want[r]) << what << " k " << k << " rank " << r;
    for (size_t r = written; r < got.size(); ++r) ASSERT_EQ(got[r], -1) << what << " k " << k << ": wrote past min(k, n)";
  }
}

TEST_F(CudaCompression, TopKMatchesCpuBitExactWithTies) {
  std::mt19937 rng(71);
  for (int n : {1, 7, 129, 1000, 4097, 16384}) {
    // Few distinct values, zeros of both signs (the CPU ties -0 with +0): mostly ties.
    std::uniform_int_distribution<int> level(-4, 4);
    std::vector<float> tied(n);
    for (float& x : tied) {
      x = 0.25f * float(level(rng));
      if (x == 0.0f && (rng() & 1)) x = -0.0f;
    }
    ASSERT_NO_FATAL_FAILURE(check_top_k(tied, "tied n " + std::to_string(n)));
    // bf16-rounded scores, as the methods rank them: ties at large n, negative values too.
    ASSERT_NO_FATAL_FAILURE(check_top_k(to_bf16(random_vector(n, rng, -1.0f, 1.0f)).values, "bf16 n " + std::to_string(n)));
    // Distinct fp32 scores, with infinities.
    auto spread = random_vector(n, rng, -1e3f, 1e3f);
    spread[rng() % n] = INFINITY;
    spread[rng() % n] = -INFINITY;
    ASSERT_NO_FATAL_FAILURE(check_top_k(spread, "spread n " + std::to_string(n)));
  }
}

TEST_F(CudaCompression, TopKBeyondSharedMemoryStaysExact) {
  // Above the contract's 16384 the sort runs over global memory; same answer.
  std::mt19937 rng(73);
  for (int n : {16385, 40000}) {
    std::uniform_int_distribution<int> level(-50, 50);
    std::vector<float> tied(n);
    for (float& x : tied) x = 0.125f * float(level(rng));
    ASSERT_NO_FATAL_FAILURE(check_top_k(tied, "tied n " + std::to_string(n)));
  }
}

// ---------------------------------------------------------------------------------------------
// compact

// A two-head cache on both sides: the device compacts head 1 (base pointers offset like a real
// per-head call); the whole device image must equal KvCache's after KvCache::compact, head 0 and
// the unused and stale slots included.
void check_compact(int len, int k, int d, std::mt19937& rng) {
  ModelConfig config;
  config.n_layers = 1;
  config.n_heads = 2;
  config.n_kv_heads = 2;
  config.head_dim = d;
  const int capacity = len + 3;
  KvCache cache(config, 1, capacity);
  std::uniform_real_distribution<float> value(-4.0f, 4.0f);
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < len; ++t) {
      const int slot = cache.append_slot(0, 0, h, static_cast<int32_t>(rng() % 1000000));
      for (int c = 0; c < d; ++c) {
        cache.keys(0, 0, h)[size_t(slot) * d + c] = float_from_bf16(bf16_from_float(value(rng)));
        cache.values(0, 0, h)[size_t(slot) * d + c] = float_from_bf16(bf16_from_float(value(rng)));
      }
    }
  auto image = [&](bool keys_side) {
    std::vector<bf16> out(size_t(2) * capacity * d);
    for (int h = 0; h < 2; ++h) {
      const float* src = keys_side ? cache.keys(0, 0, h) : cache.values(0, 0, h);
      for (size_t i = 0; i < size_t(capacity) * d; ++i) out[size_t(h) * capacity * d + i] = bf16_from_float(src[i]);
    }
    return out;
  };
  auto positions = [&] {
    std::vector<int32_t> out(size_t(2) * capacity);
    for (int h = 0; h < 2; ++h) std::copy_n(cache.positions(0, 0, h), capacity, out.begin() + size_t(h) * capacity);
    return out;
  };
  cuda::DeviceBuffer<bf16> dk(image(true), "keys"), dv(image(false), "values");
  cuda::DeviceBuffer<int32_t> dp(positions(), "positions"), dl(std::vector<int32_t>{len, len}, "lengths");

  std::vector<int> keep(len);
  std::iota(keep.begin(), keep.end(), 0);
  std::shuffle(keep.begin(), keep.end(), rng);
  keep.resize(k);
  std::vector<int32_t> keep32(keep.begin(), keep.end());
  keep32.push_back(-1);  // never read (k entries are), keeps the buffer non-empty at k = 0
  cuda::DeviceBuffer<int32_t> dkeep(keep32, "keep");

  cuda::compact(dk.get() + size_t(capacity) * d, dv.get() + size_t(capacity) * d, dp.get() + capacity, dl.get() + 1,
                dkeep.get(), k, len, d);
  cuda::synchronize("compact test");
  cache.compact(0, 0, 1, keep);

  const std::string what = "len " + std::to_string(len) + " k " + std::to_string(k) + " d " + std::to_string(d);
  ASSERT_EQ(dl.download(), (std::vector<int32_t>{len, k})) << what;
  ASSERT_EQ(cache.length(0, 0, 1), k) << what;
  const std::vector<int32_t> got_p = dp.download(), want_p = positions();
  for (size_t i = 0; i < got_p.size(); ++i) ASSERT_EQ(got_p[i], want_p[i]) << what << " position of slot " << i;
  const std::vector<bf16> got_k = dk.download(), want_k = image(true);
  for (size_t i = 0; i < got_k.size(); ++i) ASSERT_EQ(got_k[i], want_k[i]) << what << " key element " << i;
  const std::vector<bf16> got_v = dv.download(), want_v = image(false);
  for (size_t i = 0; i < got_v.size(); ++i) ASSERT_EQ(got_v[i], want_v[i]) << what << " value element " << i;
}

TEST_F(CudaCompression, CompactMovesSlotScoresWithTheirSlots) {
  // Slot j holds position 100 + j and score j: after compaction every slot's score still names
  // its position.
  const int len = 300, k = 120, d = 8;
  std::mt19937 rng(3);
  std::vector<int32_t> pos(len);
  std::vector<float> score(len);
  for (int j = 0; j < len; ++j) {
    pos[j] = 100 + j;
    score[j] = float(j);
  }
  std::vector<int32_t> keep(len);
  std::iota(keep.begin(), keep.end(), 0);
  std::shuffle(keep.begin(), keep.end(), rng);
  keep.resize(k);
  cuda::DeviceBuffer<bf16> dk(size_t(len) * d, "keys"), dv(size_t(len) * d, "values");
  cuda::DeviceBuffer<int32_t> dp(pos, "positions"), dl(std::vector<int32_t>{len}, "length"), dkeep(keep, "keep");
  cuda::DeviceBuffer<float> ds(score, "scores");
  dk.fill(0);
  dv.fill(0);
  cuda::compact(dk.get(), dv.get(), dp.get(), dl.get(), dkeep.get(), k, len, d, ds.get());
  cuda::synchronize("compact with scores test");
  const std::vector<int32_t> got_p = dp.download();
  const std::vector<float> got_s = ds.download();
  std::vector<int32_t> kept(got_p.begin(), got_p.begin() + k), want;
  for (int j : keep) want.push_back(100 + j);
  std::sort(kept.begin(), kept.end());
  std::sort(want.begin(), want.end());
  ASSERT_EQ(kept, want);
  for (int j = 0; j < k; ++j) ASSERT_EQ(got_s[j], float(got_p[j] - 100)) << "slot " << j;
}

TEST_F(CudaCompression, CompactMatchesKvCacheSlotForSlot) {
  std::mt19937 rng(79);
  for (int d : {64, 128})
    for (int len : kSizes) {
      std::vector<int> ks = {0, 1, len / 2, len - 1, len, static_cast<int>(rng() % (len + 1))};
      if (len > 128) ks.push_back(len - 128);  // the slack trigger: 128 evictions
      for (int k : ks)
        if (k >= 0 && k <= len) ASSERT_NO_FATAL_FAILURE(check_compact(len, k, d, rng));
    }
}

// ---------------------------------------------------------------------------------------------
// Degenerate sizes

TEST_F(CudaCompression, EmptyInputsWriteNothing) {
  cuda::DeviceBuffer<float> f(8, "floats");
  cuda::DeviceBuffer<bf16> b(8, "bf16");
  cuda::DeviceBuffer<int32_t> i(8, "ints");
  f.fill(0xff);
  b.fill(0xff);
  i.fill(0xff);
  cuda::tri_scores(f.get(), b.get(), 0, 4, false, nullptr, 0, f.get());
  cuda::zscore(f.get(), 0);
  cuda::window_attention(f.get(), f.get(), 8, 1, b.get(), 0, 4);
  cuda::max_pool(f.get(), f.get() + 4, 0, 3);
  cuda::key_redundancy(f.get(), b.get(), 0, 4, 0.5f);
  cuda::gather_rows(b.get(), b.get() + 4, i.get(), 0, 4);
  cuda::top_k(i.get(), f.get(), 5, 0);
  cuda::top_k(i.get(), f.get(), 0, 3);
  cuda::synchronize("empty inputs");
  for (float v : f.download()) ASSERT_TRUE(std::isnan(v));
  for (bf16 v : b.download()) ASSERT_EQ(v, 0xffff);
  for (int32_t v : i.download()) ASSERT_EQ(v, -1);
}

TEST_F(CudaCompression, WindowAttentionWithoutWindowQueriesIsZero) {
  // cpu::window_attention fills zeros when there is no window query.
  cuda::DeviceBuffer<float> out(5, "out"), q(4, "q");
  cuda::DeviceBuffer<bf16> keys(20, "keys");
  out.fill(0xff);
  keys.fill(0);
  cuda::window_attention(out.get(), q.get(), 0, 1, keys.get(), 5, 4);
  cuda::synchronize("window_attention W=0");
  for (float v : out.download()) ASSERT_EQ(v, 0.0f);
}

// ---------------------------------------------------------------------------------------------
// tri_group_combine, weighted_difference, store_window_queries

// TriAttentionPolicy's combination on the CPU: per candidate, the group max of raw + noise,
// assigned, maxed or added divided by `divisor` into agg.
std::vector<float> tri_combine_reference(std::vector<float> agg, const std::vector<float>& raw, int group, int n,
                                         const std::vector<int32_t>& pos, uint64_t seed, uint64_t event,
                                         uint64_t head_key, int mode, float divisor) {
  for (int c = 0; c < n; ++c) {
    float m = -std::numeric_limits<float>::infinity();
    for (int h = 0; h < group; ++h) {
      const float noise = 1e-6f * cpu::hashed_uniform(seed, event, ((head_key + h) << 32) | uint32_t(pos[c]));
      m = std::max(m, raw[size_t(h) * n + c] + noise);
    }
    agg[c] = mode == cuda::kTriAssign ? m : mode == cuda::kTriMax ? std::max(agg[c], m) : agg[c] + m / divisor;
  }
  return agg;
}

TEST_F(CudaCompression, TriGroupCombineMatchesCpuBitForBit) {
  std::mt19937 rng(31);
  for (int group : {1, 4, 7}) {
    for (int n : {1, 129, 1000}) {
      for (int mode : {cuda::kTriAssign, cuda::kTriMax, cuda::kTriAddDivided}) {
        const auto raw = random_vector(size_t(group) * n, rng, -3.0f, 3.0f);
        const auto agg = random_vector(size_t(n), rng, -1.0f, 1.0f);
        std::vector<int32_t> pos(n);
        for (int c = 0; c < n; ++c) pos[c] = 3 * c + 11;
        const auto want = tri_combine_reference(agg, raw, group, n, pos, 7, 2, 40, mode, 28.0f);
        cuda::DeviceBuffer<float> draw(raw, "raw"), dagg(agg, "agg");
        cuda::DeviceBuffer<int32_t> dpos(pos, "positions");
        cuda::tri_group_combine(dagg.get(), draw.get(), group, n, dpos.get(), 7, 2, 40, mode, 28.0f);
        cuda::synchronize("tri_group_combine test");
        const auto got = dagg.download();
        for (int c = 0; c < n; ++c)
          ASSERT_EQ(got[c], want[c]) << "group " << group << " n " << n << " mode " << mode << " at " << c;
      }
    }
  }
}

TEST_F(CudaCompression, WeightedDifferenceMatchesCpuBitForBit) {
  std::mt19937 rng(5);
  const int n = 1001;
  const auto a = random_vector(n, rng, 0.0f, 1.0f), b = random_vector(n, rng, 0.0f, 1.0f);
  cuda::DeviceBuffer<float> da(a, "a"), db(b, "b"), out(n, "out");
  out.fill(0xff);
  cuda::weighted_difference(out.get(), da.get(), db.get(), 0.1f, n);
  cuda::synchronize("weighted_difference test");
  const auto got = out.download();
  for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], 0.1f * a[i] - (1.0f - 0.1f) * b[i]) << "at " << i;
}

TEST_F(CudaCompression, WindowQueriesKeepTheLastWindowOfEachSequence) {
  // Two sequences, 4 query heads in 2 groups of 2, head_dim 3, window 4; one batch holds 9 tokens
  // of sequence 1 (positions 0..8) and one of sequence 0 (position 5). Query values name their
  // token and head, so the ring can be checked slot by slot.
  const int n_heads = 4, group = 2, hd = 3, window = 4, layers = 2, layer = 1, n_kv = n_heads / group;
  std::vector<int32_t> seq, pos;
  for (int p = 0; p < 9; ++p) {
    seq.push_back(1);
    pos.push_back(p);
  }
  seq.push_back(0);
  pos.push_back(5);
  const int n = static_cast<int>(seq.size());
  std::vector<float> q(size_t(n) * n_heads * hd);
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < n_heads; ++h)
      for (int c = 0; c < hd; ++c) q[(size_t(i) * n_heads + h) * hd + c] = 100.0f * i + 10.0f * h + c;
  std::vector<int32_t> which;  // the last `window` tokens of sequence 1, and sequence 0's token
  for (int i = 9 - window; i < n; ++i) which.push_back(i);
  const size_t ring_floats = size_t(2) * layers * n_kv * window * group * hd;
  cuda::DeviceBuffer<float> ring(ring_floats, "ring"), dq(q, "q");
  cuda::DeviceBuffer<int32_t> dwhich(which, "which"), dseq(seq, "seq"), dpos(pos, "pos");
  ring.fill(0xff);
  cuda::store_window_queries(ring.get(), dq.get(), dwhich.get(), static_cast<int>(which.size()), dseq.get(), dpos.get(),
                             n_heads, group, hd, window, layer, layers);
  cuda::synchronize("store_window_queries test");
  const auto got = ring.download();
  for (int i : which)
    for (int h = 0; h < n_heads; ++h) {
      const size_t block = (size_t(seq[i]) * layers + layer) * n_kv + h / group;
      const float* slot = got.data() + ((block * window + pos[i] % window) * group + h % group) * hd;
      for (int c = 0; c < hd; ++c) ASSERT_EQ(slot[c], q[(size_t(i) * n_heads + h) * hd + c]) << "token " << i << " head " << h;
    }
  // Layer 0 was not written.
  for (size_t at = 0; at < size_t(n_kv) * window * group * hd; ++at) ASSERT_TRUE(std::isnan(got[at]));
}

TEST_F(CudaCompression, SyntheticFillMatchesTheHostValues) {
  const int64_t n = 70001;
  cuda::DeviceBuffer<float> f(n, "f32");
  cuda::DeviceBuffer<bf16> b(n, "bf16");
  cuda::synthetic_fill(f.get(), n, 0x1234abcdull, 0.05f, 1.0f);
  cuda::synthetic_fill(b.get(), n, 0x1234abcdull, 0.05f, 1.0f);
  cuda::synchronize("synthetic_fill test");
  const auto gf = f.download();
  const auto gb = b.download();
  for (int64_t i = 0; i < n; ++i) {
    const float want = synthetic_value(0x1234abcdull, uint64_t(i), 0.05f, 1.0f);
    ASSERT_EQ(gf[i], want) << "at " << i;
    ASSERT_EQ(gb[i], bf16_from_float(want)) << "at " << i;
  }
}

#else

TEST(CudaCompression, BuiltWithoutCuda) {
  GTEST_SKIP() << "this build has no CUDA backend (nvcc not found at configure time)";
}

#endif

}  // namespace
}  // namespace kvb

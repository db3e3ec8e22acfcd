// cuda::attention and cuda::append_kv against the CPU: attention per (token, query head) against
// cpu::attention_head on the bf16-rounded cache, append_kv against KvCache::append_slot + memcpy
// (bit for bit). Awkward lengths (1 .. 8193), GQA groups 1, 4, 7, 8, head dims 64 and 128, slot
// order shuffled against positions, slots beyond the query's position (masked), several sequences
// of different lengths, decode and prefill batches; outputs poisoned first. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/kv_cache.hpp"
#include "engine/model_config.hpp"
#include "kernels/bf16.hpp"
#include "kernels/gpu_info.hpp"
#include "test_support.hpp"
#include "kernels/ops.hpp"
#include "util/errors.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#endif

namespace kvb {
namespace {

#ifdef KVBENCH_HAVE_CUDA

class CudaAttention : public ::kvb::test::GpuTest {};

float uniform(std::mt19937& rng, float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

// One layer of the device KV cache, on the host: [n_seqs][n_kv][cap][hd] bf16 etc.
struct HostCache {
  int n_seqs, n_kv, cap, hd;
  std::vector<bf16> k, v;
  std::vector<int32_t> positions, lengths;

  HostCache(int n_seqs_, int n_kv_, int cap_, int hd_)
      : n_seqs(n_seqs_), n_kv(n_kv_), cap(cap_), hd(hd_), k(size_t(n_seqs_) * n_kv_ * cap_ * hd_, 0),
        v(k.size(), 0), positions(size_t(n_seqs_) * n_kv_ * cap_, -1), lengths(size_t(n_seqs_) * n_kv_, 0) {}
  size_t head(int s, int h) const { return size_t(s) * n_kv + h; }

  // Slots of (s, h) hold the given positions (in this slot order) with random keys and values.
  void fill(int s, int h, const std::vector<int32_t>& pos, std::mt19937& rng) {
    ASSERT_LE(int(pos.size()), cap);
    const size_t hb = head(s, h);
    lengths[hb] = int32_t(pos.size());
    for (size_t j = 0; j < pos.size(); ++j) {
      positions[hb * cap + j] = pos[j];
      for (int c = 0; c < hd; ++c) {
        k[(hb * cap + j) * hd + c] = bf16_from_float(uniform(rng, -2.0f, 2.0f));
        v[(hb * cap + j) * hd + c] = bf16_from_float(uniform(rng, -2.0f, 2.0f));
      }
    }
  }
};

// `len` distinct positions from [0, span) (span >= len: the rest were "evicted"), in random slot order.
std::vector<int32_t> random_positions(int len, int span, std::mt19937& rng) {
  std::vector<int32_t> all(span);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(len);
  return all;
}

// Runs cuda::attention on `cache` for the batch (seq, pos) with random queries and compares every
// (token, query head) with cpu::attention_head on the same bf16-rounded keys and values.
void check_attention(const HostCache& cache, const std::vector<int32_t>& seq, const std::vector<int32_t>& pos,
                     int n_heads, float q_scale, bool use_workspace, std::mt19937& rng, const std::string& what) {
  const int n = int(seq.size()), hd = cache.hd, group = n_heads / cache.n_kv;
  std::vector<float> q(size_t(n) * n_heads * hd);
  for (float& x : q) x = uniform(rng, -q_scale, q_scale);

  // CPU reference on the rounded cache.
  std::vector<float> kf(cache.k.size()), vf(cache.v.size());
  for (size_t i = 0; i < kf.size(); ++i) kf[i] = float_from_bf16(cache.k[i]);
  for (size_t i = 0; i < vf.size(); ++i) vf[i] = float_from_bf16(cache.v[i]);
  std::vector<float> expected(q.size());
  std::vector<float> probs(cache.cap);
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < n_heads; ++h) {
      const size_t hb = cache.head(seq[i], h / group);
      cpu::attention_head(expected.data() + (size_t(i) * n_heads + h) * hd, probs.data(),
                          q.data() + (size_t(i) * n_heads + h) * hd, kf.data() + hb * cache.cap * hd,
                          vf.data() + hb * cache.cap * hd, cache.positions.data() + hb * cache.cap,
                          cache.lengths[hb], pos[i], hd);
    }

  cuda::DeviceBuffer<bf16> dk(cache.k, "k"), dv(cache.v, "v");
  cuda::DeviceBuffer<int32_t> dpositions(cache.positions, "positions"), dlengths(cache.lengths, "lengths");
  cuda::DeviceBuffer<int32_t> dseq(seq, "seq"), dpos(pos, "pos");
  cuda::DeviceBuffer<float> dq(q, "q"), dout(q.size(), "out");
  const size_t ws_floats = cuda::attention_workspace_floats(n, n_heads, hd, cache.cap);
  cuda::DeviceBuffer<float> dws(std::max<size_t>(ws_floats, 1), "workspace");
  dout.fill(0xff);  // NaN: an element the kernels do not write fails below
  dws.fill(0xff);
  cuda::attention(dout.get(), dq.get(), dk.get(), dv.get(), dpositions.get(), dlengths.get(), dseq.get(), dpos.get(),
                  n, n_heads, cache.n_kv, hd, cache.cap, use_workspace && ws_floats > 0 ? dws.get() : nullptr);
  cuda::synchronize("attention test");
  const std::vector<float> got = dout.download();
  // Cache and lengths are inputs: attention must not touch them.
  ASSERT_EQ(dlengths.download(), cache.lengths) << what;

  for (int i = 0; i < n; ++i)
    for (int h = 0; h < n_heads; ++h)
      for (int c = 0; c < hd; ++c) {
        const size_t at = (size_t(i) * n_heads + h) * hd + c;
        ASSERT_FALSE(std::isnan(got[at])) << what << ": unwritten or NaN at token " << i << " head " << h << " lane " << c;
        ASSERT_NEAR(got[at], expected[at], 1e-4f + 1e-3f * std::fabs(expected[at]))
            << what << ": token " << i << " (seq " << seq[i] << ", pos " << pos[i] << ", len "
            << cache.lengths[cache.head(seq[i], h / group)] << ") head " << h << " lane " << c;
      }
}

struct Gqa {
  int n_kv, group;
};
const std::vector<Gqa> kGqa{{2, 1}, {3, 4}, {1, 7}, {2, 8}};

TEST_F(CudaAttention, DecodeMatchesCpu) {
  std::mt19937 rng(4242);
  const std::vector<int> lens{1, 7, 129, 1000, 8193};
  const int cap = 8200;
  for (int hd : {64, 128})
    for (const Gqa g : kGqa) {
      const int n_seqs = int(lens.size());
      HostCache cache(n_seqs, g.n_kv, cap, hd);
      std::vector<int32_t> qpos(n_seqs);
      for (int s = 0; s < n_seqs; ++s) {
        // KV heads of one sequence hold different numbers of slots (per-head eviction), over
        // positions [0, span); the token's own position is span - 1 for most sequences, and
        // inside the span for some (the slots after it must be masked).
        const int span = lens[s] + lens[s] / 4;
        for (int h = 0; h < g.n_kv; ++h) {
          const int len = std::max(1, lens[s] - 3 * h);
          std::vector<int32_t> p = random_positions(len, span, rng);
          if (h == 0 && s % 2 == 0) p[len / 2] = span - 1;  // the own slot, somewhere in the middle
          cache.fill(s, h, p, rng);
        }
        qpos[s] = s % 2 == 0 ? span - 1 : std::max(0, span * 2 / 3);
      }
      // Batch order differs from sequence order.
      const std::vector<int32_t> seq{3, 0, 4, 1, 2};
      std::vector<int32_t> pos;
      for (int s : seq) pos.push_back(qpos[s]);
      for (bool ws : {true, false})
        for (float q_scale : {1.0f, 4.0f})
          check_attention(cache, seq, pos, g.n_kv * g.group, q_scale, ws, rng,
                          "decode hd " + std::to_string(hd) + " kv " + std::to_string(g.n_kv) + " group " +
                              std::to_string(g.group) + (ws ? " split" : " no-workspace") + " q*" +
                              std::to_string(int(q_scale)));
    }
}

TEST_F(CudaAttention, PrefillChunkIsCausalAndMatchesCpu) {
  std::mt19937 rng(777);
  struct Chunk {
    int prev, m;  // slots before the chunk (of positions [0, prev + prev/8)), chunk tokens
  };
  for (int hd : {64, 128})
    for (const Gqa g : kGqa)
      for (const Chunk ch : std::vector<Chunk>{{0, 1}, {0, 37}, {7, 5}, {1000, 33}, {8100, 93}, {129, 100}}) {
        const int cap = ch.prev + ch.m + 3, n_seqs = 3, s = 1;
        HostCache cache(n_seqs, g.n_kv, cap, hd);
        // Other sequences hold unrelated slots: the kernel must stay within sequence 1.
        for (int other : {0, 2})
          for (int h = 0; h < g.n_kv; ++h) cache.fill(other, h, random_positions(std::min(cap, 50), 60, rng), rng);
        const int prev_span = ch.prev + ch.prev / 8, p0 = prev_span + 2;
        for (int h = 0; h < g.n_kv; ++h) {
          const int prev = std::max(0, ch.prev - 2 * h);
          std::vector<int32_t> p = random_positions(prev, std::max(prev, prev_span), rng);
          for (int t = 0; t < ch.m; ++t) p.push_back(p0 + t);  // the chunk's own slots, appended
          std::shuffle(p.begin(), p.end(), rng);                // then the slot order is scrambled
          cache.fill(s, h, p, rng);
        }
        std::vector<int32_t> seq(ch.m, s), pos(ch.m);
        for (int t = 0; t < ch.m; ++t) pos[t] = p0 + t;
        check_attention(cache, seq, pos, g.n_kv * g.group, 2.0f, true, rng,
                        "prefill hd " + std::to_string(hd) + " kv " + std::to_string(g.n_kv) + " group " +
                            std::to_string(g.group) + " prev " + std::to_string(ch.prev) + " chunk " +
                            std::to_string(ch.m));
      }
}

TEST_F(CudaAttention, MixedBatchMatchesCpu) {
  // Prefill chunks of two sequences, decode tokens of others, a sequence's tokens split across
  // the batch, and a KV head whose every slot lies after the query (no visible slot: zeros).
  std::mt19937 rng(99);
  for (int hd : {64, 128}) {
    const int n_kv = 2, group = 4, cap = 700;
    HostCache cache(5, n_kv, cap, hd);
    for (int s = 0; s < 5; ++s)
      for (int h = 0; h < n_kv; ++h) {
        const int len = 100 * (s + 1) + 17 * h;
        std::vector<int32_t> p(len);
        std::iota(p.begin(), p.end(), 0);
        if (s == 4 && h == 1)
          for (int32_t& x : p) x += 10000;  // invisible from every query below
        std::shuffle(p.begin(), p.end(), rng);
        cache.fill(s, h, p, rng);
      }
    const std::vector<int32_t> seq{0, 0, 0, 2, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 0, 2};
    std::vector<int32_t> pos(seq.size());
    for (size_t i = 0; i < seq.size(); ++i) pos[i] = int32_t(50 + 7 * i);
    for (bool ws : {true, false})
      check_attention(cache, seq, pos, n_kv * group, 2.0f, ws, rng,
                      "mixed hd " + std::to_string(hd) + (ws ? " split" : " no-workspace"));
  }
}

TEST_F(CudaAttention, AppendKvMatchesKvCache) {
  std::mt19937 rng(5);
  for (int hd : {64, 128, 40}) {
    ModelConfig cfg;
    cfg.n_layers = 1;
    cfg.n_heads = 6;
    cfg.n_kv_heads = 3;
    cfg.head_dim = hd;
    const int n_seqs = 4, cap = 50;
    KvCache cache(cfg, n_seqs, cap);
    auto rounded = [&](float lo, float hi) { return float_from_bf16(bf16_from_float(uniform(rng, lo, hi))); };
    for (int s = 0; s < n_seqs; ++s)
      for (int h = 0; h < cfg.n_kv_heads; ++h) {
        const int len = std::uniform_int_distribution<int>(0, 20)(rng);
        for (int j = 0; j < len; ++j) {
          const int slot = cache.append_slot(0, s, h, std::uniform_int_distribution<int>(0, 1000)(rng));
          for (int c = 0; c < hd; ++c) {
            cache.keys(0, s, h)[size_t(slot) * hd + c] = rounded(-3, 3);
            cache.values(0, s, h)[size_t(slot) * hd + c] = rounded(-3, 3);
          }
        }
      }
    auto device_image = [&](bool values) {
      std::vector<bf16> out(size_t(n_seqs) * cfg.n_kv_heads * cap * hd);
      for (int s = 0; s < n_seqs; ++s)
        for (int h = 0; h < cfg.n_kv_heads; ++h) {
          const float* src = values ? cache.values(0, s, h) : cache.keys(0, s, h);
          for (size_t e = 0; e < size_t(cap) * hd; ++e)
            out[(size_t(s) * cfg.n_kv_heads + h) * cap * hd + e] = bf16_from_float(src[e]);
        }
      return out;
    };
    auto positions_image = [&] {
      std::vector<int32_t> out(size_t(n_seqs) * cfg.n_kv_heads * cap);
      for (int s = 0; s < n_seqs; ++s)
        for (int h = 0; h < cfg.n_kv_heads; ++h)
          std::memcpy(out.data() + (size_t(s) * cfg.n_kv_heads + h) * cap, cache.positions(0, s, h),
                      sizeof(int32_t) * cap);
      return out;
    };
    auto lengths_image = [&] {
      std::vector<int32_t> out;
      for (int s = 0; s < n_seqs; ++s)
        for (int h = 0; h < cfg.n_kv_heads; ++h) out.push_back(cache.length(0, s, h));
      return out;
    };
    cuda::DeviceBuffer<bf16> dk(device_image(false), "k"), dv(device_image(true), "v");
    cuda::DeviceBuffer<int32_t> dpositions(positions_image(), "positions"), dlengths(lengths_image(), "lengths");

    // A batch mixing sequences, with runs and with a sequence's tokens apart.
    const std::vector<int32_t> seq{2, 0, 2, 2, 1, 0, 3, 2, 2, 1};
    std::vector<int32_t> pos(seq.size());
    for (int32_t& p : pos) p = std::uniform_int_distribution<int>(0, 5000)(rng);
    const size_t row = size_t(cfg.n_kv_heads) * hd;
    std::vector<float> k(seq.size() * row), v(seq.size() * row);
    for (float& x : k) x = uniform(rng, -3, 3);
    for (float& x : v) x = uniform(rng, -3, 3);
    // Expected: the CPU cache's append, with K and V rounded to bf16.
    for (size_t i = 0; i < seq.size(); ++i)
      for (int h = 0; h < cfg.n_kv_heads; ++h) {
        const int slot = cache.append_slot(0, seq[i], h, pos[i]);
        for (int c = 0; c < hd; ++c) {
          cache.keys(0, seq[i], h)[size_t(slot) * hd + c] = float_from_bf16(bf16_from_float(k[i * row + h * hd + c]));
          cache.values(0, seq[i], h)[size_t(slot) * hd + c] = float_from_bf16(bf16_from_float(v[i * row + h * hd + c]));
        }
      }

    cuda::DeviceBuffer<float> dkin(k, "k in"), dvin(v, "v in");
    cuda::DeviceBuffer<int32_t> dseq(seq, "seq"), dpos(pos, "pos");
    cuda::append_kv(dk.get(), dv.get(), dpositions.get(), dlengths.get(), dkin.get(), dvin.get(), dseq.get(), dpos.get(),
                    int(seq.size()), cfg.n_kv_heads, hd, cap);
    cuda::synchronize("append_kv test");
    EXPECT_EQ(dlengths.download(), lengths_image()) << "hd " << hd;
    EXPECT_EQ(dpositions.download(), positions_image()) << "hd " << hd;
    EXPECT_TRUE(dk.download() == device_image(false)) << "keys differ, hd " << hd;
    EXPECT_TRUE(dv.download() == device_image(true)) << "values differ, hd " << hd;
  }
}

TEST(CudaAttentionArgs, UnsupportedHeadDimFailsClearly) {
  // Checked before any device call, so this runs without a GPU too.
  try {
    cuda::attention(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 2, 40, 16, nullptr);
    FAIL() << "no exception";
  } catch (const RuntimeFailure& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim 40 unsupported"), std::string::npos) << e.what();
  }
}

// slot_attention's two reductions against the weights cpu::attention_head computes: per-slot
// sums over tokens and query heads (H2O) and, per sequence, the weight on a random half of the
// positions (retained mass; the bitmap built by mark_held_positions from a second cache holding
// those positions).
TEST_F(CudaAttention, SlotWeightsMatchCpu) {
  std::mt19937 rng(77);
  for (int hd : {64, 128})
    for (const Gqa g : kGqa) {
      const int n_heads = g.n_kv * g.group, cap = 700;
      const std::vector<int> lens{1, 129, 650};
      const int n_seqs = int(lens.size());
      HostCache cache(n_seqs, g.n_kv, cap, hd), holder(n_seqs, g.n_kv, cap, hd);
      std::vector<int32_t> seq, pos;
      for (int s = 0; s < n_seqs; ++s) {
        for (int h = 0; h < g.n_kv; ++h) {
          const std::vector<int32_t> p = random_positions(lens[s], lens[s] + 3, rng);
          cache.fill(s, h, p, rng);
          std::vector<int32_t> half(p.begin(), p.begin() + (p.size() + 1) / 2);
          holder.fill(s, h, half, rng);
        }
        seq.push_back(s);  // a decode token per sequence, and a second, earlier one (prefill-like)
        pos.push_back(lens[s] + 2);
        seq.push_back(s);
        pos.push_back(lens[s] / 2);
      }
      const int n = int(seq.size());
      std::vector<float> q(size_t(n) * n_heads * hd);
      for (float& x : q) x = uniform(rng, -1.0f, 1.0f);
      std::vector<float> kf(cache.k.size()), vf(cache.v.size()), out(hd), probs(cap);
      for (size_t i = 0; i < kf.size(); ++i) kf[i] = float_from_bf16(cache.k[i]);
      for (size_t i = 0; i < vf.size(); ++i) vf[i] = float_from_bf16(cache.v[i]);
      std::vector<double> want_scores(cache.positions.size(), 0.0), want_mass(n_seqs, 0.0);
      for (int i = 0; i < n; ++i)
        for (int h = 0; h < n_heads; ++h) {
          const size_t hb = cache.head(seq[i], h / g.group);
          const int len = cache.lengths[hb];
          std::fill(probs.begin(), probs.end(), 0.0f);
          cpu::attention_head(out.data(), probs.data(), q.data() + (size_t(i) * n_heads + h) * hd,
                              kf.data() + hb * cap * hd, vf.data() + hb * cap * hd, cache.positions.data() + hb * cap,
                              len, pos[i], hd);
          const int32_t* held_begin = holder.positions.data() + hb * cap;
          const int32_t* held_end = held_begin + holder.lengths[hb];
          for (int j = 0; j < len; ++j) {
            if (cache.positions[hb * cap + j] > pos[i]) continue;
            want_scores[hb * cap + j] += probs[j];
            if (std::find(held_begin, held_end, cache.positions[hb * cap + j]) != held_end) want_mass[seq[i]] += probs[j];
          }
        }

      cuda::DeviceBuffer<bf16> dk(cache.k, "k");
      cuda::DeviceBuffer<int32_t> dpositions(cache.positions, "positions"), dlengths(cache.lengths, "lengths");
      cuda::DeviceBuffer<int32_t> hpositions(holder.positions, "holder positions"), hlengths(holder.lengths, "holder lengths");
      cuda::DeviceBuffer<int32_t> dseq(seq, "seq"), dpos(pos, "pos");
      cuda::DeviceBuffer<float> dq(q, "q"), dscores(cache.positions.size(), "scores"), dmass(n_seqs, "mass");
      const int words = (cap + 31) / 32;
      cuda::DeviceBuffer<uint32_t> dheld(size_t(n_seqs) * g.n_kv * words, "held");
      dscores.fill(0);
      dmass.fill(0);
      dheld.fill(0xff);  // mark_held_positions must clear it
      cuda::mark_held_positions(dheld.get(), hpositions.get(), hlengths.get(), n_seqs * g.n_kv, cap, words);
      cuda::slot_attention(dq.get(), dk.get(), dpositions.get(), dlengths.get(), dseq.get(), dpos.get(), n, n_heads,
                           g.n_kv, hd, cap, dscores.get(), dheld.get(), words, dmass.get());
      cuda::synchronize("slot_attention test");
      const std::string what = "hd " + std::to_string(hd) + " n_kv " + std::to_string(g.n_kv) + " group " +
                               std::to_string(g.group);
      const std::vector<uint32_t> held = dheld.download();
      for (int s = 0; s < n_seqs; ++s)
        for (int h = 0; h < g.n_kv; ++h) {
          const size_t hb = holder.head(s, h);
          int bits = 0;
          for (int w = 0; w < words; ++w) bits += __builtin_popcount(held[hb * words + w]);
          ASSERT_EQ(bits, holder.lengths[hb]) << what << ": held bits of sequence " << s << " kv head " << h;
          for (int j = 0; j < holder.lengths[hb]; ++j) {
            const int p = holder.positions[hb * cap + j];
            ASSERT_TRUE(held[hb * words + p / 32] >> (p % 32) & 1u) << what << ": position " << p;
          }
        }
      const std::vector<float> got_scores = dscores.download(), got_mass = dmass.download();
      for (size_t j = 0; j < got_scores.size(); ++j)
        ASSERT_NEAR(got_scores[j], want_scores[j], 1e-4 + 1e-3 * want_scores[j]) << what << ": slot score " << j;
      for (int s = 0; s < n_seqs; ++s)
        ASSERT_NEAR(got_mass[s], want_mass[s], 1e-4 + 1e-3 * want_mass[s]) << what << ": mass of sequence " << s;
    }
}

TEST(CudaAttentionArgs, WorkspaceSizedForTheLargestBatchServesEverySmallerOne) {
  // Callers size the workspace once, for their largest batch; decode then runs with n = 1.
  for (int cap : {1, 255, 257, 8200, 131072})
    for (int hd : {64, 128}) {
      size_t prev = 0;
      for (int n = 1; n <= 3000; ++n) {
        const size_t w = cuda::attention_workspace_floats(n, 32, hd, cap);
        ASSERT_GE(w, prev) << "n " << n << " capacity " << cap;
        prev = w;
      }
      EXPECT_LE(prev, size_t(1024) * 32 * (hd + 2)) << "capacity " << cap;  // a few MiB at most
    }
  EXPECT_EQ(cuda::attention_workspace_floats(1, 32, 128, 256), 0u);  // one span: no split
}

#else

TEST(CudaAttention, BuiltWithoutCuda) { GTEST_SKIP() << "this build has no CUDA backend (nvcc not found at configure time)"; }

#endif

}  // namespace
}  // namespace kvb

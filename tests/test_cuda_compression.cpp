// The CUDA compression ops (kernels/cuda/compression_cuda.hpp) against the CPU ops
// (kernels/cpu/compression_cpu.hpp) through their one interface (kernels/compression_ops.hpp): a
// table of events -- every scoring op, both views, every kind of pin, groups of one segment, of a
// KV head's layers and of everything, several sequences at different times, awkward lengths (one
// above the shared-memory sort), tied scores -- each run on one random cache held twice, fp32 on
// the host and bf16 on the device with the same values. Compared: the group scores after scoring
// (within 1e-4 of the group's score spread), the kept positions (exactly wherever the CPU's scores
// leave a gap at the cut wider than that tolerance, and always where the scores are the same
// inputs: H2O, streaming), and the compacted caches slot for slot where the kept sets agree.
// Skips where no GPU answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/kv_cache.hpp"
#include "kernels/bf16.hpp"
#include "kernels/compression_ops.hpp"
#include "kernels/cpu/compression_cpu.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "engine/cuda_layout.hpp"
#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/device_buffer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#endif

namespace kvb {
namespace {

#ifdef KVBENCH_HAVE_CUDA

class CudaCompression : public ::kvb::test::GpuTest {};

enum class Scoring { Tri, Window, SlotScores, None };
enum class Grouping { PerSegment, PerKvHead, Global };

struct EventCase {
  std::string name;
  Scoring scoring;
  Grouping grouping = Grouping::PerSegment;
  int layers = 2, kv_heads = 2, group = 2, head_dim = 16;
  std::vector<int> lengths;  // per sequence: every (layer, KV head) holds this many slots
  int evict = 16;            // slots each group evicts (keep = length - evict, at least the pins)
  // Pins, per group: the prompt (positions below), the recent window (positions from processed -
  // recent), and rank pins.
  int prompt = 0, recent = 0, oldest = 0, newest = 0;
  // TriAttention: effective queries per head (0: norm term only), pairing, layer reduction, and
  // how many coefficient tables fit at once (1: a pass per distinct time).
  int n_u = 1;
  bool interleaved = false;
  GroupReduce reduce = GroupReduce::Max;
  int coefficient_rows = 4;
  // SnapKV / R-KV.
  int window = 8, radius = 3;
  bool redundancy = false;
  bool tied_scores = false;  // slot scores drawn from a handful of values
  int sinks = 0;             // shift_sinks after the compaction
};

const std::vector<EventCase>& cases() {
  static const std::vector<EventCase> c = [] {
    std::vector<EventCase> v;
    EventCase tri{"tri per layer-head", Scoring::Tri};
    tri.lengths = {45, 200, 1000};
    tri.prompt = 5;
    v.push_back(tri);
    EventCase per_head = tri;
    per_head.name = "tri per KV head, mean over layers, max aggregation, interleaved";
    per_head.grouping = Grouping::PerKvHead;
    per_head.reduce = GroupReduce::Mean;
    per_head.n_u = 17;
    per_head.interleaved = true;
    per_head.group = 7;
    v.push_back(per_head);
    EventCase global = tri;
    global.name = "tri global, recent window, one table per pass";
    global.grouping = Grouping::Global;
    global.recent = 6;
    global.coefficient_rows = 1;
    global.lengths = {129, 130, 4097};
    v.push_back(global);
    EventCase norm = tri;
    norm.name = "tri norm term only, head dims 8 and G 1";
    norm.n_u = 0;
    norm.head_dim = 8;
    norm.group = 1;
    norm.lengths = {17, 33};
    norm.evict = 3;
    v.push_back(norm);
    EventCase long_group = tri;
    long_group.name = "tri above the shared-memory sort";
    long_group.layers = 1;
    long_group.kv_heads = 1;
    long_group.lengths = {17000};
    long_group.evict = 128;
    v.push_back(long_group);
    EventCase snap{"snapkv", Scoring::Window};
    snap.lengths = {9 + 16, 300, 2049};
    snap.newest = 8;
    v.push_back(snap);
    EventCase rkv = snap;
    rkv.name = "rkv";
    rkv.redundancy = true;
    rkv.lengths = {40, 257, 1500};
    v.push_back(rkv);
    EventCase snap_g = snap;
    snap_g.name = "snapkv, G 4, radius 0, head dim 128";
    snap_g.group = 4;
    snap_g.radius = 0;
    snap_g.head_dim = 128;
    v.push_back(snap_g);
    EventCase h2o{"h2o with tied scores", Scoring::SlotScores};
    h2o.lengths = {20, 128, 700};
    h2o.tied_scores = true;
    h2o.newest = 2;  // at least; set per group to keep / 2
    v.push_back(h2o);
    EventCase streaming{"streaming, sinks moved on", Scoring::None};
    streaming.lengths = {24, 100};
    streaming.oldest = 4;
    streaming.sinks = 4;
    v.push_back(streaming);
    EventCase nothing = tri;
    nothing.name = "keep everything, and a one-slot group";
    nothing.lengths = {1, 64};
    nothing.evict = 0;
    v.push_back(nothing);
    return v;
  }();
  return c;
}

ModelConfig case_config(const EventCase& k) {
  ModelConfig c;
  c.n_layers = k.layers;
  c.n_kv_heads = k.kv_heads;
  c.n_heads = k.kv_heads * k.group;
  c.head_dim = k.head_dim;
  c.dim = c.n_heads * k.head_dim;
  return c;
}

// The same random cache on both sides, and the event over every sequence.
struct Fixture {
  EventCase k;
  ModelConfig config;
  KvCache cpu;
  CompressionEvent event;
  std::vector<int32_t> times;
  std::vector<float> coefficients;
  int stride = 0, capacity = 0;

  explicit Fixture(const EventCase& c)
      : k(c),
        config(case_config(c)),
        cpu(config, static_cast<int>(c.lengths.size()), *std::max_element(c.lengths.begin(), c.lengths.end()),
            KvCacheExtras{c.scoring == Scoring::SlotScores, c.scoring == Scoring::Window ? c.window : 0, c.sinks}) {
    capacity = cpu.capacity();
    std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(c.name)));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto bf16_exact = [&] { return float_from_bf16(bf16_from_float(normal(rng))); };
    const KvGeometry& g = cpu.geometry();
    for (int s = 0; s < g.n_seqs; ++s) {
      const int len = c.lengths[s];
      // Distinct positions (some gaps: an evicted past) in an order unrelated to the slots,
      // the same in every (layer, KV head) of the sequence.
      std::vector<int32_t> pos(len);
      std::iota(pos.begin(), pos.end(), 0);
      for (int j = len / 3; j < len; ++j) pos[j] += len / 5;
      std::shuffle(pos.begin() + std::min(len, std::max(c.prompt, c.oldest)), pos.end(), rng);
      for (int l = 0; l < g.n_layers; ++l)
        for (int h = 0; h < g.n_kv_heads; ++h)
          for (int j = 0; j < len; ++j) {
            const int slot = cpu.append_slot(l, s, h, pos[j]);
            for (int d = 0; d < g.head_dim; ++d) {
              cpu.keys(l, s, h)[slot * g.head_dim + d] = bf16_exact();
              cpu.values(l, s, h)[slot * g.head_dim + d] = bf16_exact();
            }
            if (float* sc = cpu.slot_scores(l, s, h))
              sc[slot] = c.tied_scores ? float(rng() % 4) : std::uniform_real_distribution<float>(0, 5)(rng);
          }
    }
    if (g.window > 0) {
      std::vector<float> q(size_t(config.n_heads) * g.head_dim);
      for (int s = 0; s < g.n_seqs; ++s)
        for (int l = 0; l < g.n_layers; ++l)
          for (int w = 0; w < g.window; ++w) {
            for (float& x : q) x = normal(rng);
            test::record_window_query(cpu, l, s, w, q.data());
          }
    }
    build_event();
    if (c.scoring == Scoring::Tri) {
      stride = std::max(c.n_u, 1) * g.head_dim + g.head_dim / 2;
      coefficients.resize(times.size() * g.n_layers * config.n_heads * stride);
      for (size_t i = 0; i < coefficients.size(); ++i)
        coefficients[i] = (i % stride) >= size_t(stride - g.head_dim / 2) ? std::fabs(normal(rng)) : normal(rng);
    }
  }

  void build_event() {
    const KvGeometry& g = cpu.geometry();
    event.clear();
    event.view = k.scoring == Scoring::Window ? SlotView::Positions : SlotView::Slots;
    event.ranks = k.scoring != Scoring::Tri;
    for (int s = 0; s < g.n_seqs; ++s) {
      const int len = k.lengths[s];
      int32_t processed = 0;
      for (int j = 0; j < len; ++j) processed = std::max(processed, cpu.positions(0, s, 0)[j] + 1);
      const int keep = std::max(std::min(len, len - k.evict), std::min(len, k.oldest + k.newest + k.prompt + k.recent + 1));
      PinRule pins;
      if (k.prompt > 0) pins.below = k.prompt;
      if (k.recent > 0) pins.from = processed - k.recent;
      pins.oldest = std::min(k.oldest, keep);
      pins.newest = k.scoring == Scoring::SlotScores ? keep / 2
                    : k.scoring == Scoring::None    ? keep - pins.oldest
                                                    : std::min(k.newest, keep);
      if (k.scoring == Scoring::Window) pins.newest = std::min(k.window, len);
      auto group = [&] { event.add_group(len, keep, pins, processed, uint64_t(s) * 7 + 3); };
      switch (k.grouping) {
        case Grouping::PerSegment:
          for (int l = 0; l < g.n_layers; ++l)
            for (int h = 0; h < g.n_kv_heads; ++h) {
              group();
              event.add_segment(l, s, h);
            }
          break;
        case Grouping::PerKvHead:
          for (int h = 0; h < g.n_kv_heads; ++h) {
            group();
            for (int l = 0; l < g.n_layers; ++l) event.add_segment(l, s, h);
          }
          break;
        case Grouping::Global:
          group();
          for (int l = 0; l < g.n_layers; ++l)
            for (int h = 0; h < g.n_kv_heads; ++h) event.add_segment(l, s, h);
          break;
      }
      times.push_back(processed);
    }
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());
  }

  CompressionShape shape() const {
    const KvGeometry& g = cpu.geometry();
    CompressionShape s;
    s.max_segments = static_cast<int>(event.segments.size());
    s.capacity = capacity;
    s.group = g.group;
    s.head_dim = g.head_dim;
    s.window = g.window;
    s.redundancy = k.redundancy;
    s.coefficient_rows = k.scoring == Scoring::Tri ? k.coefficient_rows : 0;
    s.coefficient_floats_per_row = size_t(g.n_layers) * config.n_heads * stride;
    return s;
  }
};

// What one side made of the event.
struct Outcome {
  std::vector<float> scores;
  std::vector<int32_t> kept;  // positions per segment after compaction
};

Outcome run(CompressionOps& ops, const Fixture& f) {
  Outcome o;
  ops.begin(f.event);
  const KvGeometry& g = f.cpu.geometry();
  switch (f.k.scoring) {
    case Scoring::Tri: {
      if (f.k.grouping != Grouping::PerSegment) ops.check_shared_layout();
      TriEventScoring s;
      s.times = f.times;
      s.coefficients = f.coefficients;
      s.n_u = f.k.n_u;
      s.stride = f.stride;
      s.n_heads = f.config.n_heads;
      s.interleaved = f.k.interleaved;
      s.seed = 11;
      s.reduce = f.k.reduce;
      ops.tri_scores(s);
      break;
    }
    case Scoring::Window: {
      WindowEventScoring s;
      s.window = f.k.window;
      s.pool_radius = f.k.radius;
      s.redundancy = f.k.redundancy;
      ops.window_scores(s);
      break;
    }
    case Scoring::SlotScores: ops.slot_scores(); break;
    case Scoring::None: break;
  }
  ops.read_scores(o.scores);
  ops.select();
  ops.compact();
  if (f.k.sinks > 0) {
    std::vector<int32_t> shift(f.event.groups());
    std::vector<uint8_t> capture(f.event.groups(), 1);
    for (int i = 0; i < f.event.groups(); ++i) shift[i] = 37 * (i + 1);
    std::vector<double> inv_freq(g.head_dim / 2);
    for (int i = 0; i < g.head_dim / 2; ++i) inv_freq[i] = 1.0 / std::pow(10000.0, 2.0 * i / g.head_dim);
    ops.shift_sinks(f.k.sinks, shift, capture, inv_freq, false);
  }
  ops.read_positions(o.kept);
  ops.finish();
  return o;
}

// The device twin of the fixture's CPU cache.
struct DeviceCache {
  cuda::DeviceBuffer<uint8_t> memory;
  KvStorage<bf16> storage;
  std::vector<int32_t> host_lengths;

  explicit DeviceCache(Fixture& f) : memory(cuda_cache_bytes(f.config, f.cpu.n_sequences(), f.capacity, extras(f)), "cache") {
    DeviceCarver carver(memory.get());
    lay_out_cuda_cache(carver, f.config, f.cpu.n_sequences(), f.capacity, extras(f), storage);
    const KvStorage<float> h = f.cpu.storage();
    const KvGeometry& g = h.geometry;
    std::vector<bf16> bits(g.slots() * g.head_dim);
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = bf16_from_float(h.keys[i]);
    cuda::copy_to_device_bytes(storage.keys, bits.data(), bits.size() * sizeof(bf16));
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = bf16_from_float(h.values[i]);
    cuda::copy_to_device_bytes(storage.values, bits.data(), bits.size() * sizeof(bf16));
    cuda::copy_to_device_bytes(storage.positions, h.positions, g.slots() * sizeof(int32_t));
    cuda::copy_to_device_bytes(storage.lengths, h.lengths, g.heads() * sizeof(int32_t));
    if (h.slot_scores) cuda::copy_to_device_bytes(storage.slot_scores, h.slot_scores, g.slots() * sizeof(float));
    if (h.window_queries) cuda::copy_to_device_bytes(storage.window_queries, h.window_queries, g.window_floats() * sizeof(float));
    host_lengths.assign(h.lengths, h.lengths + g.heads());
    storage.host_lengths = host_lengths.data();
  }
  static KvCacheExtras extras(const Fixture& f) {
    return KvCacheExtras{f.k.scoring == Scoring::SlotScores, f.cpu.geometry().window, f.k.sinks};
  }
};

struct DeviceScratch {
  cuda::DeviceBuffer<uint8_t> memory;
  CompressionScratch scratch;
  explicit DeviceScratch(const CompressionShape& shape) : memory(bytes(shape), "scratch") {
    DeviceCarver carver(memory.get());
    lay_out_compression_scratch(carver, shape, scratch);
  }
  static size_t bytes(const CompressionShape& shape) {
    DeviceCarver counter;
    CompressionScratch s;
    lay_out_compression_scratch(counter, shape, s);
    return counter.used();
  }
};

TEST_F(CudaCompression, EveryEventMakesTheCpuDecisions) {
  for (const EventCase& k : cases()) {
    SCOPED_TRACE(k.name);
    Fixture f(k);
    DeviceCache device(f);
    const CompressionShape shape = f.shape();
    DeviceScratch scratch(shape);
    const auto cuda_ops = make_cuda_compression_ops(device.storage, scratch.scratch, shape);
    const Outcome want = run(*make_cpu_compression_ops(f.cpu.storage()), f);
    const Outcome got = run(*cuda_ops, f);
    ASSERT_EQ(got.scores.size(), want.scores.size());
    ASSERT_EQ(got.kept.size(), want.kept.size());
    const bool same_inputs = k.scoring == Scoring::SlotScores || k.scoring == Scoring::None;
    size_t at = 0, kept_at = 0, checked = 0;
    const KvGeometry& g = f.cpu.geometry();
    std::vector<bf16> keys(g.slots() * g.head_dim);
    cuda::copy_to_host_bytes(keys.data(), device.storage.keys, keys.size() * sizeof(bf16));
    std::vector<int32_t> positions(g.slots());
    cuda::copy_to_host_bytes(positions.data(), device.storage.positions, positions.size() * sizeof(int32_t));
    for (int gi = 0; gi < f.event.groups(); ++gi) {
      const int len = f.event.length[gi], keep = f.event.keep[gi];
      // Scores: finite where the CPU's are, within 1e-4 of the group's spread.
      std::vector<float> finite;
      for (int i = 0; i < len; ++i)
        if (std::isfinite(want.scores[at + i])) finite.push_back(want.scores[at + i]);
      const float spread = finite.empty() ? 1.0f
                                          : *std::max_element(finite.begin(), finite.end()) -
                                                *std::min_element(finite.begin(), finite.end());
      const float tol = 1e-4f * std::max(spread, 1e-3f);
      for (int i = 0; i < len; ++i) {
        const float a = want.scores[at + i], b = got.scores[at + i];
        if (std::isfinite(a)) ASSERT_NEAR(b, a, tol) << "group " << gi << " index " << i;
        else ASSERT_EQ(a, b) << "group " << gi << " index " << i;
      }
      // The cut: the CPU's keep-th and next scores among the unpinned (a wide gap: no tie to break).
      std::sort(finite.rbegin(), finite.rend());
      const int free = keep - (len - static_cast<int>(finite.size()));
      const bool clear_cut = free <= 0 || free >= static_cast<int>(finite.size()) || finite[free - 1] - finite[free] > 10 * tol;
      for (int si = f.event.group_begin[gi]; si < f.event.group_begin[gi + 1]; ++si) {
        std::vector<int32_t> a(want.kept.begin() + kept_at, want.kept.begin() + kept_at + keep);
        std::vector<int32_t> b(got.kept.begin() + kept_at, got.kept.begin() + kept_at + keep);
        kept_at += keep;
        if (!clear_cut && !same_inputs) continue;
        ++checked;
        ASSERT_EQ(b, a) << "segment " << si << ": kept positions, slot by slot";
        // The compacted device cache: the CPU's slots, keys rounded the same way.
        const Segment& s = f.event.segments[si];
        const size_t first = g.head(s.layer, s.seq, s.kv_head) * g.capacity;
        for (int j = k.sinks; j < keep; ++j) {
          ASSERT_EQ(positions[first + j], f.cpu.positions(s.layer, s.seq, s.kv_head)[j]);
          for (int d = 0; d < g.head_dim; ++d)
            ASSERT_EQ(keys[(first + j) * g.head_dim + d],
                      bf16_from_float(f.cpu.keys(s.layer, s.seq, s.kv_head)[j * g.head_dim + d]))
                << "segment " << si << " slot " << j;
        }
        for (int j = 0; j < k.sinks; ++j)  // sinks rotated in double on both sides, stored in bf16 and fp32
          for (int d = 0; d < g.head_dim; ++d)
            ASSERT_NEAR(float_from_bf16(keys[(first + j) * g.head_dim + d]), f.cpu.keys(s.layer, s.seq, s.kv_head)[j * g.head_dim + d],
                        1e-2f * (1.0f + std::fabs(f.cpu.keys(s.layer, s.seq, s.kv_head)[j * g.head_dim + d])));
      }
      at += len;
    }
    EXPECT_GT(checked, 0u) << "no kept set could be compared";
    for (size_t i = 0; i < device.host_lengths.size(); ++i) ASSERT_EQ(device.host_lengths[i], f.cpu.storage().lengths[i]);
  }
}

TEST_F(CudaCompression, AMismatchedSharedLayoutFailsOnBothSides) {
  EventCase k = cases()[1];  // per KV head: layers share a kept set
  k.lengths = {50};
  Fixture f(k);
  std::swap(f.cpu.positions(1, 0, 0)[3], f.cpu.positions(1, 0, 0)[4]);  // layer 1 holds the same positions elsewhere
  DeviceCache device(f);
  const CompressionShape shape = f.shape();
  DeviceScratch scratch(shape);
  EXPECT_THROW(run(*make_cpu_compression_ops(f.cpu.storage()), f), RuntimeFailure);
  EXPECT_THROW(run(*make_cuda_compression_ops(device.storage, scratch.scratch, shape), f), RuntimeFailure);
}

#else

TEST(CudaCompression, BuiltWithoutCuda) {
  GTEST_SKIP() << "this build has no CUDA backend (nvcc not found at configure time)";
}

#endif

}  // namespace
}  // namespace kvb

#include <gtest/gtest.h>

#include "engine/decode_loop.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

TEST(SyntheticModels, PresetsHaveTheRealShapes) {
  LoadOptions small;
  small.available_bytes = 1;  // refuse to allocate: only the config is checked
  try {
    load_model("synthetic:qwen3-8b", small);
    FAIL() << "expected a memory refusal";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("synthetic:qwen3-8b"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GiB of memory is available"), std::string::npos) << e.what();
  }
}

TEST(SyntheticModels, MemoryEstimateCountsTheKvCache) {
  LoadOptions o;
  o.available_bytes = fp32_weight_bytes(load_model("synthetic:tiny").config) + 1024;
  EXPECT_NO_THROW(load_model("synthetic:tiny", o));
  o.kv_slots = 100000;  // 100K slots x 4 layers x 32 kv dims x 2 x 4 bytes = 102 MB
  EXPECT_THROW(load_model("synthetic:tiny", o), InputError);
}

TEST(SyntheticModels, SeedChangesWeightsDeterministically) {
  Model a = load_model("synthetic:tiny,seed=1");
  Model b = load_model("synthetic:tiny,seed=1");
  Model c = load_model("synthetic:tiny,seed=2");
  EXPECT_EQ(a.weights.layers[0].wq.data, b.weights.layers[0].wq.data);
  EXPECT_NE(a.weights.layers[0].wq.data, c.weights.layers[0].wq.data);
  EXPECT_TRUE(a.info.synthetic);
  EXPECT_EQ(a.info.name, "synthetic:tiny,seed=1");
}

TEST(SyntheticModels, BatchedDecodeEqualsOneAtATime) {
  // The same sequences decoded in one batch and separately give the same logits and tokens:
  // the KV cache keeps sequences apart.
  Model m = load_model("synthetic:tiny");
  std::vector<DecodeRequest> reqs;
  for (int i = 0; i < 3; ++i) {
    DecodeRequest r;
    r.id = std::to_string(i);
    r.prompt = m.tokenizer->encode(std::string("prompt number ") + char('a' + i) + std::string(i * 5, 'x'));
    r.prompt.insert(r.prompt.begin(), m.tokenizer->bos_id());
    r.max_new_tokens = 10 + i;
    reqs.push_back(r);
  }
  DecodeOptions one, three;
  three.batch_size = 3;
  DecodeOutput a = run_decode(m, reqs, one), b = run_decode(m, reqs, three);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.sequences[i].tokens, b.sequences[i].tokens) << i;
}

TEST(SyntheticModels, IncrementalDecodeEqualsFullPrefill) {
  // Logits of position t from one prefill call equal those from feeding tokens one by one.
  Model m = load_model("synthetic:tiny,seed=3");
  std::vector<int> toks = {256, 10, 200, 31, 99, 5, 7, 250, 1, 2, 3};
  std::vector<float> all = compute_all_logits(m, toks);
  KvCache cache(m.config, 1, static_cast<int>(toks.size()));
  Transformer tf(m, 1);
  std::vector<float> row(m.config.vocab_size);
  for (size_t t = 0; t < toks.size(); ++t) {
    BatchToken bt{0, static_cast<int>(t), toks[t], true};
    tf.forward(std::span(&bt, 1), cache, row.data());
    for (int v = 0; v < m.config.vocab_size; ++v)
      ASSERT_NEAR(row[v], all[t * m.config.vocab_size + v], 1e-4f) << "position " << t << " vocab " << v;
  }
}

}  // namespace
}  // namespace kvb

#include <gtest/gtest.h>

#include "engine/decode_loop.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"
#include "kernels/dtype.hpp"
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
  const ModelConfig tiny = synthetic_preset_config("tiny");
  o.available_bytes = held_weight_bytes(tiny, [](Role, int) { return DType::BF16; }) + 1024;
  EXPECT_NO_THROW(load_model("synthetic:tiny", o));
  o.kv_slots = 100000;  // 100K slots x 4 layers x 32 kv dims x 2 x 4 bytes = 102 MB
  EXPECT_THROW(load_model("synthetic:tiny", o), InputError);
}

TEST(SyntheticModels, SeedChangesWeightsDeterministically) {
  Model a = load_model("synthetic:tiny,seed=1");
  Model b = load_model("synthetic:tiny,seed=1");
  Model c = load_model("synthetic:tiny,seed=2");
  EXPECT_EQ(a.weights.layers[0].wq.bytes, b.weights.layers[0].wq.bytes);
  EXPECT_NE(a.weights.layers[0].wq.bytes, c.weights.layers[0].wq.bytes);
  EXPECT_TRUE(a.info.synthetic);
  EXPECT_EQ(a.info.name, "synthetic:tiny,seed=1,dtype=bf16");
}

TEST(SyntheticModels, DtypeStoresTheMatricesAsAskedAndTheEstimateFollows) {
  const Model f32 = load_model("synthetic:tiny,seed=4,dtype=f32");
  for (DType d : {DType::F32, DType::BF16, DType::F16}) {
    const Model m = load_model(std::string("synthetic:tiny,seed=4,dtype=") + lower_name(d));
    EXPECT_EQ(m.weights.layers[2].w_up.dtype, d);
    EXPECT_EQ(m.weights.token_embedding.dtype, d);
    EXPECT_EQ(m.weights.layers[2].ffn_norm.dtype, DType::F32);  // vectors stay fp32
    EXPECT_EQ(m.weights.matrix_dtypes(), lower_name(d));
    EXPECT_EQ(m.weights.bytes(), held_weight_bytes(m.config, [&](Role, int) { return d; }));
    EXPECT_EQ(m.info.stored_dtype, std::string(to_string(d)) + " (generated)");
    // The same fp32 values, rounded to the type (to nearest even).
    const std::vector<float> wide = to_f32(f32.weights.layers[2].w_up), got = to_f32(m.weights.layers[2].w_up);
    ASSERT_EQ(got.size(), wide.size());
    for (size_t i = 0; i < got.size(); ++i) {
      uint8_t stored[4];
      quantize(stored, d, &wide[i], 1);
      float expected;
      dequantize(&expected, d, stored, 1);
      ASSERT_EQ(got[i], expected) << lower_name(d) << " element " << i;
    }
  }
  // 2 bytes per weight against 4: the matrices are almost all of a model.
  const uint64_t bf16 = load_model("synthetic:tiny,seed=4").weights.bytes();
  EXPECT_LT(bf16, f32.weights.bytes() * 51 / 100);
}

TEST(SyntheticModels, ABadDtypeIsRefusedNamingTheFlag) {
  for (const char* spec : {"synthetic:tiny,dtype=int4", "synthetic:tiny,dtype=", "synthetic:tiny,dtype=q8_0"}) {
    try {
      load_model(spec);
      FAIL() << spec;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(spec), std::string::npos) << e.what();
    }
  }
  try {  // tiny's ffn_dim of 176 cannot hold Q8_0's blocks of 32
    load_model("synthetic:tiny,dtype=q8_0");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("ffn_dim is 176"), std::string::npos) << e.what();
  }
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

TEST(SyntheticModels, AHalfPrecisionCacheHoldsRoundedKeysAndValues) {
  const Model m = load_model("synthetic:tiny,seed=5");
  const std::vector<int> toks = {256, 10, 200, 31, 99};
  for (DType d : {DType::BF16, DType::F16}) {
    KvCacheExtras extras;
    extras.value_dtype = d;
    KvCache rounded(m.config, 1, 8, extras), plain(m.config, 1, 8);
    Transformer tf(m, 8);
    std::vector<BatchToken> batch;
    for (int i = 0; i < int(toks.size()); ++i) batch.push_back(BatchToken{0, i, toks[i], false});
    tf.forward(batch, rounded, nullptr);
    tf.forward(batch, plain, nullptr);
    int changed = 0;
    for (int l = 0; l < m.config.n_layers; ++l)
      for (int h = 0; h < m.config.n_kv_heads; ++h)
        for (int i = 0; i < int(toks.size()) * m.config.head_dim; ++i) {
          const float k = rounded.keys(l, 0, h)[i];
          float again = k;
          round_to(&again, 1, d);
          ASSERT_EQ(k, again) << lower_name(d) << " layer " << l;  // representable in the type
          changed += k != plain.keys(l, 0, h)[i];
        }
    EXPECT_GT(changed, 0) << lower_name(d);
  }
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

// TriAttention's query statistics measured with the GPU engine's forward pass (`run --stats self`
// on a GPU): the pre-RoPE queries of every token are copied to the host layer by layer
// (ForwardRecording::queries) and averaged there as on the CPU (engine/methods/calibration.cpp).
#include "engine/cuda_calibration.hpp"

#include "util/errors.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <optional>

#include "engine/cuda_transformer.hpp"

namespace kvb {

QueryStats calibrate_query_stats(CudaTransformer& engine, const Model& model, const TokenSequences& sequences,
                                 const std::function<void(const std::string&)>& progress) {
  std::optional<CudaKvCache> cache;
  return calibrate_with(model, sequences, progress,
                        [&](std::span<const BatchToken> batch, bool new_sequence, int longest, QueryObserver& acc) {
                          if (new_sequence) cache.emplace(engine.make_cache(1, longest, 0));  // every slot empty
                          ForwardRecording<CudaKvCache> record;
                          record.queries = &acc;
                          engine.forward(batch, *cache, engine.method_logits(), record);
                        });
}

}  // namespace kvb

#else

namespace kvb {

QueryStats calibrate_query_stats(CudaTransformer&, const Model&, const TokenSequences&,
                                 const std::function<void(const std::string&)>&) {
  fail_runtime("this kvbench was built without the CUDA backend");
}

}  // namespace kvb

#endif  // KVBENCH_HAVE_CUDA

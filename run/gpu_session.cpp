#include "run/gpu_session.hpp"

#include "util/errors.hpp"

#ifdef KVBENCH_HAVE_CUDA

#include <algorithm>

#include <fmt/format.h>

#include "engine/cuda_transformer.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "run/capacity.hpp"
#include "util/byte_size.hpp"

namespace kvb {

namespace {

// What one policy's batch needs of the KV pool, per batch size.
struct CacheNeed {
  std::string name;
  int capacity = 1;            // slots per (layer, sequence, kv-head) of the method's cache
  int reference_capacity = 0;  // the lockstep reference's (0: none)
  KvCacheExtras extras;        // the method's slot scores and query window
  uint64_t bytes(const ModelConfig& c, int n) const {
    return cuda_cache_bytes(c, n, capacity, extras) + (reference_capacity > 0 ? cuda_cache_bytes(c, n, reference_capacity) : 0);
  }
};

// Share of the free device memory kvbench plans to use: the rest is left to the CUDA context's
// growth and what else the process holds.
constexpr double kUsableShare = 0.92;

}  // namespace

struct GpuSession::Impl {
  std::vector<int> batches;
  std::vector<std::string> names;
  std::unique_ptr<CudaTransformer> engine;
  uint64_t pool_bytes = 0, fixed_bytes = 0;
};

GpuSession::GpuSession(const Model& model, const std::vector<DecodeRequest>& requests,
                       const std::vector<PolicyConfig>& policies, const GpuSessionRequest& r)
    : impl_(std::make_unique<Impl>()) {
  const ModelConfig& c = model.config;
  cuda::select_device(r.device_index);
  std::vector<CacheNeed> needs;
  int max_capacity = 1;
  for (const PolicyConfig& p : policies) {
    CacheNeed need;
    need.name = run_name(p);
    need.extras = cache_extras(p);
    const bool lockstep = r.mode == RunMode::Replay && traits(p.method).budgeted;
    for (const DecodeRequest& q : requests) {
      const int prompt = static_cast<int>(q.prompt.size());
      const int steps = r.mode == RunMode::Generate || q.forced.empty() ? q.max_new_tokens : static_cast<int>(q.forced.size());
      need.capacity = std::max(need.capacity, cache_capacity(p, prompt, prompt + steps));
      if (lockstep) need.reference_capacity = std::max(need.reference_capacity, prompt + steps);
    }
    max_capacity = std::max({max_capacity, need.capacity, need.reference_capacity});
    needs.push_back(need);
    impl_->names.push_back(need.name);
  }
  // Throughput fills its batch (items repeat); other modes have no more sequences than items.
  const int items = static_cast<int>(requests.size());
  auto cap_to_items = [&](int n) { return r.mode == RunMode::Throughput ? n : std::min(n, items); };
  const bool tied = CudaTransformer::tied(model);
  auto fixed_bytes = [&](int rows) {
    return engine_fixed_bytes(c, tied, engine_shape_for(c, policies, rows, max_capacity, r.prefill_chunk));
  };
  impl_->batches.assign(needs.size(), 1);
  if (r.batch > 0) {
    for (size_t i = 0; i < needs.size(); ++i) impl_->batches[i] = std::max(1, cap_to_items(r.batch));
  } else {
    size_t free_bytes = 0, total = 0;
    cuda::memory_info(&free_bytes, &total);
    const double usable = kUsableShare * double(free_bytes);
    int rows = 1;
    for (int pass = 0; pass < 3; ++pass) {  // the workspace grows with the batch: settle it
      const double pool = usable - double(fixed_bytes(rows));
      for (size_t i = 0; i < needs.size(); ++i) {
        const double per_sequence = double(needs[i].bytes(c, 1));
        int n = pool > 0 ? static_cast<int>(std::min(pool / per_sequence, 1e6)) : 0;
        while (n > 0 && double(needs[i].bytes(c, n)) > pool) --n;
        if (n < 1)
          fail_runtime("CUDA out of memory planning --batch auto: one sequence of {} needs {} of KV cache, {} free after "
                       "weights and workspace ({} free on the GPU)",
                       needs[i].name, human_bytes(needs[i].bytes(c, 1)), human_bytes(std::max(pool, 0.0)),
                       human_bytes(free_bytes));
        impl_->batches[i] = cap_to_items(n);
      }
      rows = *std::max_element(impl_->batches.begin(), impl_->batches.end());
    }
  }
  CudaEngineShape shape =
      engine_shape_for(c, policies, *std::max_element(impl_->batches.begin(), impl_->batches.end()), max_capacity,
                       r.prefill_chunk);
  for (size_t i = 0; i < needs.size(); ++i) shape.kv_pool_bytes = std::max(shape.kv_pool_bytes, needs[i].bytes(c, impl_->batches[i]));
  impl_->pool_bytes = shape.kv_pool_bytes;
  impl_->engine = std::make_unique<CudaTransformer>(model, shape);
  impl_->fixed_bytes = impl_->engine->device_bytes() - shape.kv_pool_bytes;
}

GpuSession::~GpuSession() = default;

int GpuSession::batch_for(size_t i) const { return impl_->batches.at(i); }
CudaTransformer* GpuSession::engine() const { return impl_->engine.get(); }
uint64_t GpuSession::weight_bytes() const { return impl_->engine->weight_bytes(); }
std::string GpuSession::stored_dtypes() const { return impl_->engine->stored_dtypes(); }
double GpuSession::weight_seconds() const { return impl_->engine->weight_seconds(); }

std::string GpuSession::summary() const {
  std::string batches;
  for (size_t i = 0; i < impl_->names.size(); ++i)
    batches += fmt::format("{}{} {}", i ? ", " : "", impl_->names[i], impl_->batches[i]);
  return fmt::format("GPU engine: {} (weights and workspace {}, KV pool {}); batch: {}",
                     human_bytes(impl_->fixed_bytes + impl_->pool_bytes), human_bytes(impl_->fixed_bytes),
                     human_bytes(impl_->pool_bytes), batches);
}

}  // namespace kvb

#else

namespace kvb {

struct GpuSession::Impl {};

GpuSession::GpuSession(const Model&, const std::vector<DecodeRequest>&, const std::vector<PolicyConfig>&,
                       const GpuSessionRequest&) {
  fail_runtime("this kvbench was built without the CUDA backend");
}
GpuSession::~GpuSession() = default;
int GpuSession::batch_for(size_t) const { return 1; }
CudaTransformer* GpuSession::engine() const { return nullptr; }
uint64_t GpuSession::weight_bytes() const { return 0; }
std::string GpuSession::stored_dtypes() const { return {}; }
double GpuSession::weight_seconds() const { return 0; }
std::string GpuSession::summary() const { return {}; }

}  // namespace kvb

#endif  // KVBENCH_HAVE_CUDA

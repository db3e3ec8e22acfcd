#pragma once
// The GPU side of one `kvbench run`: picks the device, decides each method's batch (`--batch N`,
// or `--batch auto`: the most sequences whose caches fit in device memory after weights and
// workspace), sizes one engine for every method of the run (engine/cuda_transformer.hpp) and
// builds it once, so the weights are uploaded (or generated) once for all methods and
// repetitions. In a build without CUDA constructing one is a RuntimeFailure.
#include <memory>
#include <string>
#include <vector>

#include "engine/decode_loop.hpp"
#include "engine/model.hpp"

namespace kvb {

class CudaTransformer;

struct GpuSessionRequest {
  int device_index = 0;
  int batch = 1;           // sequences per batch; 0 = auto
  int prefill_chunk = 512;
  RunMode mode = RunMode::Replay;
};

class GpuSession {
 public:
  // `policies` in run order; the caches each needs follow from `requests`.
  GpuSession(const Model& model, const std::vector<DecodeRequest>& requests, const std::vector<PolicyConfig>& policies,
             const GpuSessionRequest& request);
  ~GpuSession();
  GpuSession(const GpuSession&) = delete;
  GpuSession& operator=(const GpuSession&) = delete;

  // Sequences per batch for policies[i].
  int batch_for(size_t policy_index) const;
  CudaTransformer* engine() const;
  // Device bytes of the model's weights as the engine holds them.
  uint64_t weight_bytes() const;
  // The weights' stored types and the seconds it took to put them on the device (CudaTransformer).
  std::string stored_dtypes() const;
  double weight_seconds() const;
  // One line: the device bytes taken and each method's batch.
  std::string summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvb

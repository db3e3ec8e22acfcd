#pragma once
// What the decode loop (engine/decode_loop.cpp) drives on one device: a forward pass, the KV caches
// of a batch of sequences (the method's and, for a lockstep replay, full attention's), the method
// (engine/methods/kv_method.hpp) over the backend's compression ops, and the logits of the last
// forward. The loop owns the schedule, the timers and the outcomes; a backend owns where the
// numbers live. The CPU backend (engine/cpu_decode_backend.cpp) keeps everything in host memory;
// the CUDA backend (engine/cuda_decode_backend.cpp) keeps caches and logits on the device so only
// scalars cross to the host, except where sampling needs a row. Both record in each forward what
// the method's traits ask (engine/forward_recording.hpp).
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/fidelity.hpp"
#include "engine/methods/kv_method.hpp"
#include "engine/model.hpp"
#include "engine/transformer.hpp"

namespace kvb {

class CudaTransformer;

class DecodeBackend {
 public:
  virtual ~DecodeBackend() = default;

  // Fresh caches for a batch of `n_seqs` sequences with `capacity` slots per (layer, sequence,
  // kv-head), and a full-attention reference cache of `reference_capacity` slots (0: none).
  virtual void begin_batch(int n_seqs, int capacity, int reference_capacity) = 0;
  // Row `seq` takes a new sequence: its slots in both caches are emptied and the method's
  // per-sequence state starts over (a row is reused as soon as its sequence ends).
  virtual void begin_sequence(int seq) = 0;

  // The method's forward over `batch`; its logits (one row per token with want_logits, in order)
  // are kept until the next forward.
  virtual void forward(std::span<const BatchToken> batch) = 0;
  // Full attention's forward over the same batch into the reference cache, after the method's and
  // before the method compresses (it measures the retained attention mass).
  virtual void reference_forward(std::span<const BatchToken> batch) = 0;
  // The method after a forward that appended to `rows`, in one event: evicted[i] gets the slots
  // evicted from rows[i] (layers and kv-heads summed); with `kept`, what each compacted row holds.
  virtual void compress(std::span<const RowProgress> rows, std::span<int64_t> evicted, std::vector<KeptEvent>* kept) = 0;

  // Row `row` of the last forward's logits in host memory (vocab floats), for sampling.
  virtual const float* host_logits(int row) = 0;
  // Per row of the last forward: the method against the reference's row (or against itself when
  // there is no reference), with the replayed token targets[row].
  virtual void fidelity(std::span<const int> targets, std::vector<StepFidelity>& out) = 0;
  // Share of full attention's probability on keys the method held, for `seq`'s reference forwards
  // since the last call (NaN when not measured).
  virtual double take_retained_mass(int seq) = 0;

  // KV bytes: held by `seq`'s live slots now, per slot, allocated for the batch, most ever held.
  virtual uint64_t sequence_bytes(int seq) const = 0;
  virtual uint64_t bytes_per_slot() const = 0;
  virtual uint64_t capacity_bytes() const = 0;
  virtual uint64_t peak_bytes() const = 0;
};

// The CPU backend: Transformer + KvCache, any method; K and V rounded to kv_dtype (F32, BF16, F16) as stored.
std::unique_ptr<DecodeBackend> make_cpu_backend(const Model& model, const PolicyConfig& policy, int max_batch_tokens,
                                                DType kv_dtype = DType::F32);

// The CUDA backend over an engine whose weights are already on the device (built only with
// KVBENCH_HAVE_CUDA; elsewhere a RuntimeFailure).
std::unique_ptr<DecodeBackend> make_cuda_backend(CudaTransformer& engine, const PolicyConfig& policy);

}  // namespace kvb

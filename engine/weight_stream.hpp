#pragma once
// A checkpoint's tensors on their way to the CUDA engine without a host copy of the model: each
// checked tensor, still in the file's mapping (LoadOptions::stream_weights), is converted to what
// the engine holds — matrices bf16 [out][in], vectors fp32 — one piece at a time into two staging
// buffers the caller owns (pinned memory for the device), alternating.
//
// emit(piece, offset, bytes) receives each piece in order: `bytes` converted bytes that belong at
// byte `offset` of the device tensor. It may start an asynchronous copy of `piece` and return, but
// before returning it must make sure the previous piece (in the other buffer, which is filled next)
// has been consumed. Matrix pieces are whole rows, vector pieces whole Q8_0 blocks when stored so;
// a buffer must hold at least one (RuntimeFailure otherwise).
#include <cstdint>
#include <functional>
#include <span>

#include "engine/weights.hpp"

namespace kvb {

using StagedPiece = std::function<void(const uint8_t* piece, uint64_t offset, uint64_t bytes)>;

void stage_for_device(const RawTensor& raw, const std::vector<int64_t>& shape, std::span<uint8_t> buffer_a,
                      std::span<uint8_t> buffer_b, const StagedPiece& emit);

// Bytes the engine holds for a tensor of `shape`: 2 per element of a matrix, 4 of a vector.
uint64_t device_tensor_bytes(const std::vector<int64_t>& shape);

}  // namespace kvb

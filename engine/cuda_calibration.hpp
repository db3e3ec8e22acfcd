#pragma once
// calibrate_query_stats on the GPU engine: the same statistics, measured with the device's bf16
// forward pass instead of the CPU's fp32 one. The engine must hold one sequence of the longest
// sequence's length (capacity and KV pool) and 512 tokens per forward.
#include <functional>
#include <string>

#include "engine/methods/calibration.hpp"

namespace kvb {

class CudaTransformer;

QueryStats calibrate_query_stats(CudaTransformer& engine, const Model& model, const TokenSequences& sequences,
                                 const std::function<void(const std::string&)>& progress = {});

}  // namespace kvb

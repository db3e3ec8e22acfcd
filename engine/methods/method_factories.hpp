#pragma once
// The methods' constructors, for make_method (engine/methods/kv_method.cpp) alone.
#include <memory>

#include "engine/methods/kv_method.hpp"

namespace kvb {

std::unique_ptr<KvMethod> make_triattention_method(const PolicyConfig& config, const ModelConfig& model);
std::unique_ptr<KvMethod> make_window_method(const PolicyConfig& config);
std::unique_ptr<KvMethod> make_streaming_method(const PolicyConfig& config, const ModelConfig& model);
std::unique_ptr<KvMethod> make_h2o_method(const PolicyConfig& config);

}  // namespace kvb

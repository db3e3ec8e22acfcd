// TEMPORARY placeholder.
#include "engine/model.hpp"
#include "util/errors.hpp"
namespace kvb {
Model load_synthetic(const std::string& spec, const LoadOptions&) { fail_input("--model {}: not implemented yet", spec); }
}  // namespace kvb

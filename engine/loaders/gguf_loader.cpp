// TEMPORARY placeholder while the GGUF loader is written (replaced in this same series of commits).
#include "engine/model.hpp"
#include "util/errors.hpp"
namespace kvb {
Model load_gguf(const std::string& path, const LoadOptions&) { fail_input("{}: GGUF loading is not implemented yet", path); }
}  // namespace kvb

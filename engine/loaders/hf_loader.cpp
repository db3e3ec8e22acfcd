// TEMPORARY placeholder while the Hugging Face loader is written.
#include "engine/model.hpp"
#include "util/errors.hpp"
namespace kvb {
Model load_hf_dir(const std::string& dir, const LoadOptions&) { fail_input("{}: Hugging Face folders are not implemented yet", dir); }
}  // namespace kvb

#include "engine/bundled_models.hpp"

#include <cstdlib>
#include <filesystem>

#include "util/errors.hpp"
#include "util/quote.hpp"

namespace kvb {

namespace fs = std::filesystem;

std::string resolve_model_spec(const std::string& spec) {
  constexpr std::string_view kPrefix = "builtin:";
  if (!spec.starts_with(kPrefix)) return spec;
  const std::string name = spec.substr(kPrefix.size());
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    fail_input("--model {}: not a bundled model name", quote(spec));
  const char* env = std::getenv("KVBENCH_MODELS_DIR");
  const fs::path root = env && *env ? fs::path(env) : fs::path(KVBENCH_SOURCE_DIR) / "models";
  const fs::path dir = root / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    fail_input("--model {}: the bundled model folder {} is missing (set KVBENCH_MODELS_DIR to the folder holding it)",
               spec, quote(dir.string()));
  return dir.string();
}

std::string model_default_workload(const std::string& spec) {
  const std::string resolved = resolve_model_spec(spec);
  std::error_code ec;
  if (!fs::is_directory(resolved, ec)) return "";
  const fs::path w = fs::path(resolved) / "workload.jsonl";
  return fs::is_regular_file(w, ec) ? w.string() : "";
}

}  // namespace kvb

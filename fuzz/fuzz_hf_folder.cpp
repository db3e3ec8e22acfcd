// A Hugging Face folder's JSON files: the input is split at lines "--8<--" into config.json,
// model.safetensors.index.json, generation_config.json and tokenizer_config.json (a missing part
// leaves that file out). Loaded without weights (config, generation config, chat template), then
// with them: the index is parsed and its shards looked for.
#include <filesystem>
#include <vector>

#include "engine/model.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  const std::string_view input = kvb::fuzz::as_text(data, size);
  const std::string dir = kvb::fuzz::scratch_dir() + "/hf";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directory(dir);
  const char* names[] = {"config.json", "model.safetensors.index.json", "generation_config.json",
                         "tokenizer_config.json"};
  size_t at = 0;
  for (const char* name : names) {
    if (at > input.size()) break;
    const size_t cut = input.find("\n--8<--\n", at);
    const std::string_view part = input.substr(at, cut == std::string_view::npos ? std::string_view::npos : cut - at);
    kvb::fuzz::scratch_file(std::string("hf/") + name, part);
    at = cut == std::string_view::npos ? input.size() + 1 : cut + 8;
  }
  kvb::LoadOptions options;
  options.hash_files = false;
  options.available_bytes = uint64_t(1) << 30;
  options.skip_weights = true;
  kvb::fuzz::expect_clean("", [&] { (void)kvb::load_hf_dir(dir, options); });
  options.skip_weights = false;
  kvb::fuzz::expect_clean("", [&] { (void)kvb::load_hf_dir(dir, options); });
  return 0;
}

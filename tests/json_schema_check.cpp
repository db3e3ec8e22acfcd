#include "tests/json_schema_check.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace kvb::test {

nlohmann::json load_schema(const std::string& name) {
  const std::filesystem::path path = std::filesystem::path(KVBENCH_SOURCE_DIR) / "docs" / "schemas" / name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(in);
}

}  // namespace kvb::test

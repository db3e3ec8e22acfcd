#include "reports/json_file.hpp"


namespace kvb {

void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& doc) {
  // Decoded text can hold invalid UTF-8 (a byte-level token cut mid-character): replace, don't fail.
  write_file_atomic(path, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace kvb

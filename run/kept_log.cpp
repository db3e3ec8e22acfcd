#include "run/kept_log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "util/errors.hpp"

namespace kvb {

KeptLog::KeptLog(std::string path) : path_(std::move(path)), partial_(path_ + ".partial") {
  file_ = std::fopen(partial_.c_str(), "w");
  if (!file_) fail_input("--dump-kept {}: cannot write {}: {}", path_, partial_, std::strerror(errno));
}

KeptLog::~KeptLog() {
  if (!file_) return;  // finish() never ran: the run ended on bad input, with nothing measured
  std::fclose(file_);
  std::remove(partial_.c_str());
}

void KeptLog::write(const std::string& run, const PolicyConfig& policy, const std::string& sequence,
                    const KeptEvent& event) {
  nlohmann::json kept = nlohmann::json::array();
  for (size_t i = 0; i < event.segments.size(); ++i) {
    std::vector<int32_t> positions = event.positions[i];
    std::sort(positions.begin(), positions.end());
    kept.push_back({{"layer", event.segments[i].layer}, {"kv_head", event.segments[i].kv_head}, {"positions", positions}});
  }
  const nlohmann::json line = {{"run", run},
                               {"method", std::string(method_name(policy.method))},
                               {"budget", policy.budget},
                               {"sequence", sequence},
                               {"event", event.event},
                               {"processed", event.processed},
                               {"kept", std::move(kept)}};
  const std::string text = line.dump() + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    fail_runtime("--dump-kept {}: write failed: {}", partial_, std::strerror(errno));
}

void KeptLog::finish() {
  if (!file_) return;
  const bool ok = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok) fail_runtime("--dump-kept {}: write failed: {}", partial_, std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(partial_, path_, ec);
  if (ec) fail_runtime("--dump-kept {}: cannot move {} into place: {}", path_, partial_, ec.message());
}

}  // namespace kvb

#pragma once
// A time (by default the current one) as text (strftime format), in UTC or local time.
#include <chrono>
#include <ctime>
#include <string>

namespace kvb {

inline std::string format_now(const char* strftime_format, bool utc,
                              std::chrono::system_clock::time_point at = std::chrono::system_clock::now()) {
  std::time_t now = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  if (utc) gmtime_r(&now, &tm);
  else localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, strftime_format, &tm);
  return buf;
}

}  // namespace kvb

#pragma once
// The current time as text (strftime format), in UTC or local time.
#include <ctime>
#include <string>

namespace kvb {

inline std::string format_now(const char* strftime_format, bool utc) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  if (utc) gmtime_r(&now, &tm);
  else localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, strftime_format, &tm);
  return buf;
}

}  // namespace kvb

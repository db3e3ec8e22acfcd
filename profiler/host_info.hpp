#pragma once
// Facts about the machine a result was measured on.
#include <cstdint>
#include <string>

namespace kvb {

struct HostInfo {
  std::string cpu_model;
  int logical_cores = 0;
  uint64_t memory_bytes = 0;
  std::string os;        // kernel name and release
  std::string hostname;
};

HostInfo query_host_info();
uint64_t host_available_memory_bytes();  // MemAvailable; 0 when unknown
uint64_t peak_rss_bytes();               // of this process so far

}  // namespace kvb

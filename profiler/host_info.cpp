#include "profiler/host_info.hpp"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace kvb {

namespace {

// Value of `key` in a /proc file of "key: value" lines; empty when absent.
std::string proc_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return {};
}

uint64_t meminfo_bytes(const std::string& key) {
  std::string v = proc_field("/proc/meminfo", key);
  if (v.empty()) return 0;
  return std::stoull(v) * 1024;  // values are in kB
}

}  // namespace

HostInfo query_host_info() {
  HostInfo h;
  h.cpu_model = proc_field("/proc/cpuinfo", "model name");
  if (h.cpu_model.empty()) h.cpu_model = "unknown";
  h.logical_cores = static_cast<int>(std::thread::hardware_concurrency());
  h.memory_bytes = meminfo_bytes("MemTotal");
  struct utsname u {};
  if (uname(&u) == 0) {
    h.os = std::string(u.sysname) + " " + u.release;
    h.hostname = u.nodename;
  }
  return h;
}

uint64_t host_available_memory_bytes() { return meminfo_bytes("MemAvailable"); }

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports kB
}

}  // namespace kvb

#include "util/file_digest.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "util/atomic_file.hpp"
#include "util/errors.hpp"
#include "util/json_fields.hpp"
#include "util/mapped_file.hpp"
#include "util/sha256.hpp"

namespace kvb {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxCacheFileBytes = 16ull << 20;  // ~1,024 entries take ~300 KB

// What must be unchanged for a remembered digest to hold.
json identity(const struct stat& st) {
  return {{"dev", uint64_t(st.st_dev)},
          {"ino", uint64_t(st.st_ino)},
          {"size", uint64_t(st.st_size)},
          {"mtime_ns", int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec},
          {"ctime_ns", int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec}};
}

std::string compute_sha256(const std::string& path) {
  MappedFile file(path);
  Sha256 h;
  constexpr size_t kChunk = 1 << 24;
  for (size_t off = 0; off < file.size(); off += kChunk) h.update(file.data() + off, std::min(kChunk, file.size() - off));
  return h.hex_digest();
}

// The cache's "files" object; empty when there is none or it is not a cache kvbench wrote.
json read_cache(const fs::path& cache) {
  std::error_code ec;
  const auto bytes = fs::file_size(cache, ec);
  if (ec || bytes > kMaxCacheFileBytes) return json::object();
  try {
    json doc = read_json_file(cache.string());
    if (doc.is_object() && doc.value("kvbench_sha256_cache", 0) == 1 && doc.contains("files") && doc["files"].is_object())
      return std::move(doc["files"]);
  } catch (const std::exception&) {  // unreadable or corrupt: rebuilt from scratch
  }
  return json::object();
}

void write_cache(const fs::path& cache, json files) {
  if (files.size() > kMaxDigestCacheEntries) {  // drop the least recently used
    std::vector<std::pair<int64_t, std::string>> by_use;
    for (const auto& [key, entry] : files.items())
      by_use.emplace_back(entry.is_object() ? entry.value("used", int64_t(0)) : 0, key);
    std::sort(by_use.begin(), by_use.end());
    for (size_t i = 0; i + kMaxDigestCacheEntries < by_use.size(); ++i) files.erase(by_use[i].second);
  }
  try {
    std::error_code ec;
    fs::create_directories(cache.parent_path(), ec);
    write_file_atomic(cache, json{{"kvbench_sha256_cache", 1}, {"files", std::move(files)}}.dump(1) + "\n");
  } catch (const std::exception&) {  // a read-only home or a full disk: the digest is still right
  }
}

}  // namespace

fs::path default_digest_cache() {
  if (const char* dir = std::getenv("KVBENCH_CACHE_DIR"); dir && *dir) return fs::path(dir) / "sha256.json";
  if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir && *dir) return fs::path(dir) / "kvbench" / "sha256.json";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "kvbench" / "sha256.json";
  return {};
}

FileDigest file_sha256(const std::string& path, const fs::path& cache, uint64_t min_cached_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_size) < min_cached_bytes ||
      cache.empty())
    return {compute_sha256(path), false};
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  const std::string key = (ec ? fs::path(path) : absolute.lexically_normal()).string();
  const json id = identity(st);

  json files = read_cache(cache);
  const json* entry = files.contains(key) ? &files[key] : nullptr;
  FileDigest d;
  if (entry && entry->is_object() && entry->value("identity", json()) == id && entry->contains("sha256") &&
      (*entry)["sha256"].is_string() && (*entry)["sha256"].get<std::string>().size() == 64) {
    d = {(*entry)["sha256"].get<std::string>(), true};
  } else {
    d = {compute_sha256(path), false};
  }
  files[key] = {{"identity", id}, {"sha256", d.sha256}, {"used", int64_t(std::time(nullptr))}};
  write_cache(cache, std::move(files));
  return d;
}

}  // namespace kvb

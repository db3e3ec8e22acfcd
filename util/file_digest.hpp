#pragma once
// The SHA-256 of a file, remembered between runs: every run records its model files' digests,
// and hashing a 16 GB checkpoint takes ~14 s even with SHA-NI (docs/perf-notes.md, "Hashing").
//
// The cache is one JSON file (default_digest_cache(): $KVBENCH_CACHE_DIR/sha256.json, else
// $XDG_CACHE_HOME/kvbench/sha256.json, else ~/.cache/kvbench/sha256.json) mapping a file's
// absolute path to its digest and identity: device, inode, size, and modification and
// status-change times in nanoseconds. A digest is reused only when all five match; any write to
// the file, a replacement, or restoring its mtime (which moves ctime) makes it hashed again.
// Only files of at least `min_cached_bytes` are cached; small ones are cheaper to hash.
//
// The cache is advisory: when it is missing, unreadable, corrupt or cannot be written, the file is
// hashed and nothing fails. At most kMaxDigestCacheEntries entries, least recently used dropped.
// Errors: InputError naming the file when it cannot be read.
#include <cstdint>
#include <filesystem>
#include <string>

namespace kvb {

struct FileDigest {
  std::string sha256;       // hex
  bool from_cache = false;  // reused from the cache, not computed now
};

inline constexpr uint64_t kMinCachedDigestBytes = 64ull << 20;
inline constexpr size_t kMaxDigestCacheEntries = 1024;

// Empty when no cache folder can be named (no HOME and neither variable set).
std::filesystem::path default_digest_cache();

FileDigest file_sha256(const std::string& path, const std::filesystem::path& cache = default_digest_cache(),
                       uint64_t min_cached_bytes = kMinCachedDigestBytes);

}  // namespace kvb

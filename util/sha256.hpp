#pragma once
// SHA-256 (FIPS 180-4), for identifying model and workload files in result files. Computed by
// OpenSSL's libcrypto, which uses the CPU's SHA extensions (SHA-NI, ARMv8 SHA2) where present:
// checkpoints are many GB and every run hashes them (docs/perf-notes.md, "Hashing").
#include <cstddef>
#include <string>

namespace kvb {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t bytes);
  std::string hex_digest();  // finalises; call once

 private:
  struct State;  // OpenSSL's digest context, kept out of this header
  State* state_;
};

std::string sha256_hex(const void* data, size_t bytes);

}  // namespace kvb

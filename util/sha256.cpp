#include "util/sha256.hpp"

#include <openssl/evp.h>

#include <new>
#include <stdexcept>

namespace kvb {

struct Sha256::State {
  EVP_MD_CTX* ctx;
};

Sha256::Sha256() : state_(new State{EVP_MD_CTX_new()}) {
  if (!state_->ctx || EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(state_->ctx);
    delete state_;
    throw std::runtime_error("sha256: OpenSSL could not start a SHA-256 digest");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(state_->ctx);
  delete state_;
}

void Sha256::update(const void* data, size_t bytes) {
  if (bytes > 0 && EVP_DigestUpdate(state_->ctx, data, bytes) != 1)
    throw std::runtime_error("sha256: OpenSSL digest update failed");
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(state_->ctx, digest, &length) != 1 || length != 32)
    throw std::runtime_error("sha256: OpenSSL digest final failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(64, '0');
  for (unsigned i = 0; i < 32; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

std::string sha256_hex(const void* data, size_t bytes) {
  Sha256 h;
  h.update(data, bytes);
  return h.hex_digest();
}

}  // namespace kvb

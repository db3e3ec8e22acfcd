// Encoding untrusted text (every prompt a workload holds): byte-level BPE with each pre-tokenizer
// regex and NFC normalisation, and SentencePiece with byte fallback, over small vocabularies built
// here. Besides crashes, sanitizer reports and timeouts (a merge that is not n log n), a finding is
// a broken round trip: decoding what was encoded must give back the (normalised) text, since both
// tokenizers can spell any byte.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "engine/tokenizers/spm_tokenizer.hpp"
#include "fuzz/fuzz_support.hpp"

namespace {

// Words whose merges both tokenizers learn: ASCII, a space prefix, and multi-byte characters.
const std::vector<std::string> kWords = {"the", " the", "ing", " and", "tion", "12", "123", " \n", "caf\u00e9",
                                          "\u4e2d\u6587", "\u00e9t\u00e9", "'s", "  "};

// Every prefix of every word, once each, longer prefixes after shorter ones.
std::vector<std::string> prefixes() {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& word : kWords)
    for (size_t i = 2; i <= word.size(); ++i)
      if (seen.insert(word.substr(0, i)).second) out.push_back(word.substr(0, i));
  return out;
}

// No added tokens: a special token's last byte could compose with a mark after it ("<s>" and
// U+0338), which normalising the whole text would do and Hugging Face's order (cut out added
// tokens, then normalise) does not, and the round trip below normalises the whole text.
std::unique_ptr<kvb::Tokenizer> byte_bpe(kvb::PreTokenizer kind) {
  kvb::ByteBpeSpec spec;
  for (int b = 0; b < 256; ++b) spec.vocab.push_back(kvb::bytes_to_byte_level(std::string(1, char(b))));
  for (const std::string& prefix : prefixes()) {  // each merges the prefix before it with one byte
    const std::string left = kvb::bytes_to_byte_level(prefix.substr(0, prefix.size() - 1));
    const std::string right = kvb::bytes_to_byte_level(prefix.substr(prefix.size() - 1));
    spec.merges.emplace_back(left, right);
    spec.vocab.push_back(left + right);
  }
  spec.pre_tokenizer = kind;
  spec.normalizer = {kvb::UnicodeForm::NFC};
  return kvb::make_byte_bpe_tokenizer(std::move(spec));
}

std::unique_ptr<kvb::Tokenizer> sentencepiece() {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  std::vector<kvb::SpmTokenizer::PieceType> types = {kvb::SpmTokenizer::PieceType::Unknown,
                                                     kvb::SpmTokenizer::PieceType::Control,
                                                     kvb::SpmTokenizer::PieceType::Control};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.push_back(name);
    types.push_back(kvb::SpmTokenizer::PieceType::Byte);
  }
  for (const std::string& piece : prefixes()) {
    pieces.push_back(piece);
    types.push_back(kvb::SpmTokenizer::PieceType::Normal);
  }
  for (const char* single : {" ", "t", "h", "e", "i", "n", "g", "1", "2"}) {
    pieces.push_back(single);
    types.push_back(kvb::SpmTokenizer::PieceType::Normal);
  }
  std::vector<float> scores(pieces.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = float(i % 7) - 3.0f;  // ties on purpose
  return std::make_unique<kvb::SpmTokenizer>(pieces, scores, types, 1, 2, "fuzz-spm");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<kvb::Tokenizer> bpe[] = {byte_bpe(kvb::PreTokenizer::Gpt2),
                                                        byte_bpe(kvb::PreTokenizer::Llama3),
                                                        byte_bpe(kvb::PreTokenizer::Qwen2)};
  static const std::unique_ptr<kvb::Tokenizer> spm = sentencepiece();
  const std::string_view text = kvb::fuzz::as_text(data, size);
  const std::string normalized = kvb::normalize(text, {kvb::UnicodeForm::NFC});
  for (const auto& tok : bpe)
    if (tok->decode(tok->encode(text), true) != normalized) std::abort();
  const std::string spelled = spm->decode(spm->encode(text));
  if (spelled != (text.empty() ? std::string() : " " + std::string(text))) std::abort();
  return 0;
}

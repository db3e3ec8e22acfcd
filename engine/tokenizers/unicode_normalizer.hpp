#pragma once
// Unicode normalisation forms a tokenizer declares (Hugging Face tokenizer.json "normalizer":
// NFC, NFD, NFKC, NFKD, or a "Sequence" of them), applied to text before pre-tokenisation.
// Computed by utf8proc (Unicode 15 tables, Debian's libutf8proc). Qwen tokenizers declare NFC:
// without it, a decomposed "é" (e + U+0301) would encode to different ids than the model saw in
// training.
//
// Bytes that are not valid UTF-8 are kept as they are (byte-level BPE encodes any byte); each
// run of valid UTF-8 between them is normalised on its own. ASCII is left as it is by every form.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvb {

enum class UnicodeForm { NFC, NFD, NFKC, NFKD };

// How many times shorter (in bytes) normalised text can be than the text given, with margin: the
// largest shrink is a composition such as Hangul L+V+T jamo (9 bytes) into one syllable (3 bytes).
// A tokenizer that normalises multiplies its longest token by this when bounding how many tokens
// a text needs (Tokenizer::longest_token_bytes).
inline constexpr size_t kMaxNormalizationShrink = 4;

// The forms applied in order; empty: text is used as it is.
using Normalizer = std::vector<UnicodeForm>;

// Reads tokenizer.json's "normalizer" value (null, one form, or a Sequence of forms). Throws
// InputError naming `file` for any other normaliser: it would change tokens kvbench cannot
// reproduce.
Normalizer parse_normalizer(const nlohmann::json& value, const std::string& file);

// `text` with every form of `normalizer` applied in order.
std::string normalize(std::string_view text, const Normalizer& normalizer);

const char* to_string(UnicodeForm form);

}  // namespace kvb

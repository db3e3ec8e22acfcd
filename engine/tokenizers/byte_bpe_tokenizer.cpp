#include "engine/tokenizers/byte_bpe_tokenizer.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "engine/tokenizers/pair_merge.hpp"
#include "engine/tokenizers/string_index.hpp"
#include "engine/tokenizers/unicode_tables.hpp"
#include "engine/tokenizers/utf8.hpp"
#include "engine/tokenizers/word_level_tokenizer.hpp"
#include "util/errors.hpp"
#include "util/json_fields.hpp"
#include "util/mapped_file.hpp"
#include "util/quote.hpp"

namespace kvb {

namespace {

// ---------------------------------------------------------------------------------------------
// GPT-2's byte <-> character map. Byte-level vocabularies spell every byte as a printable
// character so that tokens are readable strings: printable Latin-1 bytes stand for themselves,
// the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) take U+0100.. in byte order
// (so space is U+0120 'Ġ' and newline U+010A 'Ċ').

struct ByteMap {
  std::array<char32_t, 256> to_char{};
  std::array<int, 0x200> to_byte{};  // indexed by code point; every mapped char is below U+0200

  ByteMap() {
    to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = b;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Appends the raw bytes that a byte-level string stands for; characters outside the map (and
// invalid UTF-8) are kept as they are.
void append_raw_bytes(std::string_view byte_level, std::string& out) {
  const ByteMap& map = byte_map();
  for (size_t i = 0; i < byte_level.size();) {
    const CodePoint c = decode_code_point(byte_level, i);
    const bool valid = c.cp != 0xFFFD || c.len > 1;  // invalid bytes decode as 1-byte U+FFFD
    if (valid && c.cp < map.to_byte.size() && map.to_byte[c.cp] >= 0) out += static_cast<char>(map.to_byte[c.cp]);
    else out.append(byte_level, i, c.len);
    i += c.len;
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers: hand-written matchers equivalent to the regexes (tried at each position, first
// alternative that matches wins, as in a backtracking engine). Every character is covered by
// some alternative, so the pieces tile the text.
//
// Qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//         \s*[\r\n]+|\s+(?!\S)|\s+
// Llama3: the same with \p{N}{1,3}
// GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

class Splitter {
 public:
  Splitter(PreTokenizer kind, std::string_view s) : kind_(kind), s_(s) {}

  // End of the piece that starts at `p` (p < size).
  size_t match(size_t p) const {
    const CodePoint c = at(p);
    if (c.cp == '\'') {
      if (size_t n = contraction(p + 1)) return p + 1 + n;
    }
    return kind_ == PreTokenizer::Gpt2 ? match_gpt2(p, c) : match_llama3_qwen2(p, c);
  }

 private:
  CodePoint at(size_t i) const { return decode_code_point(s_, i); }

  // End of the run of characters of class `cls` starting at i.
  size_t skip(size_t i, UnicodeClass cls) const {
    while (i < s_.size()) {
      const CodePoint c = at(i);
      if (c.cls != cls) break;
      i += c.len;
    }
    return i;
  }

  bool is(size_t i, UnicodeClass cls) const { return i < s_.size() && at(i).cls == cls; }
  static bool is_newline(char32_t cp) { return cp == '\r' || cp == '\n'; }

  // Length of 's 't 're 've 'm 'll 'd after the apostrophe at i-1 (0 when none). GPT-2's regex
  // is case-sensitive; Llama 3's and Qwen2's wrap it in (?i:...).
  size_t contraction(size_t i) const {
    const bool fold = kind_ != PreTokenizer::Gpt2;
    auto ch = [&](size_t k) -> char {
      if (i + k >= s_.size()) return 0;
      char c = s_[i + k];
      return fold && c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
    };
    const char a = ch(0), b = ch(1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 2;
    return 0;
  }

  size_t match_llama3_qwen2(size_t p, const CodePoint& c) const {
    // [^\r\n\p{L}\p{N}]?\p{L}+ : letters, optionally led by one space or punctuation character.
    if (c.cls == UnicodeClass::Letter) return skip(p, UnicodeClass::Letter);
    if (c.cls != UnicodeClass::Number && !is_newline(c.cp) && is(p + c.len, UnicodeClass::Letter))
      return skip(p + c.len, UnicodeClass::Letter);
    // \p{N} (Qwen2: digits one by one) or \p{N}{1,3} (Llama 3: groups of up to three).
    if (c.cls == UnicodeClass::Number) {
      const int max_digits = kind_ == PreTokenizer::Qwen2 ? 1 : 3;
      size_t q = p;
      for (int k = 0; k < max_digits && is(q, UnicodeClass::Number); ++k) q += at(q).len;
      return q;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]* : punctuation run, optionally led by a space, with the newlines after it.
    if (size_t q = p + (c.cp == ' ' ? 1 : 0); is(q, UnicodeClass::Other)) {
      q = skip(q, UnicodeClass::Other);
      while (q < s_.size() && is_newline(static_cast<unsigned char>(s_[q]))) ++q;
      return q;
    }
    return match_space(p, /*newline_alternative=*/true);
  }

  size_t match_gpt2(size_t p, const CodePoint& c) const {
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : a run of one class, optionally led by a space.
    const size_t q = p + (c.cp == ' ' ? 1 : 0);
    if (q < s_.size()) {
      const UnicodeClass cls = at(q).cls;
      if (cls != UnicodeClass::Space) return skip(q, cls);
    }
    return match_space(p, /*newline_alternative=*/false);
  }

  // Whitespace starting at p: \s*[\r\n]+ (Llama 3/Qwen2 only), then \s+(?!\S), then \s+.
  size_t match_space(size_t p, bool newline_alternative) const {
    size_t end = p, last = p, after_newline = 0;
    while (end < s_.size()) {
      const CodePoint w = at(end);
      if (w.cls != UnicodeClass::Space) break;
      last = end;
      end += w.len;
      if (is_newline(w.cp)) after_newline = end;
    }
    // \s*[\r\n]+ backtracks to the last newline of the run: it takes everything up to it.
    if (newline_alternative && after_newline != 0) return after_newline;
    // \s+(?!\S) leaves the run's last space to the word after it (" word" stays one piece);
    // a single space before a non-space falls through to \s+.
    if (end == s_.size() || last == p) return end;
    return last;
  }

  PreTokenizer kind_;
  std::string_view s_;
};

// ---------------------------------------------------------------------------------------------

class ByteBpeTokenizer final : public Tokenizer {
 public:
  explicit ByteBpeTokenizer(ByteBpeSpec spec);

  std::vector<int> encode(std::string_view text) const override;
  std::string decode(const std::vector<int>& ids, bool render_special) const override;
  int vocab_size() const override { return static_cast<int>(bytes_.size()); }
  std::string kind() const override { return "hf-bpe"; }
  bool reads_special_tokens() const override { return true; }  // added tokens are cut out first
  size_t longest_token_bytes() const override {
    return normalizer_.empty() ? longest_token_ : longest_token_ * kMaxNormalizationShrink;
  }

 private:
  enum class TokenType : unsigned char { Unused, Normal, Special, Added };
  struct Merge {
    int rank;
    int id;  // the merged token
  };
  struct Verbatim {
    std::string text;
    int id;
  };

  static uint64_t pair_key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  int byte_token(unsigned char b) const {
    if (byte_token_[b] < 0) fail_input("{}: byte 0x{:02X} has no token in the vocabulary", origin_, b);
    return byte_token_[b];
  }
  const Verbatim* match_verbatim(std::string_view text, size_t at) const;
  void encode_ordinary(std::string_view text, std::vector<int>& out) const;
  void encode_piece(std::string_view piece, std::vector<int>& out) const;

  PreTokenizer pre_tokenizer_;
  Normalizer normalizer_;
  bool ignore_merges_;
  std::vector<std::string> bytes_;  // id -> the raw bytes it stands for (special: its text)
  std::vector<TokenType> types_;
  StringIndex index_;  // raw bytes -> id, for regular tokens
  std::array<int, 256> byte_token_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
  std::vector<Verbatim> verbatim_;              // added tokens, longest first
  size_t longest_token_ = 1;                    // bytes of the longest token
  std::string origin_;                          // named in encode-time errors
  std::array<bool, 256> verbatim_first_byte_{};
};

ByteBpeTokenizer::ByteBpeTokenizer(ByteBpeSpec spec)
    : pre_tokenizer_(spec.pre_tokenizer), normalizer_(spec.normalizer), ignore_merges_(spec.ignore_merges),
      origin_(spec.origin.empty() ? "byte-level BPE tokenizer" : spec.origin) {
  bos_id_ = spec.bos_id;
  eos_id_ = spec.eos_id;
  add_bos_ = spec.add_bos;

  size_t size = spec.vocab.size();
  for (const auto* list : {&spec.special_tokens, &spec.added_tokens})
    for (const auto& [text, id] : *list) {
      if (id < 0) fail_input("{}: added token {} has negative id {}", origin_, quote(text), id);
      size = std::max(size, static_cast<size_t>(id) + 1);
    }
  bytes_.resize(size);
  types_.assign(size, TokenType::Unused);

  // Regular tokens, kept as raw bytes: encoding then never needs the byte-level spelling.
  index_.reserve(spec.vocab.size());
  for (size_t id = 0; id < spec.vocab.size(); ++id) {
    if (spec.vocab[id].empty()) continue;  // a hole in the id space
    append_raw_bytes(spec.vocab[id], bytes_[id]);
    types_[id] = TokenType::Normal;
    index_.emplace(bytes_[id], static_cast<int>(id));  // the first id wins for duplicates
  }
  for (int b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    auto it = index_.find(std::string_view(&byte, 1));
    byte_token_[b] = it == index_.end() ? -1 : it->second;
  }

  merges_.reserve(spec.merges.size());
  std::string left_bytes, right_bytes;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const std::string& left = spec.merges[rank].first;  // not a structured binding: clang 14 cannot capture one
    const std::string& right = spec.merges[rank].second;
    auto id_of = [&](const std::string& bytes) {
      auto it = index_.find(bytes);
      if (it == index_.end())
        fail_input("{}: merge {} ({} {}) needs {}, which is not in the vocabulary", origin_, rank, quote(left),
                   quote(right), quote(bytes_to_byte_level(bytes)));
      return it->second;
    };
    left_bytes.clear();
    right_bytes.clear();
    append_raw_bytes(left, left_bytes);
    append_raw_bytes(right, right_bytes);
    const int left_id = id_of(left_bytes), right_id = id_of(right_bytes);
    left_bytes += right_bytes;
    // A pair listed twice keeps its first (best) rank.
    merges_.emplace(pair_key(left_id, right_id), Merge{static_cast<int>(rank), id_of(left_bytes)});
  }

  for (const auto& [text, id] : spec.special_tokens) {
    bytes_[id] = text;
    types_[id] = TokenType::Special;
  }
  for (const auto& [text, id] : spec.added_tokens) {
    bytes_[id] = text;
    types_[id] = TokenType::Added;
  }
  for (const auto* list : {&spec.special_tokens, &spec.added_tokens})
    for (const auto& [text, id] : *list) {
      if (text.empty()) continue;
      verbatim_.push_back({text, id});
      verbatim_first_byte_[static_cast<unsigned char>(text[0])] = true;
    }
  std::stable_sort(verbatim_.begin(), verbatim_.end(),
                   [](const Verbatim& a, const Verbatim& b) { return a.text.size() > b.text.size(); });
  for (const std::string& b : bytes_) longest_token_ = std::max(longest_token_, b.size());
}

const ByteBpeTokenizer::Verbatim* ByteBpeTokenizer::match_verbatim(std::string_view text, size_t at) const {
  if (!verbatim_first_byte_[static_cast<unsigned char>(text[at])]) return nullptr;
  const std::string_view rest = text.substr(at);
  for (const Verbatim& v : verbatim_)  // longest first, so the first hit is the longest match
    if (rest.starts_with(v.text)) return &v;
  return nullptr;
}

std::vector<int> ByteBpeTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 1);
  size_t start = 0;  // first byte not yet encoded
  for (size_t i = 0; i < text.size();) {
    if (const Verbatim* v = match_verbatim(text, i)) {
      encode_ordinary(text.substr(start, i - start), ids);
      ids.push_back(v->id);
      i += v->text.size();
      start = i;
    } else {
      ++i;
    }
  }
  encode_ordinary(text.substr(start), ids);
  return ids;
}

void ByteBpeTokenizer::encode_ordinary(std::string_view raw, std::vector<int>& out) const {
  // As Hugging Face tokenizers do: special tokens (normalized: false) are cut out of the raw
  // text, the text between them is normalised.
  const std::string normalized = normalizer_.empty() ? std::string() : normalize(raw, normalizer_);
  const std::string_view text = normalizer_.empty() ? raw : std::string_view(normalized);
  const Splitter splitter(pre_tokenizer_, text);
  for (size_t p = 0; p < text.size();) {
    const size_t end = splitter.match(p);
    encode_piece(text.substr(p, end - p), out);
    p = end;
  }
}

void ByteBpeTokenizer::encode_piece(std::string_view piece, std::vector<int>& out) const {
  if (ignore_merges_ || piece.size() == 1) {
    if (auto it = index_.find(piece); it != index_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // One symbol per byte; the lowest-ranked pair merges first and, among equal ranks, the leftmost
  // (engine/tokenizers/pair_merge.hpp).
  const size_t from = out.size();
  for (const char c : piece) out.push_back(byte_token(static_cast<unsigned char>(c)));
  merge_adjacent_pairs<int>(out, from, [&](int left, int right) -> std::optional<std::pair<int, int>> {
    auto it = merges_.find(pair_key(left, right));
    if (it == merges_.end()) return std::nullopt;
    return std::pair{it->second.rank, it->second.id};
  });
}

std::string ByteBpeTokenizer::decode(const std::vector<int>& ids, bool render_special) const {
  std::string out;
  for (int id : ids) {
    if (id < 0 || id >= vocab_size() || types_[id] == TokenType::Unused) {
      out += "<?>";
      continue;
    }
    if (types_[id] == TokenType::Special && !render_special) continue;
    out += bytes_[id];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

using nlohmann::json;

// The Split regexes we recognise, exactly as Hugging Face files spell them.
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr int kMaxId = 10'000'000;  // sanity bound on token ids read from files

// Reads a tokenizer.json in one SAX pass. model.vocab and model.merges, nearly all of the file,
// go straight into `spec`; everything else becomes a small DOM in `doc`. A full DOM of the 11 MB
// Qwen file takes longer to build and free than the whole rest of loading.
class TokenizerJsonReader final : public nlohmann::json_sax<json> {
 public:
  TokenizerJsonReader(const std::string& path, ByteBpeSpec& spec) : path_(path), spec_(spec) {}

  json doc;
  bool saw_vocab = false, saw_merges = false;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(v); }
  bool number_integer(number_integer_t v) override { return mode_ == Mode::Vocab ? vocab_id(v) : value(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return mode_ == Mode::Vocab ? vocab_id(static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX))) : value(v);
  }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool binary(binary_t&) override { return value(json()); }

  bool string(string_t& v) override {
    switch (mode_) {
      case Mode::Merges: {  // older files: "left right" (byte-level tokens never hold a space)
        const size_t space = v.find(' ');
        if (space == std::string::npos) fail_input("{}: merge {} is not two tokens", path_, quote(v));
        spec_.merges.emplace_back(v.substr(0, space), v.substr(space + 1));
        return true;
      }
      case Mode::MergePair:  // newer files: ["left", "right"]
        if (++pair_size_ > 2) fail_input("{}: merge {} has more than two tokens", path_, spec_.merges.size());
        (pair_size_ == 1 ? spec_.merges.back().first : spec_.merges.back().second) = std::move(v);
        return true;
      case Mode::Dom:
        return value(std::move(v));
      default:
        fail_input("{}: model.vocab must map tokens to integer ids", path_);
    }
  }

  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }

  bool start_object(size_t) override {
    if (mode_ != Mode::Dom) fail_input("{}: model.{} has an unexpected object inside", path_, section());
    if (in_model() && key_ == "vocab") {
      mode_ = Mode::Vocab;
      saw_vocab = true;
      return true;
    }
    return open(json::object());
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab) mode_ = Mode::Dom;
    else stack_.pop_back();
    return true;
  }

  bool start_array(size_t) override {
    if (mode_ == Mode::Merges) {
      mode_ = Mode::MergePair;
      pair_size_ = 0;
      spec_.merges.emplace_back();
      return true;
    }
    if (mode_ != Mode::Dom) fail_input("{}: model.{} has an unexpected array inside", path_, section());
    if (in_model() && key_ == "merges") {
      mode_ = Mode::Merges;
      saw_merges = true;
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::MergePair) {
      if (pair_size_ != 2) fail_input("{}: merge {} is not two tokens", path_, spec_.merges.size() - 1);
      mode_ = Mode::Merges;
    } else if (mode_ == Mode::Merges) {
      mode_ = Mode::Dom;
    } else {
      stack_.pop_back();
    }
    return true;
  }

  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) override {
    fail_input("{}: not valid JSON: {}", path_, e.what());
  }

 private:
  enum class Mode { Dom, Vocab, Merges, MergePair };

  // Directly inside the top-level "model" object?
  bool in_model() const { return stack_.size() == 2 && model_ != nullptr && stack_[1] == model_; }
  const char* section() const { return mode_ == Mode::Vocab ? "vocab" : "merges"; }

  bool vocab_id(int64_t id) {
    if (id < 0 || id > kMaxId) fail_input("{}: vocab token {} has id {}", path_, quote(key_), id);
    if (static_cast<size_t>(id) >= spec_.vocab.size()) spec_.vocab.resize(id + 1);
    if (!spec_.vocab[id].empty())
      fail_input("{}: vocab tokens {} and {} both have id {}", path_, quote(spec_.vocab[id]), quote(key_), id);
    spec_.vocab[id] = std::move(key_);
    return true;
  }

  // Adds a value to the open container (or makes it the document); returns where it went.
  json* add(json&& v) {
    if (stack_.empty()) {
      doc = std::move(v);
      return &doc;
    }
    json& top = *stack_.back();
    if (top.is_object()) {
      json* slot = &(top[key_] = std::move(v));
      if (stack_.size() == 1 && key_ == "model") model_ = slot;
      return slot;
    }
    top.push_back(std::move(v));
    return &top.back();
  }
  bool value(json&& v) {
    if (mode_ != Mode::Dom) fail_input("{}: model.{} holds an unexpected value", path_, section());
    add(std::move(v));
    return true;
  }
  // Containers stay where they are while open: only the innermost one grows.
  bool open(json&& v) {
    stack_.push_back(add(std::move(v)));
    return true;
  }

  const std::string& path_;
  ByteBpeSpec& spec_;
  Mode mode_ = Mode::Dom;
  std::vector<json*> stack_;
  const json* model_ = nullptr;
  std::string key_;
  int pair_size_ = 0;
};

// The pre-tokenizer of a tokenizer.json: Split(regex) + ByteLevel(use_regex=false) as in
// Qwen2/Llama 3, or a lone ByteLevel(use_regex=true), whose built-in regex is GPT-2's.
PreTokenizer choose_pre_tokenizer(const std::string& path, const json& pre) {
  std::vector<const json*> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence") {
    for (const json& step : pre.at("pretokenizers")) steps.push_back(&step);
  } else if (pre.is_object()) {
    steps.push_back(&pre);
  }
  std::optional<PreTokenizer> split;
  bool byte_level = false, byte_level_regex = false;
  for (const json* step : steps) {
    const std::string type = step->value("type", "");
    if (type == "ByteLevel") {
      if (step->value("add_prefix_space", false))
        fail_input("{}: ByteLevel pre-tokenizer with add_prefix_space is not supported", path);
      byte_level = true;
      byte_level_regex = step->value("use_regex", true);
    } else if (type == "Split" && !split) {
      const json& pattern = step->at("pattern");
      const std::string regex =
          pattern.is_object() && pattern.contains("Regex") ? pattern["Regex"].get<std::string>() : "";
      if (regex == kQwen2Regex) split = PreTokenizer::Qwen2;
      else if (regex == kLlama3Regex) split = PreTokenizer::Llama3;
      else if (regex == kGpt2Regex) split = PreTokenizer::Gpt2;
      else
        fail_input("{}: pre-tokenizer Split pattern {} is not supported (known: Qwen2, Llama 3, GPT-2)", path,
                   regex.empty() ? describe(pattern) : quote(regex));
      if (step->value("behavior", "Isolated") != "Isolated" || step->value("invert", false))
        fail_input("{}: pre-tokenizer Split must be behavior Isolated, not inverted", path);
    } else {
      fail_input("{}: pre-tokenizer {} is not supported (byte-level BPE needs Split and/or ByteLevel)", path,
                 type.empty() ? describe(pre) : quote(type));
    }
  }
  if (!byte_level) fail_input("{}: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer)", path);
  if (split && byte_level_regex)
    fail_input("{}: pre-tokenizer applies both a Split regex and ByteLevel's own regex; not supported", path);
  if (split) return *split;
  if (!byte_level_regex) fail_input("{}: ByteLevel pre-tokenizer without any splitting regex is not supported", path);
  return PreTokenizer::Gpt2;
}

// "bos_token": "<s>" or {"content": "<s>", ...} or null.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// Calls visit(content, id, special) for each of tokenizer.json's added_tokens, the id checked to
// be an integer in [0, kMaxId]; json::exception on a wrongly typed field.
template <typename Visit>
void for_each_added_token(const json& j, const std::string& path, Visit visit) {
  for (const json& t : j.value("added_tokens", json::array())) {
    const std::string content = t.at("content").get<std::string>();
    const int64_t id = as_int64(t.at("id"), path, fmt::format("added token {} id", quote(content)));
    if (id < 0 || id > kMaxId) fail_input("{}: added token {} has id {}", path, quote(content), id);
    visit(content, static_cast<int>(id), t.value("special", false));
  }
}

// Fills `spec` (vocab and merges are already in it) from the rest of tokenizer.json;
// json::exception on a wrongly typed field.
void read_tokenizer_json(const std::string& path, const TokenizerJsonReader& reader, ByteBpeSpec& spec,
                         StringIndex& added_ids) {
  const json& j = reader.doc;
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    fail_input("{}: no \"model\" object; is this a Hugging Face tokenizer.json?", path);
  const json& model = j["model"];
  const std::string type = model.value("type", "");
  if (type != "BPE") fail_input("{}: tokenizer model type {} is not supported (byte-level BPE or WordLevel)", path, quote(type));
  if (!reader.saw_vocab || !reader.saw_merges) fail_input("{}: model.vocab or model.merges is missing", path);
  if (model.value("byte_fallback", false))
    fail_input("{}: BPE with byte_fallback (SentencePiece style) is not supported", path);
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(affix) && model[affix].is_string() && !model[affix].get<std::string>().empty())
      fail_input("{}: BPE {} is not supported", path, affix);
  spec.normalizer = parse_normalizer(j.value("normalizer", json()), path);
  spec.pre_tokenizer = choose_pre_tokenizer(path, j.value("pre_tokenizer", json()));
  spec.ignore_merges = model.value("ignore_merges", false);

  // lstrip/rstrip/single_word of added tokens are not honoured; Qwen and Llama 3 set none.
  for_each_added_token(j, path, [&](const std::string& content, int id, bool special) {
    (special ? spec.special_tokens : spec.added_tokens).emplace_back(content, id);
    added_ids.emplace(content, id);
  });
}

// The special token a TemplateProcessing post-processor puts first ("" when none).
std::string template_bos(const json& j) {
  const json post = j.value("post_processor", json());
  if (!post.is_object()) return "";
  std::vector<json> procs{post};
  if (post.value("type", "") == "Sequence") procs = post.value("processors", std::vector<json>{});
  for (const json& p : procs) {
    if (p.value("type", "") != "TemplateProcessing") continue;
    const json single = p.value("single", json::array());
    if (!single.empty() && single[0].is_object() && single[0].contains("SpecialToken"))
      return single[0]["SpecialToken"].at("id").get<std::string>();
  }
  return "";
}

// bos/eos and add_bos_token from tokenizer_config.json beside tokenizer.json, when it exists;
// `id_of(text, file, what)` finds a token's id or throws InputError.
template <typename IdOf>
void read_tokenizer_config(const std::string& path, int& bos_id, int& eos_id, bool& add_bos, IdOf id_of) {
  const std::filesystem::path config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (!std::filesystem::exists(config_path)) return;
  const std::string cpath = config_path.string();
  const json config = read_json_file(cpath);
  if (!config.is_object()) fail_input("{}: not a JSON object", cpath);
  if (std::string bos = token_text(config.value("bos_token", json())); !bos.empty())
    bos_id = id_of(bos, cpath, "bos_token");
  if (std::string eos = token_text(config.value("eos_token", json())); !eos.empty())
    eos_id = id_of(eos, cpath, "eos_token");
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
    add_bos = config["add_bos_token"].get<bool>();
}

// A WordLevel tokenizer.json (the vocabulary is already in `vocab`).
std::unique_ptr<Tokenizer> load_word_level(const std::string& path, const json& j, std::vector<std::string> vocab) {
  WordLevelSpec spec;
  spec.origin = path;
  spec.vocab = std::move(vocab);
  StringIndex ids;
  for (size_t id = 0; id < spec.vocab.size(); ++id)
    if (!spec.vocab[id].empty()) ids.emplace(spec.vocab[id], int(id));
  auto id_of = [&](const std::string& text, const std::string& file, const char* what) {
    if (auto it = ids.find(text); it != ids.end()) return it->second;
    fail_input("{}: {} {} is not in the vocabulary", file, what, quote(text));
  };
  try {
    const json& model = j["model"];
    if (model.contains("unk_token") && model["unk_token"].is_string())
      spec.unk_id = id_of(model["unk_token"].get<std::string>(), path, "model.unk_token");
    spec.normalizer = parse_normalizer(j.value("normalizer", json()), path);
    const json pre = j.value("pre_tokenizer", json());
    if (!pre.is_object() || pre.value("type", "") != "WhitespaceSplit")
      fail_input("{}: a WordLevel tokenizer needs the WhitespaceSplit pre-tokenizer, not {}", path, describe(pre));
    if (const json dec = j.value("decoder", json()); !dec.is_null())
      fail_input("{}: WordLevel decoder {} is not supported (only null: words joined by spaces)", path, describe(dec));
    for_each_added_token(j, path, [&](const std::string& content, int id, bool special) {
      if (size_t(id) >= spec.vocab.size()) spec.vocab.resize(size_t(id) + 1);
      if (!spec.vocab[id].empty() && spec.vocab[id] != content)
        fail_input("{}: added token {} has the id {} of the word {}", path, quote(content), id, quote(spec.vocab[id]));
      spec.vocab[id] = content;
      ids.emplace(content, id);
      if (special) spec.special_ids.push_back(id);
    });
  } catch (const json::exception& e) {
    fail_input("{}: unexpected tokenizer.json structure: {}", path, e.what());
  }
  read_tokenizer_config(path, spec.bos_id, spec.eos_id, spec.add_bos, id_of);
  return make_word_level_tokenizer(std::move(spec));
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const ByteMap& map = byte_map();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, map.to_char[b]);
  return out;
}

std::string byte_level_to_bytes(std::string_view byte_level) {
  std::string out;
  append_raw_bytes(byte_level, out);
  return out;
}

std::vector<std::string_view> pre_tokenize(PreTokenizer kind, std::string_view text) {
  std::vector<std::string_view> pieces;
  const Splitter splitter(kind, text);
  for (size_t p = 0; p < text.size();) {
    const size_t end = splitter.match(p);
    pieces.push_back(text.substr(p, end - p));
    p = end;
  }
  return pieces;
}

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeSpec spec) {
  return std::make_unique<ByteBpeTokenizer>(std::move(spec));
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  ByteBpeSpec spec;
  spec.origin = path;
  TokenizerJsonReader reader(path, spec);
  {
    MappedFile file(path);
    const char* begin = reinterpret_cast<const char*>(file.data());
    if (file.size() > kMaxJsonFileBytes)
      fail_input("{}: {} bytes of JSON is more than the {} kvbench reads (docs/reliability.md)", path, file.size(),
                 kMaxJsonFileBytes);
    check_json_depth(std::string_view(begin, file.size()), path);
    json::sax_parse(begin, begin + file.size(), &reader);  // parse errors throw InputError
  }
  const json& j = reader.doc;
  if (j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].value("type", "") == "WordLevel") {
    if (reader.saw_merges) fail_input("{}: a WordLevel model has no merges", path);
    return load_word_level(path, j, std::move(spec.vocab));
  }
  StringIndex added_ids;  // added token text -> id, for bos/eos names
  try {
    read_tokenizer_json(path, reader, spec, added_ids);
  } catch (const json::exception& e) {
    fail_input("{}: unexpected tokenizer.json structure: {}", path, e.what());
  }

  auto id_of = [&](const std::string& text, const std::string& file, const char* what) {
    if (auto it = added_ids.find(text); it != added_ids.end()) return it->second;
    const std::string byte_level = bytes_to_byte_level(text);
    for (size_t id = 0; id < spec.vocab.size(); ++id)
      if (spec.vocab[id] == byte_level) return static_cast<int>(id);
    fail_input("{}: {} {} is not in the vocabulary", file, what, quote(text));
  };

  // A post-processor template that starts with a special token adds BOS (Llama 3 does this
  // instead of setting add_bos_token).
  try {
    if (std::string bos = template_bos(j); !bos.empty()) {
      spec.bos_id = id_of(bos, path, "post-processor token");
      spec.add_bos = true;
    }
  } catch (const json::exception& e) {
    fail_input("{}: unexpected post_processor structure: {}", path, e.what());
  }

  read_tokenizer_config(path, spec.bos_id, spec.eos_id, spec.add_bos, id_of);
  if (spec.add_bos && spec.bos_id < 0) spec.add_bos = false;

  try {
    return make_byte_bpe_tokenizer(std::move(spec));
  } catch (const InputError& e) {
    fail_input("{}: {}", path, e.what());
  }
}

}  // namespace kvb

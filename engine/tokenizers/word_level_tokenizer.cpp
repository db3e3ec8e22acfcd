#include "engine/tokenizers/word_level_tokenizer.hpp"

#include "engine/tokenizers/string_index.hpp"
#include "engine/tokenizers/utf8.hpp"
#include "util/errors.hpp"
#include "util/quote.hpp"

namespace kvb {
namespace {

class WordLevelTokenizer final : public Tokenizer {
 public:
  explicit WordLevelTokenizer(WordLevelSpec spec) : spec_(std::move(spec)), special_(spec_.vocab.size(), false) {
    bos_id_ = spec_.bos_id;
    eos_id_ = spec_.eos_id;
    add_bos_ = spec_.add_bos && spec_.bos_id >= 0;
    for (size_t id = 0; id < spec_.vocab.size(); ++id) {
      const std::string& word = spec_.vocab[id];
      if (word.empty()) continue;
      for (size_t i = 0; i < word.size();) {
        const CodePoint c = decode_code_point(word, i);
        if (c.cls == UnicodeClass::Space)
          fail_input("{}: word-level token {} (id {}) holds white space", spec_.origin, quote(word), id);
        i += c.len;
      }
      if (!index_.emplace(word, int(id)).second)
        fail_input("{}: word {} has two ids, {} and {}", spec_.origin, quote(word), index_[word], id);
    }
    for (int id : spec_.special_ids)
      if (id >= 0 && size_t(id) < special_.size()) special_[id] = true;
    for (int id : {bos_id_, eos_id_})
      if (id >= 0 && size_t(id) < special_.size()) special_[id] = true;
  }

  std::vector<int> encode(std::string_view text) const override {
    const std::string normalized = normalize(text, spec_.normalizer);
    const std::string_view s = normalized;
    std::vector<int> ids;
    for (size_t i = 0; i < s.size();) {
      size_t end = i;
      while (end < s.size()) {
        const CodePoint c = decode_code_point(s, end);
        if (c.cls == UnicodeClass::Space) break;
        end += c.len;
      }
      if (end == i) {  // white space between words
        i += decode_code_point(s, i).len;
        continue;
      }
      const std::string_view word = s.substr(i, end - i);
      if (auto it = index_.find(word); it != index_.end()) ids.push_back(it->second);
      else if (spec_.unk_id >= 0) ids.push_back(spec_.unk_id);
      else fail_input("{}: the word {} is not in the vocabulary (and there is no unk_token)", spec_.origin, quote(word));
      i = end;
    }
    return ids;
  }

  std::string decode(const std::vector<int>& ids, bool render_special) const override {
    std::string out;
    for (int id : ids) {
      const bool known = id >= 0 && size_t(id) < spec_.vocab.size() && !spec_.vocab[id].empty();
      if (known && special_[id] && !render_special) continue;
      if (!out.empty()) out += ' ';
      out += known ? spec_.vocab[id] : "<?>";
    }
    return out;
  }

  int vocab_size() const override { return int(spec_.vocab.size()); }
  std::string kind() const override { return "hf-wordlevel"; }
  // Runs of white space make no tokens, so the bytes of a text bound nothing.
  size_t longest_token_bytes() const override { return SIZE_MAX; }

 private:
  WordLevelSpec spec_;
  std::vector<bool> special_;
  StringIndex index_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_word_level_tokenizer(WordLevelSpec spec) {
  return std::make_unique<WordLevelTokenizer>(std::move(spec));
}

}  // namespace kvb

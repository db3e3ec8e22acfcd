#include "engine/tokenizers/spm_tokenizer.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "engine/tokenizers/pair_merge.hpp"
#include "util/errors.hpp"
#include "util/mapped_file.hpp"

namespace kvb {

namespace {

// Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes).
int utf8_length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

}  // namespace

SpmTokenizer::SpmTokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                           std::vector<PieceType> types, int bos_id, int eos_id, std::string kind)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), types_(std::move(types)), kind_(std::move(kind)) {
  // Loaders check these and name their file; a tokenizer that broke them would index out of bounds.
  if (pieces_.empty() || scores_.size() != pieces_.size() || types_.size() != pieces_.size())
    fail_input("{}: {} pieces, {} scores, {} types (at least 1 piece, and as many scores and types)", kind_,
               pieces_.size(), scores_.size(), types_.size());
  bos_id_ = bos_id;
  eos_id_ = eos_id;
  add_bos_ = true;
  index_.reserve(pieces_.size());
  // First id wins for duplicate pieces, as in llama2.c's sorted lookup.
  for (int i = static_cast<int>(pieces_.size()) - 1; i >= 0; --i) index_[pieces_[i]] = i;
  for (const std::string& p : pieces_) longest_piece_ = std::max(longest_piece_, p.size());
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = index_.find(name);
    byte_token_[b] = it == index_.end() ? -1 : it->second;
  }
}

int SpmTokenizer::lookup(const std::string& s) const {
  auto it = index_.find(s);
  return it == index_.end() ? -1 : it->second;
}

std::vector<int> SpmTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  if (text.empty()) return ids;
  if (int space = lookup(" "); space >= 0) ids.push_back(space);  // dummy prefix
  for (size_t i = 0; i < text.size();) {
    size_t n = std::min<size_t>(utf8_length(static_cast<unsigned char>(text[i])), text.size() - i);
    int id = lookup(std::string(text.substr(i, n)));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t j = 0; j < n; ++j) {
        int b = byte_token_[static_cast<unsigned char>(text[i + j])];
        ids.push_back(b >= 0 ? b : 0);  // no byte piece: <unk> (id 0 by convention)
      }
    }
    i += n;
  }
  // Repeatedly merge the adjacent pair whose concatenation is the highest-scoring piece, the
  // leftmost among equal scores, as run.c does (pair_merge.hpp does it in n log n). Scores at or
  // below -1e30 (run.c's starting best) and NaN never merge.
  std::string merged;
  merge_adjacent_pairs<float>(ids, 0, [&](int left, int right) -> std::optional<std::pair<float, int>> {
    merged = pieces_[left];
    merged += pieces_[right];
    const int id = lookup(merged);
    if (id < 0 || !(scores_[id] > -1e30f)) return std::nullopt;
    return std::pair{-scores_[id], id};
  });
  return ids;
}

std::string SpmTokenizer::decode(const std::vector<int>& ids, bool render_special) const {
  std::string out;
  int prev = -1;
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) {
      out += "<?>";
      prev = id;
      continue;
    }
    const std::string& p = pieces_[id];
    switch (types_[id]) {
      case PieceType::Control:
        if (render_special) out += p;
        break;
      case PieceType::Byte: {
        unsigned value = 0;
        if (std::sscanf(p.c_str(), "<0x%02X>", &value) == 1) out += static_cast<char>(value);
        break;
      }
      default:
        // SentencePiece drops the dummy-prefix space of the first piece after BOS.
        if (prev == bos_id_ && !p.empty() && p[0] == ' ') out.append(p, 1);
        else out += p;
    }
    prev = id;
  }
  return out;
}

std::unique_ptr<SpmTokenizer> load_llama2c_tokenizer(const std::string& path, int vocab_size) {
  MappedFile file(path);
  ByteReader r(file);
  // Byte fallback falls back to id 0 (<unk>) for a byte without a piece, so there must be one.
  if (vocab_size < 1) fail_input("{}: vocabulary size {} (at least 1 token is needed)", path, vocab_size);
  const int32_t max_len = r.read<int32_t>("max token length");
  if (max_len <= 0 || max_len > 1024) fail_input("{}: max token length {} is out of range", path, max_len);
  std::vector<std::string> pieces(vocab_size);
  std::vector<float> scores(vocab_size);
  std::vector<SpmTokenizer::PieceType> types(vocab_size, SpmTokenizer::PieceType::Normal);
  for (int i = 0; i < vocab_size; ++i) {
    scores[i] = r.read<float>("token score");
    const int32_t len = r.read<int32_t>("token length");
    if (len < 0 || len > max_len) fail_input("{}: token {} has length {} (max {})", path, i, len, max_len);
    pieces[i] = r.read_bytes(static_cast<uint64_t>(len), "token bytes");
    const std::string& p = pieces[i];
    if (p.size() == 6 && p.rfind("<0x", 0) == 0 && p[5] == '>') types[i] = SpmTokenizer::PieceType::Byte;
  }
  if (r.pos() != file.size())
    fail_input("{}: {} trailing bytes after {} tokens; is this the tokenizer for a vocabulary of {}?", path,
               file.size() - r.pos(), vocab_size, vocab_size);
  // llama2.c's convention: 0 <unk>, 1 BOS, 2 EOS.
  if (vocab_size > 2) {
    types[0] = SpmTokenizer::PieceType::Unknown;
    types[1] = types[2] = SpmTokenizer::PieceType::Control;
  }
  return std::make_unique<SpmTokenizer>(std::move(pieces), std::move(scores), std::move(types), 1, 2,
                                        "llama2c-spm");
}

}  // namespace kvb

#include "engine/tokenizers/byte_tokenizer.hpp"

#include <string>

namespace kvb {

ByteTokenizer::ByteTokenizer(int vocab_size) : vocab_size_(vocab_size) {
  bos_id_ = 256;
  eos_id_ = 257;
  add_bos_ = true;
}

std::vector<int> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  ids.reserve(text.size());
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int>& ids, bool render_special) const {
  std::string out;
  for (int id : ids) {
    if (id >= 0 && id < 256) out += static_cast<char>(id);
    else if (id == bos_id_ || id == eos_id_) {
      if (render_special) out += id == bos_id_ ? "<s>" : "</s>";
    } else {
      out += '<';
      out += std::to_string(id);
      out += '>';
    }
  }
  return out;
}

}  // namespace kvb

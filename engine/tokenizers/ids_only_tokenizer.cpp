#include "engine/tokenizers/ids_only_tokenizer.hpp"

#include <utility>

#include "util/errors.hpp"

namespace kvb {

IdsOnlyTokenizer::IdsOnlyTokenizer(std::string model_dir, int vocab_size, int bos_id, int eos_id)
    : model_dir_(std::move(model_dir)), vocab_size_(vocab_size) {
  bos_id_ = bos_id;
  eos_id_ = eos_id;
  add_bos_ = false;  // prompt ids are taken exactly as given
}

std::vector<int> IdsOnlyTokenizer::encode(std::string_view) const {
  fail_input("{}: the model folder has no tokenizer.json; give prompts as token ids (prompt_ids in a workload)",
             model_dir_);
}

std::string IdsOnlyTokenizer::decode(const std::vector<int>& ids, bool render_special) const {
  std::string out;
  for (int id : ids) {
    if (!render_special && (id == bos_id_ || id == eos_id_) && id >= 0) continue;
    out += '<';
    out += std::to_string(id);
    out += '>';
  }
  return out;
}

}  // namespace kvb

// TEMPORARY placeholder while the byte-level BPE tokenizer is written.
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "util/errors.hpp"
namespace kvb {
std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeSpec) { fail_input("byte-level BPE is not implemented yet"); }
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& p) { fail_input("{}: tokenizer.json is not implemented yet", p); }
}  // namespace kvb

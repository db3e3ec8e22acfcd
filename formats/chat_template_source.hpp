#pragma once
// Where a model's chat template comes from, read from the files that ship it:
//   - a Hugging Face folder: chat_template.jinja (what transformers saves and prefers), else
//     tokenizer_config.json's `chat_template` (a string, or a list of {name, template} of which
//     the one named "default" is taken);
//   - a GGUF file: the `tokenizer.chat_template` string (read by the GGUF loader);
//   - a file given on the command line: a .jinja template, or a tokenizer_config.json.
// The special-token texts templates read (bos_token, eos_token, unk_token, pad_token) come from
// tokenizer_config.json: a string or an AddedToken object {"content": ...}; null or absent: left
// undefined, as transformers leaves them.
// Errors: InputError naming the file and what is wrong (not JSON, a chat_template of the wrong
// type, a list without "default", a template over 1 MiB, unreadable).
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace kvb {

struct ChatTemplateSource {
  std::string text;                                 // the Jinja source; empty: the model has none
  std::string origin;                               // the file (and key) it was read from
  std::map<std::string, std::string> special_tokens;  // bos_token, eos_token, ... as text
};

// A Hugging Face folder's template (empty text when it ships none).
ChatTemplateSource read_hf_chat_template(const std::filesystem::path& dir);

// --prompt-template FILE: a .json file is read as a tokenizer_config.json, anything else as
// Jinja source. InputError when it holds no template.
ChatTemplateSource read_chat_template_file(const std::filesystem::path& path);

}  // namespace kvb

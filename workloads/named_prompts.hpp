#pragma once
// Prompts known by name (--prompt-template NAME): the text a question is wrapped in, exactly as a
// published protocol builds it, and whether it then goes through the model's chat template.
//   triattention       the TriAttention runner's prompt (shared/spec/triattention.md section 6:
//                      triattention/common/prompt_utils.py PROMPT_TEMPLATE), as plain text with the
//                      tokenizer's own special tokens: the paper's protocol (use_chat_template false)
//   triattention-chat  the same text as the user message of the model's chat template after the
//                      runner's default system prompt "You are a helpful assistant." (its
//                      use_chat_template true)
#include <optional>
#include <string>

namespace kvb {

struct NamedPrompt {
  const char* name;
  const char* text;           // {question} stands for the item's text
  bool chat;                  // rendered by the model's chat template as the user message
  const char* system_prompt;  // chat only: the default system message (nullptr: none)
};

const NamedPrompt* find_named_prompt(const std::string& name);
std::string named_prompt_names();  // "triattention, triattention-chat"

// The prompt's text with `question` in place of {question}.
std::string fill_named_prompt(const NamedPrompt& prompt, const std::string& question);

}  // namespace kvb

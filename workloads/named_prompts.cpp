#include "workloads/named_prompts.hpp"

namespace kvb {

namespace {

// Byte for byte the runner's text: two spaces before \boxed{}, a single space opening the third
// and fourth paragraphs.
constexpr const char* kTriAttentionPrompt =
    "You are given a math problem.\n\nProblem: {question}\n\n You need to solve the problem step by step. First, you "
    "need to provide the chain-of-thought, then provide the final answer.\n\n Provide the final answer in the format: "
    "Final answer:  \\boxed{}";

constexpr NamedPrompt kPrompts[] = {
    {"triattention", kTriAttentionPrompt, false, nullptr},
    {"triattention-chat", kTriAttentionPrompt, true, "You are a helpful assistant."},
};

}  // namespace

const NamedPrompt* find_named_prompt(const std::string& name) {
  for (const NamedPrompt& p : kPrompts)
    if (name == p.name) return &p;
  return nullptr;
}

std::string named_prompt_names() {
  std::string out;
  for (const NamedPrompt& p : kPrompts) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

std::string fill_named_prompt(const NamedPrompt& prompt, const std::string& question) {
  std::string text = prompt.text;
  const std::string marker = "{question}";
  const size_t at = text.find(marker);
  return text.replace(at, marker.size(), question);
}

}  // namespace kvb

// How items become prompts: the paper's named prompt byte for byte, the model's chat template
// with system prompt and variables, token ids as apply_chat_template makes them, and the errors.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/model.hpp"
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "run/prompt_builder.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"

namespace kvb::test {
namespace {

WorkloadItem question(const std::string& text) {
  WorkloadItem item;
  item.id = "q";
  item.prompt_text = text;
  return item;
}

// The Qwen3 tokenizer and chat template of the shared data, as a weightless model.
Model qwen3(const std::filesystem::path& dir) {
  Model m;
  m.tokenizer = load_hf_tokenizer((dir / "tokenizer.json").string());
  m.chat_template = read_hf_chat_template(dir);
  m.info.source = dir.string();
  return m;
}

Model synthetic_model() {
  LoadOptions o;
  o.skip_weights = true;
  return load_model("synthetic:tiny", o);
}

// The Python string literal of the spec's section 6, decoded (\n and \\ are its only escapes).
std::string spec_prompt_literal(const std::filesystem::path& spec) {
  std::ifstream in(spec);
  std::stringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  const size_t start = text.find("\"You are given a math problem.");
  const size_t end = text.find("\\\\boxed{}\"", start);
  if (start == std::string::npos || end == std::string::npos) return "";
  const std::string literal = text.substr(start + 1, end + 9 - start - 1);
  std::string out;
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size()) {
      out += literal[i + 1] == 'n' ? '\n' : literal[i + 1];
      ++i;
    } else {
      out += literal[i];
    }
  }
  return out;
}

TEST(PromptBuilder, PaperPromptIsTheRunnersTextByteForByte) {
  const auto data = shared_data_dir();
  if (!data) GTEST_SKIP() << "shared data not found";
  const auto spec = data->parent_path() / "spec" / "triattention.md";
  if (!std::filesystem::exists(spec)) GTEST_SKIP() << "missing " << spec;
  const std::string expected = spec_prompt_literal(spec);
  ASSERT_FALSE(expected.empty()) << "the prompt literal was not found in " << spec;
  const NamedPrompt* p = find_named_prompt("triattention");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(fill_named_prompt(*p, "{question}"), expected);
  EXPECT_NE(expected.find("format: Final answer:  \\boxed{}"), std::string::npos);  // two spaces, one backslash

  // Plain text with the tokenizer's own BOS (synthetic models' byte tokenizer adds one).
  const Model m = synthetic_model();
  const PromptBuilder b({.prompt_template = "triattention"}, m);
  const std::string filled = fill_named_prompt(*p, "What is 1+1?");
  EXPECT_EQ(b.text(question("What is 1+1?")), filled);
  EXPECT_EQ(b.ids(question("What is 1+1?")), m.tokenizer->encode_prompt(filled));
  EXPECT_EQ(b.description()["template"], "triattention");
  EXPECT_FALSE(b.description()["add_generation_prompt"].get<bool>());
}

TEST(PromptBuilder, ChatIsTheDefaultWhenTheModelShipsATemplate) {
  KVB_REQUIRE_DATA(dir, "models/qwen3-tokenizer");
  const Model m = qwen3(dir);
  const PromptBuilder b({}, m);
  EXPECT_EQ(b.description()["template"], "chat");
  EXPECT_EQ(b.text(question("What is 2+2?")), "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  // Special tokens are read from the rendered text and no BOS is added (the template writes what
  // the model wants): 151644 <|im_start|>, 151645 <|im_end|>.
  const std::vector<int> ids = b.ids(question("What is 2+2?"));
  ASSERT_GE(ids.size(), 6u);
  EXPECT_EQ(ids[0], 151644);
  EXPECT_EQ(ids[1], m.tokenizer->encode("user")[0]);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 1);
  EXPECT_EQ(ids, m.tokenizer->encode(b.text(question("What is 2+2?"))));

  // A system prompt and Qwen3's thinking switch (a JSON value: false is the boolean).
  const PromptBuilder off({.system_prompt = "Be brief.", .template_vars = {"enable_thinking=false"}}, m);
  EXPECT_EQ(off.text(question("Hi")),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            "<think>\n\n</think>\n\n");
  EXPECT_EQ(off.description()["template_vars"]["enable_thinking"], false);
  EXPECT_EQ(off.description()["system_prompt"], "Be brief.");
  EXPECT_EQ(off.description()["sha256"].get<std::string>().size(), 64u);

  // The paper's text inside the chat template, after the runner's default system prompt.
  const PromptBuilder paper({.prompt_template = "triattention-chat"}, m);
  const std::string t = paper.text(question("Q"));
  EXPECT_EQ(t.rfind("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nYou are given a "
                    "math problem.\n\nProblem: Q\n\n",
                    0),
            0u)
      << t;

  // plain: the text as it is.
  const PromptBuilder plain({.prompt_template = "plain"}, m);
  EXPECT_EQ(plain.text(question("Hi")), "Hi");
  EXPECT_EQ(plain.ids(question("Hi")), m.tokenizer->encode_prompt("Hi"));
}

TEST(PromptBuilder, IdsAndRecordedPromptsAreFedAsTheyAre) {
  KVB_REQUIRE_DATA(dir, "models/qwen3-tokenizer");
  const Model m = qwen3(dir);
  const PromptBuilder b({}, m);
  WorkloadItem ids = question("ignored");
  ids.prompt_ids = {5, 6, 7};
  EXPECT_EQ(b.ids(ids), (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(b.text(ids), "");
  WorkloadItem recorded = question("<|im_start|>user\nX<|im_end|>\n");
  recorded.prompt_rendered = true;
  EXPECT_EQ(b.text(recorded), recorded.prompt_text);
  EXPECT_EQ(b.ids(recorded), m.tokenizer->encode_prompt(recorded.prompt_text));
}

TEST(PromptBuilder, TemplateFromAFile) {
  KVB_REQUIRE_DATA(dir, "models/qwen3-tokenizer");
  TempDir tmp;
  std::ofstream(tmp / "t.jinja") << "{{ bos_token or '' }}[{{ messages[0].role }}] {{ messages[0].content }}"
                                    "{% if add_generation_prompt %} [{{ who }}]{% endif %}";
  const Model m = qwen3(dir);
  const PromptBuilder b({.prompt_template = (tmp / "t.jinja").string(), .template_vars = {"who=bot"}}, m);
  EXPECT_EQ(b.text(question("hello")), "[user] hello [bot]");  // Qwen3's bos_token is null: undefined
  EXPECT_EQ(b.description()["template"], "file");
  EXPECT_EQ(b.description()["source"], (tmp / "t.jinja").string());
  EXPECT_EQ(b.description()["template_vars"]["who"], "bot");
}

TEST(PromptBuilder, BadSettingsAreOneLineErrors) {
  const Model none = synthetic_model();  // ships no chat template
  struct Case {
    PromptSettings settings;
    const char* expect;
  };
  for (const Case& c : std::vector<Case>{
           {{.prompt_template = "chat"}, "ships no chat template"},
           {{.prompt_template = "triattention-chat"}, "ships none"},
           {{.prompt_template = "no-such-template"}, "expected chat, plain, a named prompt (triattention"},
           {{.system_prompt = "x"}, "--system-prompt: the plain prompt has no system message"},
           {{.template_vars = {"enable_thinking=false"}}, "--template-var: the plain prompt is not a chat template"},
       }) {
    try {
      PromptBuilder b(c.settings, none);
      ADD_FAILURE() << "accepted: " << c.expect;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
  TempDir tmp;
  std::ofstream(tmp / "t.jinja") << "{{ messages[0].content }}";
  for (const char* bad : {"novalue", "=x", "bad-name=1", "messages=[]"}) {
    EXPECT_THROW(PromptBuilder({.prompt_template = (tmp / "t.jinja").string(), .template_vars = {bad}}, none), InputError)
        << bad;
  }
  // A byte tokenizer cannot read chat markers as special tokens: refused, never mis-tokenized.
  const PromptBuilder b({.prompt_template = (tmp / "t.jinja").string()}, none);
  EXPECT_EQ(b.text(question("x")), "x");
  try {
    (void)b.ids(question("x"));
    ADD_FAILURE() << "a byte tokenizer encoded a chat template's output";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read the chat markers"), std::string::npos) << e.what();
  }
  // Outside the supported Jinja subset: an error naming the template.
  std::ofstream(tmp / "bad.jinja") << "{% include 'x' %}";
  EXPECT_THROW(PromptBuilder({.prompt_template = (tmp / "bad.jinja").string()}, none), InputError);
}

}  // namespace
}  // namespace kvb::test

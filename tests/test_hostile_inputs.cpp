// Regression tests for the hostile inputs of issue 15 that have no better home: deep JSON through
// every reader (each must refuse it before building a value whose copy or dump would overflow the
// stack), NUL bytes, huge ids, and strings from files that would split a one-line message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "engine/model.hpp"
#include "engine/safetensors_file.hpp"
#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "formats/chat_template_source.hpp"
#include "tests/gguf_writer.hpp"
#include "tests/hf_model_writer.hpp"
#include "tests/test_support.hpp"
#include "util/errors.hpp"
#include "util/quote.hpp"
#include "workloads/grading.hpp"
#include "workloads/workload.hpp"

namespace kvb::test {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kDeep = std::string(100000, '[') + std::string(100000, ']');

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// A tokenizer.json that loads, with `extra` spliced in as more top-level keys.
std::string tokenizer_json(const std::string& extra, const std::string& added = "[]") {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string key = bytes_to_byte_level(std::string(1, char(b)));
    vocab += (b ? ", " : "") + nlohmann::json(key).dump() + ": " + std::to_string(b);
  }
  return R"({"added_tokens": )" + added + R"(, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
             "model": {"type": "BPE", "vocab": {)" + vocab + R"(}, "merges": []})" + extra + "}";
}

TEST(HostileInputs, DeepJsonIsRefusedByEveryReaderNamingTheFile) {
  TempDir dir;
  const std::string needle = "nested deeper than 64 levels";
  // config.json: a deep value in a key the loader reads (hidden_act) and in one it ignores.
  write_hf_model(dir / "hf", HfTinySpec{});
  std::string config = read_text(dir / "hf" / "config.json");
  const std::string good_config = config;
  config.insert(config.find('{') + 1, "\"hidden_act\": " + kDeep + ", ");
  write_text(dir / "hf" / "config.json", config);
  LoadOptions options;
  options.hash_files = false;
  EXPECT_THAT(error_of([&] { load_hf_dir((dir / "hf").string(), options); }),
              AllOf(HasSubstr("config.json"), HasSubstr(needle)));
  write_text(dir / "hf" / "config.json", good_config);
  // tokenizer_config.json, read for the chat template.
  write_text(dir / "hf" / "tokenizer_config.json", "{\"chat_template\": \"x\", \"extra\": " + kDeep + "}");
  EXPECT_THAT(error_of([&] { read_hf_chat_template(dir / "hf"); }),
              AllOf(HasSubstr("tokenizer_config.json"), HasSubstr(needle)));
  // A safetensors header whose shape holds a nested element.
  const std::string header = "{\"w\": {\"dtype\": \"F32\", \"shape\": [" + kDeep + "], \"data_offsets\": [0, 4]}}";
  std::string st(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(st.data(), &n, 8);
  write_text(dir / "w.safetensors", st + header + std::string(4, '\0'));
  EXPECT_THAT(error_of([&] { SafetensorsFile{(dir / "w.safetensors").string()}; }),
              AllOf(HasSubstr("w.safetensors"), HasSubstr(needle)));
  // tokenizer.json: deep in normalizer, pre_tokenizer, post_processor, and in a key kvbench ignores.
  for (const char* key : {"normalizer", "post_processor", "ignored_key"}) {
    write_text(dir / "tokenizer.json", tokenizer_json(std::string(", \"") + key + "\": " + kDeep));
    EXPECT_THAT(error_of([&] { load_hf_tokenizer((dir / "tokenizer.json").string()); }),
                AllOf(HasSubstr("tokenizer.json"), HasSubstr(needle)))
        << key;
  }
  // A DFS case whose answer is deep.
  write_text(dir / "dfs.json", "[{\"id\": 0, \"graph\": {\"nodes\": [0, 1], \"edges\": [[0, 1]]}, \"start_node\": 0, "
                               "\"steps\": 1, \"answer\": " + kDeep + "}]");
  EXPECT_THAT(error_of([&] { load_workload((dir / "dfs.json").string()); }), AllOf(HasSubstr("dfs.json"), HasSubstr(needle)));
  // What a model writes is graded, never an error: a deep "answer" is simply wrong.
  const std::string reference = R"({"current_node": 1, "stack": [0, 1], "visited_nodes": [0, 1]})";
  EXPECT_FALSE(grade_answer("{\"current_node\": " + kDeep + "}", reference).correct);
}

TEST(HostileInputs, TheReferenceTokenizerJsonLoads) {
  TempDir dir;
  write_text(dir / "tokenizer.json", tokenizer_json(""));
  EXPECT_EQ(load_hf_tokenizer((dir / "tokenizer.json").string())->vocab_size(), 256);
}

TEST(HostileInputs, AddedTokenIdsBeyondIntAreRefusedNotTruncated) {
  TempDir dir;
  write_text(dir / "tokenizer.json",
             tokenizer_json("", R"([{"id": 1099511627776, "content": "<x>", "special": true}])"));
  EXPECT_THAT(error_of([&] { load_hf_tokenizer((dir / "tokenizer.json").string()); }),
              AllOf(HasSubstr("tokenizer.json"), HasSubstr("1099511627776")));
}

TEST(HostileInputs, ANulByteEndingAJsonlLineIsRefused) {
  TempDir dir;
  static constexpr char line[] = "{\"id\": \"a\", \"prompt\": \"x\"}\0garbage\n";
  std::ofstream(dir / "w.jsonl", std::ios::binary) << std::string(line, sizeof line - 1);  // the NUL included
  EXPECT_THAT(error_of([&] { load_workload((dir / "w.jsonl").string()); }),
              AllOf(HasSubstr("w.jsonl:1"), HasSubstr("NUL byte")));
}

TEST(HostileInputs, StringsFromFilesNeverSplitAMessage) {
  TempDir dir;
  std::ofstream(dir / "w.jsonl") << "{\"id\": \"a\\nb\", \"prompt\": \"x\"}\n{\"id\": \"a\\nb\", \"prompt\": \"y\"}\n";
  const CommandResult r = run_kvbench("run -q --method full -n 4 --workload " + (dir / "w.jsonl").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("duplicate id \"a\\nb\""));
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << r.output;
}

// Found by fuzz_gguf: a tensor (or metadata key) name holding a newline, repeated in a message.
// Every InputError and RuntimeFailure is one line by construction, whoever built the message.
TEST(HostileInputs, ErrorsAreOneLineByConstruction) {
  TempDir dir;
  GgufWriter w = tiny_writer(TinySpec{});
  w.add_raw_tensor("evil\nname\x1b[2J", {4}, 99, std::vector<uint8_t>(16));
  w.write(dir / "m.gguf");
  LoadOptions options;
  options.hash_files = false;
  EXPECT_THAT(error_of([&] { load_gguf((dir / "m.gguf").string(), options); }),
              AllOf(HasSubstr("m.gguf"), HasSubstr("evil\\nname\\x1b[2J"), Not(HasSubstr("\n"))));
  EXPECT_STREQ(InputError("a\nb").what(), "a\\nb");
  EXPECT_STREQ(RuntimeFailure("x\ty").what(), "x\\ty");
}

TEST(Quote, EscapesControlBytesAndCutsLongTextOnACharacterBoundary) {
  EXPECT_EQ(quote("plain"), "\"plain\"");
  EXPECT_EQ(quote("a\nb\t\"c\"\\\x1b[2J"), "\"a\\nb\\t\\\"c\\\"\\\\\\x1b[2J\"");
  EXPECT_EQ(quote(std::string(100, 'x'), 10), "\"xxxxxxxxxx\"... (100 bytes)");
  // 'é' is two bytes: a cut at byte 4 of "abcé..." must not split it.
  EXPECT_EQ(quote("abc\xc3\xa9xyz", 4), "\"abc\"... (8 bytes)");
  EXPECT_EQ(one_line("line one\nline two\r\x07"), "line one\\nline two\\r\\x07");
  EXPECT_THAT(one_line(std::string(5000, 'y')), AllOf(HasSubstr("... (5000 bytes)"), Not(HasSubstr(std::string(4097, 'y')))));
}

}  // namespace
}  // namespace kvb::test

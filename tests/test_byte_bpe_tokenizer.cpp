// Byte-level BPE: hand-worked tiny vocabularies, the pre-tokenizer regexes, tokenizer.json
// loading, and the real Qwen3 tokenizer against recorded DeepSeek-R1 generations.
#include <zlib.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "engine/tokenizers/byte_bpe_tokenizer.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

using json = nlohmann::json;
using Pieces = std::vector<std::string_view>;

// ---------------------------------------------------------------------------------------------
// Byte <-> character map

TEST(ByteBpeByteMap, SpellsBytesLikeGpt2) {
  EXPECT_EQ(bytes_to_byte_level("A~!"), "A~!");         // printable ASCII stands for itself
  EXPECT_EQ(bytes_to_byte_level(" "), "\u0120");        // Ġ
  EXPECT_EQ(bytes_to_byte_level("\n"), "\u010A");       // Ċ
  EXPECT_EQ(bytes_to_byte_level("\t"), "\u0109");       // ĉ
  EXPECT_EQ(bytes_to_byte_level("\x7F"), "\u0121");     // first of the 0x7F..0xA0 block
  EXPECT_EQ(bytes_to_byte_level("\xAD"), "\u0143");     // soft hyphen, the last remapped byte
  EXPECT_EQ(bytes_to_byte_level("\xC3\xA9"), "\u00C3\u00A9");  // "é" is the two tokens' "Ã©"
}

TEST(ByteBpeByteMap, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(byte_level_to_bytes(bytes_to_byte_level(all)), all);
  // Characters outside the map pass through unchanged.
  EXPECT_EQ(byte_level_to_bytes("\u4F60"), "\u4F60");
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers. Expected pieces were worked out from the regexes and agree with Hugging Face's
// tokenizers.js on these strings (and on 20,000 random strings of tricky characters).

Pieces split(PreTokenizer kind, std::string_view text) { return pre_tokenize(kind, text); }

TEST(ByteBpePreTokenizer, WordsKeepTheirLeadingSpace) {
  EXPECT_EQ(split(PreTokenizer::Qwen2, "Hello world's   test\n\n  x"),
            (Pieces{"Hello", " world", "'s", "  ", " test", "\n\n", " ", " x"}));
  // GPT-2 has no \s*[\r\n]+ alternative, so the newlines take a space along.
  EXPECT_EQ(split(PreTokenizer::Gpt2, "Hello world's   test\n\n  x"),
            (Pieces{"Hello", " world", "'s", "  ", " test", "\n\n ", " x"}));
}

TEST(ByteBpePreTokenizer, Contractions) {
  // Qwen2 and Llama 3 match contractions case-insensitively; GPT-2 does not.
  const std::string_view text = "I'M don't WE'LL they've 'sup";
  const Pieces folded{"I", "'M", " don", "'t", " WE", "'LL", " they", "'ve", " '", "sup"};
  EXPECT_EQ(split(PreTokenizer::Qwen2, text), folded);
  EXPECT_EQ(split(PreTokenizer::Llama3, text), folded);
  EXPECT_EQ(split(PreTokenizer::Gpt2, text),
            (Pieces{"I", "'", "M", " don", "'t", " WE", "'", "LL", " they", "'ve", " '", "sup"}));
}

TEST(ByteBpePreTokenizer, Digits) {
  EXPECT_EQ(split(PreTokenizer::Qwen2, "12345"), (Pieces{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "12345"), (Pieces{"123", "45"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "12345"), (Pieces{"12345"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, " 2024 abc123def"),
            (Pieces{" ", "2", "0", "2", "4", " abc", "1", "2", "3", "def"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, " 2024 abc123def"), (Pieces{" ", "202", "4", " abc", "123", "def"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, " 2024 abc123def"), (Pieces{" 2024", " abc", "123", "def"}));
  EXPECT_EQ(split(PreTokenizer::Llama3, "3.14"), (Pieces{"3", ".", "14"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, "e=mc\u00B2"), (Pieces{"e", "=mc", "\u00B2"}));  // ² is \p{N}
}

TEST(ByteBpePreTokenizer, WhitespaceAndNewlines) {
  const auto q = PreTokenizer::Qwen2;
  EXPECT_EQ(split(q, "a \n b"), (Pieces{"a", " \n", " b"}));
  EXPECT_EQ(split(q, "x\r\n\r\ny"), (Pieces{"x", "\r\n\r\n", "y"}));
  EXPECT_EQ(split(q, "!!\n\nfoo"), (Pieces{"!!\n\n", "foo"}));  // punctuation keeps its newlines
  EXPECT_EQ(split(q, "foo  \n\n  bar"), (Pieces{"foo", "  \n\n", " ", " bar"}));
  EXPECT_EQ(split(q, "   "), (Pieces{"   "}));  // trailing run stays whole
  EXPECT_EQ(split(q, "a   "), (Pieces{"a", "   "}));
  EXPECT_EQ(split(q, "\thello"), (Pieces{"\thello"}));  // any non-newline space may lead a word
  EXPECT_EQ(split(q, "(hello) [world]"), (Pieces{"(hello", ")", " [", "world", "]"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "\thello"), (Pieces{"\t", "hello"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "x\r\n\r\ny"), (Pieces{"x", "\r\n\r", "\n", "y"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "!!\n\nfoo"), (Pieces{"!!", "\n", "\n", "foo"}));
}

TEST(ByteBpePreTokenizer, NonAscii) {
  // CJK ideographs are letters; full-width punctuation is not, and leads the next word.
  EXPECT_EQ(split(PreTokenizer::Qwen2, "你好，世界！"), (Pieces{"你好", "，世界", "！"}));
  EXPECT_EQ(split(PreTokenizer::Gpt2, "你好，世界！"), (Pieces{"你好", "，", "世界", "！"}));
  // Emoji and skin-tone modifiers are symbols: one punctuation run with the space before it.
  EXPECT_EQ(split(PreTokenizer::Qwen2, "hi \U0001F44B\U0001F3FD!"), (Pieces{"hi", " \U0001F44B\U0001F3FD!"}));
  // U+3000 (ideographic space) is whitespace and may lead a word.
  EXPECT_EQ(split(PreTokenizer::Qwen2, "\u3000全角"), (Pieces{"\u3000全角"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, "naïve café"), (Pieces{"naïve", " café"}));
}

TEST(ByteBpePreTokenizer, InvalidUtf8IsOneNonLetterPerByte) {
  // A stray byte behaves like punctuation: it may lead a word, or form a run with others.
  EXPECT_EQ(split(PreTokenizer::Qwen2, "a\xFF" "b"), (Pieces{"a", "\xFF" "b"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, "\xC3(x"), (Pieces{"\xC3(", "x"}));
  EXPECT_EQ(split(PreTokenizer::Qwen2, "caf\xC3"), (Pieces{"caf", "\xC3"}));  // truncated é
  EXPECT_EQ(split(PreTokenizer::Qwen2, "\xED\xA0\x80"), (Pieces{"\xED\xA0\x80"}));  // encoded surrogate
  // The pieces always tile the input, whatever the bytes.
  std::string junk;
  for (int i = 0; i < 2000; ++i) junk += static_cast<char>((i * 7919 + 13) & 0xFF);
  for (auto kind : {PreTokenizer::Qwen2, PreTokenizer::Llama3, PreTokenizer::Gpt2}) {
    std::string joined;
    for (std::string_view p : split(kind, junk)) {
      EXPECT_FALSE(p.empty());
      joined += p;
    }
    EXPECT_EQ(joined, junk);
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-made vocabulary; expected ids worked out by hand.

ByteBpeSpec tiny_spec() {
  ByteBpeSpec s;
  s.vocab = {"a", "b", "c", "\u0120", "\u010A",         // 0-4: a b c Ġ(space) Ċ(newline)
             "bc", "ab", "abc", "\u0120a", "\u010A\u010A",  // 5-9
             "\u00C3", "\u00A9", "\u00C3\u00A9", "\u00BC",  // 10-13: Ã © Ã©(é) ¼
             "'", "s", "'s"};                                // 14-16
  s.merges = {{"b", "c"},                 // rank 0
              {"a", "b"},                 // rank 1
              {"a", "bc"},                // rank 2
              {"\u0120", "a"},            // rank 3
              {"\u010A", "\u010A"},       // rank 4
              {"\u00C3", "\u00A9"},       // rank 5
              {"'", "s"}};                // rank 6
  s.special_tokens = {{"<|x|>", 20}, {"<|x|>ab", 21}};
  s.added_tokens = {{"<t>", 22}};
  s.pre_tokenizer = PreTokenizer::Qwen2;
  s.bos_id = 20;
  s.eos_id = 21;
  return s;
}

TEST(ByteBpeTokenizer, MergesLowestRankFirst) {
  auto tok = make_byte_bpe_tokenizer(tiny_spec());
  // b+c (rank 0) beats a+b (rank 1) although a+b is further left; then a+bc.
  EXPECT_EQ(tok->encode("abc"), (std::vector<int>{7}));
  // a b c a b: bc first, then the second ab (rank 1), then a+bc (rank 2).
  EXPECT_EQ(tok->encode("abcab"), (std::vector<int>{7, 6}));
  EXPECT_EQ(tok->encode("cab"), (std::vector<int>{2, 6}));
  // Equal ranks merge leftmost first: Ċ Ċ Ċ -> ĊĊ Ċ.
  EXPECT_EQ(tok->encode("\n\n\n"), (std::vector<int>{9, 4}));
  EXPECT_EQ(tok->encode(""), (std::vector<int>{}));
}

TEST(ByteBpeTokenizer, MapsSpacesNewlinesAndNonAscii) {
  auto tok = make_byte_bpe_tokenizer(tiny_spec());
  EXPECT_EQ(tok->encode(" a"), (std::vector<int>{8}));
  EXPECT_EQ(tok->encode(" b"), (std::vector<int>{3, 1}));       // no Ġ+b merge
  EXPECT_EQ(tok->encode("  a"), (std::vector<int>{3, 8}));      // pieces " " and " a"
  EXPECT_EQ(tok->encode("a\n\nb"), (std::vector<int>{0, 9, 1}));
  EXPECT_EQ(tok->encode("\xC3\xA9"), (std::vector<int>{12}));   // é = C3 A9, merged
  EXPECT_EQ(tok->encode("\xC3\xBC"), (std::vector<int>{10, 13}));  // ü = C3 BC, no merge: two byte tokens
  EXPECT_EQ(tok->encode("a's"), (std::vector<int>{0, 16}));
  EXPECT_EQ(tok->decode({8, 9, 12}), " a\n\n\xC3\xA9");
  EXPECT_EQ(tok->decode({10}), "\xC3");  // half a character decodes to its byte
}

TEST(ByteBpeTokenizer, SplitsOutSpecialAndAddedTokens) {
  auto tok = make_byte_bpe_tokenizer(tiny_spec());
  EXPECT_EQ(tok->encode("ab<|x|>c"), (std::vector<int>{6, 20, 2}));
  EXPECT_EQ(tok->encode("<|x|>abc"), (std::vector<int>{21, 2}));  // longest match wins
  EXPECT_EQ(tok->encode("<|x|>a"), (std::vector<int>{20, 0}));
  EXPECT_EQ(tok->encode("a<t>b"), (std::vector<int>{0, 22, 1}));
  // Text around a special token is pre-tokenized separately: " a" stays one piece after it.
  EXPECT_EQ(tok->encode("<|x|> a"), (std::vector<int>{20, 8}));

  EXPECT_EQ(tok->decode({6, 20, 2}), "abc");
  EXPECT_EQ(tok->decode({6, 20, 2}, true), "ab<|x|>c");
  EXPECT_EQ(tok->decode({22}), "<t>");  // non-special added tokens are content
  EXPECT_EQ(tok->decode({99, -1}), "<?><?>");
  EXPECT_EQ(tok->decode({17}), "<?>");  // an id with no token
}

TEST(ByteBpeTokenizer, Metadata) {
  auto tok = make_byte_bpe_tokenizer(tiny_spec());
  EXPECT_EQ(tok->kind(), "hf-bpe");
  EXPECT_EQ(tok->vocab_size(), 23);
  EXPECT_EQ(tok->bos_id(), 20);
  EXPECT_EQ(tok->eos_id(), 21);
  EXPECT_FALSE(tok->add_bos());
}

TEST(ByteBpeTokenizer, IgnoreMergesTakesWholeVocabularyPieces) {
  ByteBpeSpec s;
  s.vocab = {"a", "b", "c", "bc", "abc"};
  s.merges = {{"b", "c"}};  // "abc" is in the vocabulary but no merge reaches it
  EXPECT_EQ(make_byte_bpe_tokenizer(s)->encode("abc"), (std::vector<int>{0, 3}));
  s.ignore_merges = true;
  EXPECT_EQ(make_byte_bpe_tokenizer(s)->encode("abc"), (std::vector<int>{4}));
}

TEST(ByteBpeTokenizer, Errors) {
  auto tok = make_byte_bpe_tokenizer(tiny_spec());
  EXPECT_THROW(tok->encode("z"), InputError);  // no token for byte 'z'
  ByteBpeSpec bad = tiny_spec();
  bad.merges.push_back({"c", "a"});  // "ca" is not in the vocabulary
  EXPECT_THROW(make_byte_bpe_tokenizer(bad), InputError);
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json loading, on small files written here.

json tiny_tokenizer_json(const json& pre_tokenizer) {
  json vocab = json::object();
  const std::vector<std::string> tokens = {"1", "2", "3", "4", "5", "12", "123", "a", "b", "\u0120", "\u0120a", "ab"};
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 12}, {"content", "<s>"}, {"special", true}}, {{"id", 13}, {"content", "</s>"}, {"special", true}}}},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre_tokenizer},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            // "a b" strings (older files) and [a, b] arrays (newer) may both appear.
            {"merges", {"1 2", json::array({"12", "3"}), "\u0120 a", json::array({"a", "b"})}}}}};
}

const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json split_then_byte_level(const std::string& regex) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
}

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

TEST(ByteBpeLoader, ReadsVocabMergesAndConfig) {
  test::TempDir dir;
  write(dir / "tokenizer.json", tiny_tokenizer_json(split_then_byte_level(kLlama3Regex)).dump());
  write(dir / "tokenizer_config.json",
        R"({"add_bos_token": true, "bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>"})");
  auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->kind(), "hf-bpe");
  EXPECT_EQ(tok->vocab_size(), 14);
  EXPECT_EQ(tok->bos_id(), 12);
  EXPECT_EQ(tok->eos_id(), 13);
  EXPECT_TRUE(tok->add_bos());
  // Llama 3 groups digits by three: "12345" -> "123" "45"; 1+2 then 12+3. In " ab", Ġ+a
  // (rank 2) merges before a+b (rank 3), leaving "Ġa" "b".
  EXPECT_EQ(tok->encode("12345 ab<s>"), (std::vector<int>{6, 3, 4, 10, 8, 12}));
  EXPECT_EQ(tok->decode({6, 3, 4, 10}), "12345 a");
}

TEST(ByteBpeLoader, ByteLevelAloneMeansGpt2Regex) {
  test::TempDir dir;
  write(dir / "tokenizer.json",
        tiny_tokenizer_json({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}).dump());
  auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->encode("12345"), (std::vector<int>{6, 3, 4}));  // one piece: 123 4 5
  EXPECT_EQ(tok->encode(" a"), (std::vector<int>{10}));
  EXPECT_EQ(tok->bos_id(), -1);  // no tokenizer_config.json
  EXPECT_FALSE(tok->add_bos());
}

TEST(ByteBpeLoader, TemplatePostProcessorAddsBos) {
  test::TempDir dir;
  json j = tiny_tokenizer_json(split_then_byte_level(kLlama3Regex));
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  write(dir / "tokenizer.json", j.dump());
  auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->bos_id(), 12);
  EXPECT_TRUE(tok->add_bos());
}

TEST(ByteBpeLoader, AppliesTheDeclaredNormalizerBetweenAddedTokens) {
  test::TempDir dir;
  json j = tiny_tokenizer_json(split_then_byte_level(kLlama3Regex));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}}}};
  write(dir / "tokenizer.json", j.dump());
  auto tok = load_hf_tokenizer((dir / "tokenizer.json").string());
  // Fullwidth "ａｂ" and "１２" are "ab" and "12" in NFKC; "<s>" is cut out before normalising.
  EXPECT_EQ(tok->encode("ａｂ<s>１２"), tok->encode("ab<s>12"));
  EXPECT_EQ(tok->encode("ab<s>12"), (std::vector<int>{11, 12, 5}));
  // A normalising tokenizer's bound on bytes per token counts how much normalising can shrink.
  EXPECT_EQ(tok->longest_token_bytes(), 4 * kMaxNormalizationShrink);  // "</s>" is the longest
}

// Loads `j` and returns the InputError message ("" when it loads).
std::string load_error(const std::string& text) {
  test::TempDir dir;
  const std::string path = (dir / "tokenizer.json").string();
  write(path, text);
  try {
    load_hf_tokenizer(path);
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;  // names the file
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;  // one line
    return msg;
  }
  return "";
}

TEST(ByteBpeLoader, RejectsWhatItCannotTokenize) {
  json j = tiny_tokenizer_json(split_then_byte_level(kLlama3Regex));
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(j.dump()).find("WordPiece"), std::string::npos);

  j = tiny_tokenizer_json(split_then_byte_level("\\w+"));
  EXPECT_NE(load_error(j.dump()).find("not supported"), std::string::npos);

  j = tiny_tokenizer_json(split_then_byte_level(kLlama3Regex));
  j["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(load_error(j.dump()).find("Lowercase"), std::string::npos);

  j = tiny_tokenizer_json({{"type", "Metaspace"}, {"replacement", "\u2581"}});
  EXPECT_NE(load_error(j.dump()).find("Metaspace"), std::string::npos);

  j = tiny_tokenizer_json(split_then_byte_level(kLlama3Regex));
  j["model"]["merges"].push_back("b 5");  // "b5" is not in the vocabulary
  EXPECT_NE(load_error(j.dump()).find("b5"), std::string::npos);

  j = tiny_tokenizer_json(split_then_byte_level(kLlama3Regex));
  j["model"]["vocab"]["x"] = "seven";
  EXPECT_NE(load_error(j.dump()).find("integer"), std::string::npos);

  EXPECT_NE(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, )").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(load_error("[1, 2]").find("model"), std::string::npos);
  EXPECT_THROW(load_hf_tokenizer("/nonexistent/tokenizer.json"), InputError);
}

// ---------------------------------------------------------------------------------------------
// The real Qwen3 tokenizer (151,643 tokens, 151,387 merges, 26 added tokens).

const Tokenizer& qwen3(const std::filesystem::path& path) {
  static std::unique_ptr<Tokenizer> tok = load_hf_tokenizer(path.string());  // loaded once per run
  return *tok;
}

#define KVB_REQUIRE_QWEN3(var) KVB_REQUIRE_DATA(var##_path, "models/qwen3-tokenizer/tokenizer.json"); \
  const Tokenizer& var = qwen3(var##_path)

std::string gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::runtime_error("inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(buf, sizeof buf - zs.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("corrupt gzip stream");
  return out;
}

// A DCMP trace file (shared/data/SOURCES.md section 8): "DCMP" 0x01, then 'N' + MessagePack or
// 'G' + gzipped MessagePack.
json read_trace(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 6 || bytes.compare(0, 5, "DCMP\x01") != 0) throw std::runtime_error("not a DCMP file");
  const std::string payload = bytes.substr(6);
  return json::from_msgpack(bytes[5] == 'G' ? gunzip(payload) : payload);
}

// How many recorded tokens re-encoding reproduces: a token counts when the canonical encoding
// has the same id over the same byte span of the text.
size_t same_tokens(const Tokenizer& tok, const std::vector<int>& recorded, const std::vector<int>& canonical) {
  auto length = [&](int id) { return tok.decode({id}, true).size(); };
  size_t same = 0, j = 0, at_j = 0;  // canonical[j] starts at byte at_j
  size_t at = 0;                     // where the current recorded token starts
  for (int id : recorded) {
    while (j < canonical.size() && at_j < at) at_j += length(canonical[j++]);
    if (j < canonical.size() && at_j == at && canonical[j] == id) ++same;
    at += length(id);
  }
  return same;
}

const char* kTraceDir = "workloads/traces/deepseek-r1-0528-qwen3-8b/";

TEST(ByteBpeQwen3, LoadsTheRealTokenizer) {
  KVB_REQUIRE_QWEN3(tok);
  EXPECT_EQ(tok.kind(), "hf-bpe");
  EXPECT_EQ(tok.vocab_size(), 151669);
  EXPECT_EQ(tok.eos_id(), 151645);  // <|im_end|> per tokenizer_config.json
  EXPECT_EQ(tok.bos_id(), -1);      // Qwen has no BOS
  EXPECT_FALSE(tok.add_bos());
}

TEST(ByteBpeQwen3, MatchesHuggingFaceIds) {
  KVB_REQUIRE_QWEN3(tok);
  // Reference ids from Hugging Face tokenizers.js 0.2.0 with this tokenizer.json.
  EXPECT_EQ(tok.encode("Hello world's   test\n\n  x"), (std::vector<int>{9707, 1879, 594, 256, 1273, 271, 220, 856}));
  EXPECT_EQ(tok.encode("12345 abc 你好，世界！"),
            (std::vector<int>{16, 17, 18, 19, 20, 39022, 220, 108386, 3837, 99489, 6313}));
  EXPECT_EQ(tok.encode("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
            (std::vector<int>{151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198,
                              151667, 271, 151668, 271}));
  EXPECT_EQ(tok.encode("def f(x):\n    return x**2  # square\n\n\tprint('ok')\n"),
            (std::vector<int>{750, 282, 2075, 982, 262, 470, 856, 334, 17, 220, 671, 9334, 271, 6900, 492, 562, 1305}));
  EXPECT_EQ(tok.encode("I'M sure THEY'LL win \U0001F600\U0001F44B\U0001F3FD café naïve\r\n\r\nEnd.  "),
            (std::vector<int>{40, 27603, 2704, 62493, 6, 4086, 3164, 90316, 145707, 145375, 51950, 94880, 586, 871,
                              3727, 13, 256}));
  EXPECT_EQ(tok.encode("该助手为DeepSeek-R1，由深度求索公司创造。\n今天是2025年5月28日，星期一。\n"),
            (std::vector<int>{75882, 110498, 17714, 33464, 39350, 10911, 16, 3837, 67071, 102217, 30918, 50984,
                              73218, 100211, 8997, 100644, 20412, 17, 15, 17, 20, 7948, 20, 9754, 17, 23, 8903,
                              3837, 102600, 14777, 8997}));
  EXPECT_EQ(tok.encode("$\\frac{m}{n}$ where $m+n=77$."),
            (std::vector<int>{58736, 37018, 90, 76, 15170, 77, 31716, 1380, 400, 76, 38334, 28, 22, 22, 12947}));
}

// Qwen3's tokenizer.json declares NFC: decomposed text encodes as its composed form does (which
// is NFC already, so these ids are the ones Hugging Face gives for it: see MatchesHuggingFaceIds).
TEST(ByteBpeQwen3, AppliesNfc) {
  KVB_REQUIRE_QWEN3(tok);
  EXPECT_EQ(tok.encode("I'M sure THEY'LL win \U0001F600\U0001F44B\U0001F3FD cafe\u0301 nai\u0308ve\r\n\r\nEnd.  "),
            (std::vector<int>{40, 27603, 2704, 62493, 6, 4086, 3164, 90316, 145707, 145375, 51950, 94880, 586, 871,
                              3727, 13, 256}));
  EXPECT_EQ(tok.encode("\u1100\u1161\u11a8 \u212b"), tok.encode("\uac01 \u00c5"));
  EXPECT_EQ(tok.decode(tok.encode("cafe\u0301"), false), "caf\u00e9");
}

TEST(ByteBpeQwen3, DecodesAndReencodesARecordedTrace) {
  KVB_REQUIRE_QWEN3(tok);
  KVB_REQUIRE_DATA(path, std::string(kTraceDir) +
                             "deepthink_offline_qid7_ridsparse_unbounded_20251107_103629.msgpack");
  const json trace = read_trace(path)["trace"];
  const auto ids = trace["token_ids"].get<std::vector<int>>();
  const auto response = trace["response"].get<std::string>();
  ASSERT_EQ(ids.size(), 2048u);
  EXPECT_EQ(ids.front(), 151667);  // <think>: a non-special added token, so it is rendered
  EXPECT_EQ(tok.decode(ids), response);
  // Sampled tokens are canonical BPE here: re-encoding gives back all 2,048 ids.
  const auto again = tok.encode(response);
  EXPECT_EQ(same_tokens(tok, ids, again), ids.size());
  EXPECT_EQ(again, ids);
}

TEST(ByteBpeQwen3, CompressedTraces) {
  KVB_REQUIRE_QWEN3(tok);
  {
    // 15,359 tokens ending in EOS (151645, special: not part of the response text).
    KVB_REQUIRE_DATA(path, std::string(kTraceDir) +
                               "deepthink_offline_qid0_ridstream_default_20251107_213125.msgpack.gz");
    const json trace = read_trace(path)["trace"];
    auto ids = trace["token_ids"].get<std::vector<int>>();
    const auto response = trace["response"].get<std::string>();
    EXPECT_EQ(tok.decode(ids), response);
    ASSERT_EQ(ids.back(), tok.eos_id());
    ids.pop_back();
    EXPECT_EQ(tok.encode(response), ids);
  }
  {
    // 131,010 greedy tokens. Re-encoding differs in 18 places, all in the degenerate tail: the
    // model emitted "{" "}" (16 times) and "Ġ" "}" (twice) where canonical BPE has one token
    // ("{}" and "Ġ}"). Greedy decoding need not pick the canonical split; the text is the same.
    KVB_REQUIRE_DATA(path, std::string(kTraceDir) +
                               "deepthink_offline_qid0_ridsparse_regress_20251107_183851.msgpack.gz");
    const json trace = read_trace(path)["trace"];
    const auto ids = trace["token_ids"].get<std::vector<int>>();
    const auto response = trace["response"].get<std::string>();
    ASSERT_EQ(ids.size(), 131010u);
    EXPECT_EQ(tok.decode(ids), response);
    const auto again = tok.encode(response);
    EXPECT_EQ(again.size(), ids.size() - 18);
    EXPECT_EQ(same_tokens(tok, ids, again), ids.size() - 36);
  }
}

TEST(ByteBpeQwen3, RoundTripsAimeProblemsAndChinese) {
  KVB_REQUIRE_QWEN3(tok);
  KVB_REQUIRE_DATA(path, "workloads/aime25/aime25.jsonl");
  std::ifstream in(path);
  std::string line;
  int problems = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::string problem = json::parse(line).at("problem").get<std::string>();
    const auto ids = tok.encode(problem);
    EXPECT_GT(ids.size(), problem.size() / 8);  // ~3-4 bytes a token for English LaTeX
    EXPECT_EQ(tok.decode(ids), problem);
    ++problems;
  }
  EXPECT_EQ(problems, 30);
  for (const std::string text :
       {"该助手为DeepSeek-R1，由深度求索公司创造。\n今天是2025年5月28日，星期一。\n",
        "设 $k$ 为实数，使得方程组恰有一个复数解 $z$。求所有可能的 $k$ 之和。",
        "日本語のテキストと한국어 텍스트, Ελληνικά, Русский — mixed 🚀\u00A0\u3000end"}) {
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
}

}  // namespace
}  // namespace kvb

// Unicode normalisation a tokenizer declares: the forms against Python's unicodedata (expected
// strings below were produced by unicodedata.normalize), bytes that are not UTF-8, and the
// tokenizer.json "normalizer" values kvbench accepts or refuses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/tokenizers/unicode_normalizer.hpp"
#include "util/errors.hpp"

namespace kvb {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string in(UnicodeForm form, const std::string& text) { return normalize(text, Normalizer{form}); }

TEST(UnicodeNormalizer, FormsMatchPythonUnicodedata) {
  // Composition, also of two marks, of Hangul jamo, and canonical reordering of marks.
  EXPECT_EQ(in(UnicodeForm::NFC, "cafe\u0301"), "caf\u00e9");
  EXPECT_EQ(in(UnicodeForm::NFC, "a\u0308\u0304"), "\u01df");
  EXPECT_EQ(in(UnicodeForm::NFC, "\u1100\u1161\u11a8"), "\uac01");  // 9 bytes -> 3
  EXPECT_EQ(in(UnicodeForm::NFC, "x\u0323\u0307"), "\u1e8b\u0323");
  EXPECT_EQ(in(UnicodeForm::NFC, "\u212b"), "\u00c5");  // a singleton: ANGSTROM SIGN -> Å
  EXPECT_EQ(in(UnicodeForm::NFC, "\ufb01"), "\ufb01");  // a compatibility ligature stays in NFC
  EXPECT_EQ(in(UnicodeForm::NFD, "\u00c5"), "A\u030a");
  EXPECT_EQ(in(UnicodeForm::NFD, "x\u0307\u0323"), "x\u0323\u0307");
  EXPECT_EQ(in(UnicodeForm::NFKC, "\ufb01 \uff41"), "fi a");
  EXPECT_EQ(in(UnicodeForm::NFKD, "\u212b"), "A\u030a");
}

TEST(UnicodeNormalizer, AsciiAndNormalisedTextAreUnchanged) {
  for (UnicodeForm form : {UnicodeForm::NFC, UnicodeForm::NFD, UnicodeForm::NFKC, UnicodeForm::NFKD}) {
    EXPECT_EQ(in(form, "plain ASCII, 1+1=2\n"), "plain ASCII, 1+1=2\n") << to_string(form);
    EXPECT_EQ(in(form, ""), "") << to_string(form);
  }
  EXPECT_EQ(in(UnicodeForm::NFC, "你好，世界！ caf\u00e9"), "你好，世界！ caf\u00e9");
  EXPECT_EQ(normalize("cafe\u0301", Normalizer{}), "cafe\u0301");  // no normaliser declared
}

TEST(UnicodeNormalizer, BytesThatAreNotUtf8AreKeptAndTheRunsAroundThemNormalised) {
  EXPECT_EQ(in(UnicodeForm::NFC, "e\u0301\xff" "e\u0301"), "\u00e9\xff\u00e9");
  EXPECT_EQ(in(UnicodeForm::NFC, "\xc3"), "\xc3");          // a truncated sequence
  EXPECT_EQ(in(UnicodeForm::NFC, "\xed\xa0\x80"), "\xed\xa0\x80");  // an encoded surrogate
  EXPECT_EQ(in(UnicodeForm::NFD, "\xfe\u00c5\x80"), "\xfe" "A\u030a\x80");
}

TEST(UnicodeNormalizer, SequencesApplyEachFormInOrder) {
  EXPECT_EQ(normalize("\u00c5", Normalizer{UnicodeForm::NFD, UnicodeForm::NFC}), "\u00c5");
  EXPECT_EQ(normalize("\u00c5", Normalizer{UnicodeForm::NFC, UnicodeForm::NFD}), "A\u030a");
}

TEST(UnicodeNormalizer, ShrinkBoundHoldsForHangul) {
  const std::string jamo = "\u1100\u1161\u11a8";
  EXPECT_LE(jamo.size(), in(UnicodeForm::NFC, jamo).size() * kMaxNormalizationShrink);
}

std::string parse_error(const nlohmann::json& value) {
  try {
    parse_normalizer(value, "/x/tokenizer.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(UnicodeNormalizer, ParsesWhatTokenizerJsonDeclares) {
  using nlohmann::json;
  EXPECT_EQ(parse_normalizer(json(), "f"), Normalizer{});
  EXPECT_EQ(parse_normalizer(json{{"type", "NFC"}}, "f"), Normalizer{UnicodeForm::NFC});
  EXPECT_EQ(parse_normalizer(json{{"type", "Sequence"},
                                  {"normalizers", {{{"type", "NFKD"}}, {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}}}}},
                             "f"),
            (Normalizer{UnicodeForm::NFKD, UnicodeForm::NFC}));
  EXPECT_THAT(parse_error(json{{"type", "Lowercase"}}), AllOf(HasSubstr("/x/tokenizer.json"), HasSubstr("\"Lowercase\"")));
  EXPECT_THAT(parse_error(json{{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Strip"}}}}}),
              HasSubstr("\"Strip\""));
  EXPECT_THAT(parse_error(json{{"type", "Sequence"}}), HasSubstr("no \"normalizers\" list"));
  EXPECT_THAT(parse_error(json("NFC")), HasSubstr("not an object"));
  EXPECT_THAT(parse_error(json{{"type", 3}}), HasSubstr("not an object"));
}

}  // namespace
}  // namespace kvb

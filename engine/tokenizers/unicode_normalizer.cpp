#include "engine/tokenizers/unicode_normalizer.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "util/errors.hpp"
#include "util/json_fields.hpp"
#include "util/quote.hpp"

namespace kvb {

namespace {

utf8proc_option_t options_of(UnicodeForm form) {
  switch (form) {
    case UnicodeForm::NFC: return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case UnicodeForm::NFD: return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case UnicodeForm::NFKC: return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case UnicodeForm::NFKD: return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return utf8proc_option_t(0);
}

// Length of the valid UTF-8 sequence at text[i], or 0 when the byte there starts none.
size_t valid_sequence_length(std::string_view text, size_t i) {
  utf8proc_int32_t code_point = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                  utf8proc_ssize_t(text.size() - i), &code_point);
  return n > 0 ? size_t(n) : 0;
}

// Appends `run` (valid UTF-8) in `form` to `out`.
void append_normalized(std::string_view run, UnicodeForm form, std::string& out) {
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                          utf8proc_ssize_t(run.size()), &mapped, options_of(form));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(mapped, &std::free);
  if (n < 0) fail_runtime("Unicode {} normalisation failed: {}", to_string(form), utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(mapped), size_t(n));
}

std::string normalize_form(std::string_view text, UnicodeForm form) {
  std::string out;
  out.reserve(text.size());
  size_t run_start = 0, i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    if (const size_t n = valid_sequence_length(text, i)) {
      i += n;
      continue;
    }
    append_normalized(text.substr(run_start, i - run_start), form, out);
    out.push_back(text[i]);  // not UTF-8: kept as the byte it is
    run_start = ++i;
  }
  append_normalized(text.substr(run_start), form, out);
  return out;
}

UnicodeForm form_named(const std::string& type, const std::string& file) {
  if (type == "NFC") return UnicodeForm::NFC;
  if (type == "NFD") return UnicodeForm::NFD;
  if (type == "NFKC") return UnicodeForm::NFKC;
  if (type == "NFKD") return UnicodeForm::NFKD;
  fail_input("{}: normalizer {} is not supported (only NFC, NFD, NFKC, NFKD and a Sequence of them)", file,
             quote(type));
}

void collect(const nlohmann::json& value, const std::string& file, Normalizer& out) {
  if (!value.is_object() || !value.contains("type") || !value["type"].is_string())
    fail_input("{}: normalizer {} is not an object with a \"type\"", file, describe(value));
  const std::string type = value["type"].get<std::string>();
  if (type != "Sequence") {
    out.push_back(form_named(type, file));
    return;
  }
  const nlohmann::json* list = value.contains("normalizers") ? &value["normalizers"] : nullptr;
  if (!list || !list->is_array()) fail_input("{}: normalizer Sequence has no \"normalizers\" list", file);
  for (const nlohmann::json& item : *list) collect(item, file, out);
}

}  // namespace

const char* to_string(UnicodeForm form) {
  switch (form) {
    case UnicodeForm::NFC: return "NFC";
    case UnicodeForm::NFD: return "NFD";
    case UnicodeForm::NFKC: return "NFKC";
    case UnicodeForm::NFKD: return "NFKD";
  }
  return "?";
}

Normalizer parse_normalizer(const nlohmann::json& value, const std::string& file) {
  Normalizer out;
  if (!value.is_null()) collect(value, file, out);
  return out;
}

std::string normalize(std::string_view text, const Normalizer& normalizer) {
  std::string out(text);
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return out;  // every form leaves ASCII as it is
  for (UnicodeForm form : normalizer) out = normalize_form(out, form);
  return out;
}

}  // namespace kvb

#include "run/journal.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "util/errors.hpp"
#include "util/json_fields.hpp"

namespace kvb {

using nlohmann::json;

namespace {

constexpr int kJournalVersion = 1;

// The per-step KV bytes as [delta, count] runs: a cache grows by the same bytes every step and
// drops at each compression, so a long sequence takes a few pairs per event.
json encode_runs(const std::vector<uint64_t>& values) {
  json runs = json::array();
  uint64_t last = 0;
  for (uint64_t v : values) {
    const int64_t delta = static_cast<int64_t>(v - last);
    if (!runs.empty() && runs.back()[0].get<int64_t>() == delta) runs.back()[1] = runs.back()[1].get<int64_t>() + 1;
    else runs.push_back({delta, 1});
    last = v;
  }
  return runs;
}

std::vector<uint64_t> decode_runs(const json& runs) {
  std::vector<uint64_t> values;
  uint64_t last = 0;
  for (const json& run : runs) {
    const int64_t delta = run.at(0).get<int64_t>(), count = run.at(1).get<int64_t>();
    if (count < 1 || count > (int64_t(1) << 31)) throw std::invalid_argument("kv_bytes run count out of range");
    for (int64_t k = 0; k < count; ++k) values.push_back(last += static_cast<uint64_t>(delta));
  }
  return values;
}

json stats_to_json(const DecodeStats& s) {
  return {{"prefill_tokens", s.prefill_tokens},       {"prefill_seconds", s.prefill_seconds},
          {"decode_tokens", s.decode_tokens},         {"decode_seconds", s.decode_seconds},
          {"step_seconds", s.step_seconds},           {"step_kv_slots", s.step_kv_slots},
          {"kv_peak_bytes", s.kv_peak_bytes},         {"kv_capacity_bytes", s.kv_capacity_bytes},
          {"compression_events", s.compression_events}, {"evicted_slots", s.evicted_slots},
          {"compression_seconds", s.compression_seconds}};
}

DecodeStats stats_from_json(const json& j) {
  DecodeStats s;
  s.prefill_tokens = j.at("prefill_tokens").get<int64_t>();
  s.prefill_seconds = j.at("prefill_seconds").get<double>();
  s.decode_tokens = j.at("decode_tokens").get<int64_t>();
  s.decode_seconds = j.at("decode_seconds").get<double>();
  s.step_seconds = j.at("step_seconds").get<std::vector<double>>();
  s.step_kv_slots = j.at("step_kv_slots").get<std::vector<double>>();
  s.kv_peak_bytes = j.at("kv_peak_bytes").get<uint64_t>();
  s.kv_capacity_bytes = j.at("kv_capacity_bytes").get<uint64_t>();
  s.compression_events = j.at("compression_events").get<int64_t>();
  s.evicted_slots = j.at("evicted_slots").get<int64_t>();
  s.compression_seconds = j.at("compression_seconds").get<double>();
  return s;
}

// A replay's per-step series, by name: written when the sequence has them. A float goes through
// JSON as a double (17 digits), so it comes back bit for bit.
template <typename Outcome, typename Visit>  // Outcome: SequenceOutcome, const or not
void for_each_replay_series(Outcome& o, Visit visit) {
  visit("target_logprob", o.target_logprob);
  visit("predicted", o.predicted);
  visit("kl", o.kl);
  visit("full_logprob", o.full_logprob);
  visit("full_predicted", o.full_predicted);
  visit("retained_mass", o.retained_mass);
}

json sequence_to_json(const SequenceOutcome& o) {
  json j = {{"id", o.id},         {"item", o.item},
            {"draw", o.draw},     {"prompt", o.prompt},
            {"tokens", o.tokens}, {"stop_reason", o.stop_reason},
            {"prefill_seconds", o.prefill_seconds}, {"kv_bytes", encode_runs(o.kv_bytes)}};
  for_each_replay_series(o, [&](const char* name, const auto& series) {
    if (!series.empty()) j[name] = series;
  });
  return j;
}

SequenceOutcome sequence_from_json(const json& j) {
  SequenceOutcome o;
  o.id = j.at("id").get<std::string>();
  o.item = j.at("item").get<int>();
  o.draw = j.at("draw").get<int>();
  o.prompt = j.at("prompt").get<std::vector<int>>();
  o.tokens = j.at("tokens").get<std::vector<int>>();
  o.stop_reason = j.at("stop_reason").get<std::string>();
  o.prefill_seconds = j.at("prefill_seconds").get<double>();
  o.kv_bytes = decode_runs(j.at("kv_bytes"));
  for_each_replay_series(o, [&](const char* name, auto& series) {
    if (j.contains(name)) j[name].get_to(series);
  });
  return o;
}

// The journal's lines after the first (none with header_only), as whole lines; `whole_bytes` is
// where the last whole line ends (a torn last line, from a crash mid-write, is left out).
struct JournalText {
  json header;
  std::vector<std::pair<int, json>> lines;  // (line number, parsed)
  uint64_t whole_bytes = 0;
};

JournalText read_journal_text(const std::string& path, bool header_only, const std::string& context) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input("{}: cannot read {}: {}", context, path, std::strerror(errno));
  JournalText out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (in.eof()) break;  // no newline: a torn last line
    out.whole_bytes += line.size() + 1;
    json parsed = parse_json(line, fmt::format("{}: {} line {}", context, path, number));
    if (number == 1) out.header = std::move(parsed);
    else out.lines.emplace_back(number, std::move(parsed));
    if (header_only) break;
  }
  if (out.header.is_null()) fail_input("{}: {} is empty (the run ended before it decoded anything)", context, path);
  if (!out.header.is_object() || out.header.value("kvbench_journal", 0) != kJournalVersion)
    fail_input("{}: {} line 1: not a kvbench journal (version {})", context, path, kJournalVersion);
  return out;
}

std::string brief(const json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

std::string first_difference(const json& a, const json& b, const std::string& at) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [key, value] : a.items()) {
      const std::string path = at.empty() ? key : at + "." + key;
      if (!b.contains(key)) return fmt::format("{}: {} vs nothing", path, brief(value));
      std::string d = first_difference(value, b[key], path);
      if (!d.empty()) return d;
    }
    for (const auto& [key, value] : b.items())
      if (!a.contains(key)) return fmt::format("{}: nothing vs {}", at.empty() ? key : at + "." + key, brief(value));
    return "";
  }
  if (a.is_array() && b.is_array()) {
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      std::string d = first_difference(a[i], b[i], fmt::format("{}[{}]", at, i));
      if (!d.empty()) return d;
    }
    return a.size() == b.size() ? "" : fmt::format("{}: {} vs {} entries", at, a.size(), b.size());
  }
  return a == b ? "" : fmt::format("{}: {} vs {}", at, brief(a), brief(b));
}

RunJournal RunJournal::create(const std::string& path, const std::vector<std::string>& command_line,
                              const json& fingerprint) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) fail_input("--out: cannot write the journal {}: {}", path, std::strerror(errno));
  RunJournal journal(path, f);
  journal.append({{"kvbench_journal", kJournalVersion}, {"command_line", command_line}, {"fingerprint", fingerprint}});
  return journal;
}

JournalContents read_journal(const std::string& path, const std::string& context) {
  const JournalText text = read_journal_text(path, false, context);
  JournalContents out;
  out.fingerprint = text.header.value("fingerprint", json());
  out.whole_bytes = text.whole_bytes;
  for (const auto& [number, line] : text.lines) {
    try {
      JournalRun& run = out.runs[line.at("run").get<std::string>()];
      if (line.contains("sequence")) {
        SequenceOutcome o = sequence_from_json(line["sequence"]);
        run.sequences[{o.item, o.draw}] = std::move(o);
      } else {
        const json& c = line.at("complete");
        run.complete = JournalRun::Complete{stats_from_json(c.at("stats")), c.at("peak_rss_bytes").get<uint64_t>(),
                                            c.at("timed_sequences").get<int>()};
      }
    } catch (const std::exception& e) {  // json's type and key errors, a bad run length
      fail_input("{}: {} line {}: not a journal entry ({})", context, path, number, e.what());
    }
  }
  return out;
}

RunJournal RunJournal::resume(const std::string& path, const json& fingerprint) {
  JournalContents contents = read_journal(path, "--resume");
  const std::string d = first_difference(contents.fingerprint, fingerprint);
  if (!d.empty())
    fail_input("--resume: {} was written for another run ({}: journal vs this run); resume with the flags it was "
               "started with",
               path, d);
  // Cut a torn last line away so that appended lines start on a line of their own.
  std::error_code ec;
  std::filesystem::resize_file(path, contents.whole_bytes, ec);
  if (ec) fail_input("--resume: cannot repair {}: {}", path, ec.message());
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) fail_input("--resume: cannot append to {}: {}", path, std::strerror(errno));
  RunJournal journal(path, f);
  journal.previous_ = std::move(contents.runs);
  return journal;
}

RunJournal::RunJournal(RunJournal&& other) noexcept
    : path_(std::move(other.path_)), file_(other.file_), previous_(std::move(other.previous_)) {
  other.file_ = nullptr;
}

RunJournal::~RunJournal() {
  if (file_) std::fclose(file_);
}

const JournalRun& RunJournal::previous(const std::string& run) const {
  static const JournalRun kNothing;
  const auto it = previous_.find(run);
  return it == previous_.end() ? kNothing : it->second;
}

void RunJournal::append(const json& line) {
  const std::string text = line.dump() + "\n";
  // Flushed line by line: a crash loses at most the line being written.
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0)
    fail_runtime("journal {}: write failed: {}", path_, std::strerror(errno));
}

void RunJournal::record_sequence(const std::string& run, const SequenceOutcome& sequence) {
  append({{"run", run}, {"sequence", sequence_to_json(sequence)}});
}

void RunJournal::record_complete(const std::string& run, const JournalRun::Complete& c) {
  append({{"run", run},
          {"complete", {{"stats", stats_to_json(c.stats)}, {"peak_rss_bytes", c.peak_rss_bytes},
                        {"timed_sequences", c.timed_sequences}}}});
}

std::vector<std::string> journal_command_line(const std::string& path) {
  const JournalText text = read_journal_text(path, true, "--resume");
  try {
    return text.header.at("command_line").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    fail_input("--resume: {} line 1: no command line ({})", path, e.what());
  }
}

}  // namespace kvb

#include "run/steps_csv.hpp"

#include <fmt/format.h>

#include "reports/markup.hpp"

namespace kvb {

std::string render_steps_csv(const std::vector<MethodRun>& runs, RunMode mode) {
  const bool replay = mode == RunMode::Replay;
  std::string out = replay ? "method,budget,sequence,step,token,kv_bytes,full_logprob,method_logprob,kl,full_argmax,"
                             "method_argmax,retained_mass\n"
                           : "method,budget,sequence,step,token,kv_bytes\n";
  for (const MethodRun& run : runs) {
    for (const SequenceOutcome& o : run.output.sequences) {
      const std::string id = csv_quote(o.id);  // sequence ids come from workloads
      for (size_t i = 0; i < o.tokens.size(); ++i) {
        out += fmt::format("{},{},{},{},{},{}", method_name(run.method), run.budget, id, i, o.tokens[i],
                           i < o.kv_bytes.size() ? std::to_string(o.kv_bytes[i]) : "");
        if (replay && i < o.kl.size()) {
          out += fmt::format(",{:.6g},{:.6g},{:.6g},{},{},", o.full_logprob[i], o.target_logprob[i], o.kl[i],
                             o.full_predicted[i], o.predicted[i]);
          // Empty for full attention, which holds every key (no lockstep reference to measure against).
          if (i < o.retained_mass.size()) out += fmt::format("{:.6g}", o.retained_mass[i]);
        }
        out += '\n';
      }
    }
  }
  return out;
}

}  // namespace kvb

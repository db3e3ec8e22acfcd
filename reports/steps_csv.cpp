#include "reports/steps_csv.hpp"

#include <fmt/format.h>

namespace kvb {

std::string render_steps_csv(const std::vector<MethodRun>& runs, RunMode mode) {
  const bool replay = mode == RunMode::Replay;
  std::string out = replay ? "method,budget,sequence,step,token,full_logprob,method_logprob,kl,full_argmax,method_argmax\n"
                           : "method,budget,sequence,step,token\n";
  for (const MethodRun& run : runs) {
    for (const SequenceOutcome& o : run.output.sequences) {
      for (size_t i = 0; i < o.tokens.size(); ++i) {
        // Sequence ids come from workloads: quote them, doubling any quote inside.
        std::string id = o.id;
        for (size_t at = 0; (at = id.find('"', at)) != std::string::npos; at += 2) id.insert(at, "\"");
        out += fmt::format("{},{},\"{}\",{},{}", run.method, run.budget, id, i, o.tokens[i]);
        if (replay && i < o.kl.size())
          out += fmt::format(",{:.6g},{:.6g},{:.6g},{},{}", o.full_logprob[i], o.target_logprob[i], o.kl[i],
                             o.full_predicted[i], o.predicted[i]);
        out += '\n';
      }
    }
  }
  return out;
}

}  // namespace kvb

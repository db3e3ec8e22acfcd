#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "build_info.hpp"
#include "cli/commands.hpp"
#include "kernels/gpu_info.hpp"
#include "profiler/host_info.hpp"
#include "run/result.hpp"
#include "reports/table.hpp"
#include "util/byte_size.hpp"

namespace kvb::cli {

Action add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "host, GPU, driver, CUDA and memory facts");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "print JSON");
  return [as_json] {
    const HostInfo host = query_host_info();
    const GpuQuery gpus = query_gpus();
    const nlohmann::json gpu_list = gpus_to_json(gpus);
    if (*as_json) {
      nlohmann::json doc = {{"tool", {{"version", build::kVersion}, {"git_commit", build::kGitCommit}}},
                            {"host", host_to_json(host)}, {"available_memory_bytes", host_available_memory_bytes()},
                            {"gpus", gpu_list}};
      if (gpus.gpus.empty()) doc["gpus_note"] = gpus.why_none;
      std::printf("%s\n", doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    std::string out = fmt::format("kvbench {} ({})\n", build::kVersion, build::kGitCommit);
    out += fmt::format("host:    {} ({})\n", host.hostname, host.os);
    out += fmt::format("cpu:     {}, {} logical cores\n", host.cpu_model, host.logical_cores);
    out += fmt::format("memory:  {} total, {} available\n", human_bytes(double(host.memory_bytes)),
                       human_bytes(double(host_available_memory_bytes())));
    if (gpus.gpus.empty()) out += fmt::format("gpu:     none ({})\n", gpus.why_none);
    for (const GpuInfo& g : gpus.gpus)
      out += fmt::format("gpu {}:   {}, {} SMs, sm_{}{}, {}, driver {}.{}, runtime {}.{}\n", g.index, g.name,
                         g.sm_count, g.compute_major, g.compute_minor, human_bytes(double(g.memory_bytes)),
                         g.driver_version / 1000, g.driver_version % 1000 / 10, g.runtime_version / 1000,
                         g.runtime_version % 1000 / 10);
    std::fputs(out.c_str(), stdout);
    return 0;
  };
}

}  // namespace kvb::cli

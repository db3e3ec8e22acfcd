// kvbench capacity: per method and budget, the KV bytes one sequence holds at its peak and how many
// such sequences fit on this GPU (or on --gpu-memory when planning without one). Reads only the
// model's config: no weights are loaded.
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "run/capacity.hpp"
#include "engine/model.hpp"
#include "kernels/gpu_info.hpp"
#include "reports/table.hpp"
#include "util/byte_size.hpp"
#include "util/errors.hpp"

namespace kvb::cli {

namespace {

struct CapacityFlags {
  std::string model = "synthetic:qwen3-8b";
  int64_t context = 32768;
  int64_t prompt_tokens = 0;
  std::vector<std::string> methods = every_method_name();
  std::vector<int> budgets = {512, 1024, 2048, 3072, 4096};
  int divide_length = 128;
  std::string gpu_memory;
  double fraction = 0.90;
  bool json = false;
};

int execute(const CapacityFlags& f) {
  DeviceMemoryModel memory;
  memory.usable_fraction = f.fraction;
  std::string device;
  if (!f.gpu_memory.empty()) {
    memory.device_bytes = parse_byte_size(f.gpu_memory, "--gpu-memory");
    device = fmt::format("--gpu-memory {}", f.gpu_memory);
  } else {
    const GpuQuery q = query_gpus();
    if (q.gpus.empty())
      fail_input("capacity: no GPU answered ({}); pass --gpu-memory SIZE (e.g. 80GiB) to plan for one", q.why_none);
    memory.device_bytes = q.gpus[0].memory_bytes;
    device = fmt::format("GPU 0: {}", q.gpus[0].name);
  }
  LoadOptions lo;
  lo.config_only = true;
  lo.hash_files = false;
  const Model model = load_model(f.model, lo);

  std::vector<PolicyConfig> policies;
  for (const std::string& name : f.methods) {
    PolicyConfig p;
    p.method = parse_method(name);
    p.divide_length = f.divide_length;
    if (!traits(p.method).budgeted) {
      policies.push_back(p);
      continue;
    }
    for (int b : f.budgets) {
      p.budget = b;
      policies.push_back(p);
    }
  }
  nlohmann::json rows_json = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  CapacityPlan last;
  for (const PolicyConfig& p : policies) {
    const CapacityPlan plan = plan_capacity(model.config, p, f.context, f.prompt_tokens, memory);
    last = plan;
    rows.push_back({run_name(p), std::to_string(plan.slots_per_head), human_bytes(double(plan.kv_bytes_per_sequence)),
                    std::to_string(plan.max_sequences),
                    human_bytes(double(plan.kv_bytes_per_sequence) * double(plan.max_sequences)),
                    human_bytes(double(plan.engine_bytes))});
    rows_json.push_back({{"method", std::string(method_name(p.method))},
                         {"budget", p.budget > 0 ? nlohmann::json(p.budget) : nlohmann::json(nullptr)},
                         {"slots_per_head", plan.slots_per_head},
                         {"kv_bytes_per_sequence", plan.kv_bytes_per_sequence},
                         {"engine_bytes", plan.engine_bytes},
                         {"max_sequences", plan.max_sequences}});
  }
  if (f.json) {
    const nlohmann::json doc = {{"model", f.model},
                                {"context", f.context},
                                {"prompt_tokens", f.prompt_tokens},
                                {"divide_length", f.divide_length},
                                {"device", device},
                                {"device_bytes", memory.device_bytes},
                                {"usable_fraction", memory.usable_fraction},
                                {"weight_bytes", last.weight_bytes},
                                {"methods", rows_json}};
    std::printf("%s\n", doc.dump(2).c_str());
    return 0;
  }
  std::printf("%s, context %lld tokens (%lld prompt), %s: %s usable of %s; bf16 weights %s\n\n", f.model.c_str(),
              static_cast<long long>(f.context), static_cast<long long>(f.prompt_tokens), device.c_str(),
              human_bytes(double(last.usable_bytes)).c_str(), human_bytes(double(memory.device_bytes)).c_str(),
              human_bytes(double(last.weight_bytes)).c_str());
  std::fputs(markdown_table({"method", "KV slots/head", "KV/sequence", "max sequences", "KV at max", "workspace at max"}, rows)
                 .c_str(),
             stdout);
  if (last.max_sequences == 0) std::printf("\nnot even one sequence fits in the usable memory\n");
  return 0;
}

}  // namespace

Action add_capacity_command(CLI::App& app) {
  auto f = std::make_shared<CapacityFlags>();
  CLI::App* cmd = app.add_subcommand("capacity", "maximum concurrent sequences per method and budget on a GPU");
  cmd->add_option("--model,-m", f->model, "model (only its config is read)")->capture_default_str();
  cmd->add_option("--context", f->context, "tokens per sequence: prompt + generation")->capture_default_str();
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "of which prompt")->capture_default_str();
  cmd->add_option("--method", f->methods, "comma list of methods")->delimiter(',')->capture_default_str();
  cmd->add_option("--budget", f->budgets, "comma list of budgets")->delimiter(',')->capture_default_str();
  cmd->add_option("--divide-length", f->divide_length, "compression interval")->capture_default_str();
  cmd->add_option("--gpu-memory", f->gpu_memory, "plan for a GPU of this memory (e.g. 80GiB) instead of this one's");
  cmd->add_option("--memory-fraction", f->fraction, "share of the GPU's memory kvbench may use")->capture_default_str();
  cmd->add_flag("--json", f->json, "print JSON");
  return [f] { return execute(*f); };
}

}  // namespace kvb::cli

#pragma once
// `kvbench run --device cuda:all` (or cuda:0,2,3): one worker process per GPU, each kvbench
// itself run as shard i of N on its GPU (run/shard_plan.hpp) into OUT/shard-i-of-N, with its
// output in OUT/worker-i.log; one progress line for all of them; then the shards merged into
// OUT/result.json (run/merge.hpp).
// Exit: 0 every worker finished; 130 interrupted (Ctrl-C reaches every worker, each keeps what it
// measured); 3 a worker failed: the others finish, and the merged result is partial, holding what
// they measured; 2 bad input (no GPU answered, an index that does not exist, every worker refused
// its input), with the first worker's error.
#include <optional>
#include <string>
#include <vector>

namespace kvb {

// The GPUs a --device value names when it names more than one (cuda:all, cuda:0,2,3); nullopt
// for a single device (cpu, auto, cuda, cuda:N). InputError when none answers or an index is not
// on this machine.
std::optional<std::vector<int>> worker_gpus(const std::string& device);

// A worker's command line: `argv` (kvbench run ...) without --device, --out, --shard, --format
// and -q, then --device cuda:GPU --shard INDEX/COUNT --out SWEEP -q.
std::vector<std::string> worker_command_line(const std::vector<std::string>& argv, int index, int count, int gpu,
                                             const std::string& sweep);

// `formats`: the parent's --format list, rendered from the merged result (the workers write none).
int run_workers(const std::vector<std::string>& argv, const std::vector<int>& gpus, const std::string& sweep,
                const std::vector<std::string>& formats, bool quiet);

}  // namespace kvb

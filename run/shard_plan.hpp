#pragma once
// Which share of a sweep this process runs: its place among N shards (from --shard I/N or from the
// launcher's environment) and the deterministic, balanced assignment of work units to shards.
//
// A work unit is one (run, item, draw): a method at a budget decoding one draw of one workload
// item. Units are balanced by expected tokens (prompt + the most new tokens it may decode, or
// the trace it replays), longest first onto the least loaded shard (ties: the lower shard, the
// earlier unit), so every shard computes the same assignment from the same configuration.
//
// Launcher conventions, in the order they are looked at (the first that places the process in a
// group of more than one wins; `placed_by` names it):
//   OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE   Open MPI's mpirun
//   PMI_RANK / PMI_SIZE                           MPICH, Intel MPI, srun --mpi=pmi2
//   SLURM_ARRAY_TASK_ID (with SLURM_ARRAY_TASK_MIN, _COUNT and _STEP) and SLURM_PROCID /
//     SLURM_NTASKS                                a Slurm job array, srun tasks, or both: task p of
//                                                 array element a is shard a * NTASKS + p
//   RANK / WORLD_SIZE                             torchrun and other launchers
//   JOB_COMPLETION_INDEX / KVBENCH_SHARD_COUNT    a Kubernetes Indexed Job (the count is the Job's
//                                                 `completions`, passed by the recipe)
// A variable that is not a number, or an index outside its count, is an InputError naming it.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kvb {

struct ShardPlace {
  int index = 0;
  int count = 1;
  std::string placed_by;  // "--shard", or the variables that placed it
  std::string text() const;  // "I/N"
};

// "I/N" with 0 <= I < N (--shard). InputError otherwise.
ShardPlace parse_shard(const std::string& text);

// The place the launcher's environment gives this process; nullopt when none places it among
// more than one. `getenv` answers a variable's value or nullptr (std::getenv in the tool).
std::optional<ShardPlace> shard_from_environment(const std::function<const char*(const char*)>& getenv);

struct WorkUnit {
  int run = 0;  // index of the (method, budget) run
  int item = 0, draw = 0;
  int64_t expected_tokens = 0;
};

// The shard each unit belongs to (same order as `units`).
std::vector<int> assign_units(const std::vector<WorkUnit>& units, int shards);

}  // namespace kvb

#include "tests/test_support.hpp"

#include <sys/wait.h>

#include <cstdio>

namespace kvb::test {

CommandResult run_kvbench(const std::string& args) {
  CommandResult r;
  const std::string cmd = std::string("'") + KVBENCH_BINARY + "' " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace kvb::test

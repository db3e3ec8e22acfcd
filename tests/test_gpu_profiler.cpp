// The GPU side of the profiler. Without a GPU: GPU records placed on the host clock, attributed to
// the innermost host phase that launched them, summarised per kernel and drawn on their own Chrome
// trace tracks, all on hand-made records; NVML telemetry summaries and throttle warnings on
// hand-made samples; CUPTI and NVML saying why they are unavailable on a machine without a driver.
// With a GPU: real kernel and memcpy records in the right phase, real telemetry, a traced CUDA run.
#include <gtest/gtest.h>

#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "kernels/gpu_info.hpp"
#include "profiler/cupti_tracer.hpp"
#include "profiler/gpu_activity.hpp"
#include "profiler/nvml_sampler.hpp"
#include "reports/table.hpp"
#include "tests/json_schema_check.hpp"
#include "tests/test_support.hpp"
#ifdef KVBENCH_HAVE_CUDA
#include "kernels/cuda/device_buffer.hpp"
#endif

namespace kvb::test {
namespace {

using nlohmann::json;
using profiler::GpuActivity;
using profiler::GpuActivityKind;

// A definition of docs/schemas/result.schema.json as a schema of its own.
json result_schema_def(const std::string& name) {
  const json root = load_schema("result.schema.json");
  return {{"$defs", root["$defs"]}, {"$ref", "#/$defs/" + name}};
}

GpuActivity kernel(const std::string& name, int64_t launch, int64_t start, int64_t end, uint32_t stream = 7) {
  GpuActivity a;
  a.name = name;
  a.launch_ns = launch;
  a.start_ns = start;
  a.end_ns = end;
  a.stream_id = stream;
  a.grid = {64, 2, 1};
  a.block = {128, 1, 1};
  a.registers_per_thread = 40;
  a.shared_memory_bytes = 49152;
  return a;
}

GpuActivity copy(int64_t launch, int64_t start, int64_t end, uint64_t bytes) {
  GpuActivity a = kernel("memcpy HtoD", launch, start, end, 9);
  a.kind = GpuActivityKind::Memcpy;
  a.bytes = bytes;
  return a;
}

// Two decode steps with nested ranges, as the decode loop records them (in closing order).
std::vector<profiler::Event> host_ranges() {
  return {{"attention", 100, 300, 1}, {"mlp", 400, 300, 1},          {"compress", 800, 150, 1},
          {"decode step", 0, 1000, 0}, {"attention", 2100, 100, 1}, {"decode step", 2000, 1000, 0}};
}

TEST(GpuActivity, LaunchTimesComeFromTheRuntimeCallOnTheHostClock) {
  profiler::GpuCapture capture;
  capture.activities = {kernel("a", 0, 5'000'400, 5'000'900), kernel("b", 0, 5'001'000, 5'001'500)};
  capture.activities[0].correlation_id = 11;
  capture.activities[1].correlation_id = 12;  // launched through an untraced API: no runtime record
  capture.launch_ns[11] = 5'000'100;
  const auto placed = profiler::place_on_host_clock(std::move(capture), 5'000'000);
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[0].launch_ns, 100);
  EXPECT_EQ(placed[0].start_ns, 400);
  EXPECT_EQ(placed[0].end_ns, 900);
  EXPECT_EQ(placed[1].launch_ns, 1000);  // falls back to its GPU start
}

TEST(GpuActivity, EachLaunchLandsInTheInnermostRangeHoldingIt) {
  std::vector<GpuActivity> records = {
      kernel("attn", 150, 160, 300),   kernel("gemm", 450, 460, 600),  kernel("gemm", 750, 760, 790),
      kernel("topk", 800, 810, 900),   kernel("attn", 2150, 2160, 2190), kernel("gemm", 1000, 1010, 1100),
      kernel("late", 5000, 5001, 5002), copy(50, 60, 90, 4096),          kernel("first", -5, 0, 10)};
  profiler::attribute_phases(records, host_ranges());
  const std::vector<std::string> phases = {"attention",   "mlp",       "decode step",        "compress",
                                           "attention",   "(outside phases)", "(outside phases)", "decode step",
                                           "(outside phases)"};
  for (size_t i = 0; i < records.size(); ++i) EXPECT_EQ(records[i].phase, phases[i]) << records[i].name << " #" << i;

  // No host ranges at all: everything is outside.
  profiler::attribute_phases(records, {});
  for (const GpuActivity& a : records) EXPECT_EQ(a.phase, profiler::kOutsidePhases);
}

TEST(GpuActivity, KernelTableAddsUpToTheTracedKernelTime) {
  profiler::GpuRunTrace trace;
  trace.activities = {kernel("attn", 150, 0, 300),  kernel("gemm", 450, 0, 100), kernel("gemm", 750, 0, 500),
                      kernel("attn", 2150, 0, 100), copy(50, 0, 40, 4096),       copy(60, 0, 20, 1024)};
  trace.dropped_records = 3;
  profiler::attribute_phases(trace.activities, host_ranges());
  const json p = profiler::gpu_profile(trace);
  ASSERT_EQ(schema_violation(p, result_schema_def("gpu_profile")), "");

  const double kernel_ns = 300 + 100 + 500 + 100;
  EXPECT_DOUBLE_EQ(p["kernel_ms"].get<double>(), kernel_ns * 1e-6);
  double total = 0, share = 0;
  for (const json& row : p["kernels"]) {
    total += row["total_ms"].get<double>();
    share += row["share"].get<double>();
    double by_phase = 0;
    for (const auto& [phase, ms] : row["phase_ms"].items()) by_phase += ms.get<double>();
    EXPECT_NEAR(by_phase, row["total_ms"].get<double>(), 1e-12) << row.dump();
  }
  EXPECT_NEAR(total, p["kernel_ms"].get<double>(), 1e-12);
  EXPECT_NEAR(share, 1.0, 1e-12);

  ASSERT_EQ(p["kernels"].size(), 2u);
  const json& gemm = p["kernels"][0];  // heaviest first: 600 ns against 400
  EXPECT_EQ(gemm["name"], "gemm");
  EXPECT_EQ(gemm["calls"], 2);
  EXPECT_DOUBLE_EQ(gemm["min_ms"].get<double>(), 100e-6);
  EXPECT_DOUBLE_EQ(gemm["max_ms"].get<double>(), 500e-6);
  EXPECT_DOUBLE_EQ(gemm["mean_ms"].get<double>(), 300e-6);
  EXPECT_DOUBLE_EQ(gemm["phase_ms"]["mlp"].get<double>(), 100e-6);
  EXPECT_DOUBLE_EQ(gemm["phase_ms"]["decode step"].get<double>(), 500e-6);
  EXPECT_DOUBLE_EQ(p["kernels"][1]["phase_ms"]["attention"].get<double>(), 400e-6);

  EXPECT_EQ(p["memcpy"]["calls"], 2);
  EXPECT_EQ(p["memcpy"]["bytes"], 5120);
  EXPECT_DOUBLE_EQ(p["memcpy"]["total_ms"].get<double>(), 60e-6);
  EXPECT_EQ(p["memset"]["calls"], 0);
  EXPECT_EQ(p["dropped_records"], 3);

  // No kernels: an empty table, no division by zero.
  const json empty = profiler::gpu_profile({});
  EXPECT_TRUE(empty["kernels"].empty());
  EXPECT_EQ(empty["kernel_ms"].get<double>(), 0.0);
}

TEST(GpuActivity, GpuEventsHaveTracksOfTheirOwn) {
  const std::vector<profiler::Event> host = host_ranges();
  profiler::GpuRunTrace gpu;
  gpu.activities = {kernel("attn", 150, 160, 300, 7), kernel("gemm", 450, 460, 600, 13), copy(50, 60, 90, 4096)};
  profiler::attribute_phases(gpu.activities, host);
  const json trace = profiler::chrome_trace({{"full", &host, &gpu}, {"snapkv@64", &host, nullptr}});
  ASSERT_EQ(schema_violation(trace, load_schema("trace.schema.json")), "");

  std::set<int64_t> host_tids, gpu_tids, named_streams;
  bool gpu_process_named = false;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M") {
      gpu_process_named |= e["pid"] == 2 && e["name"] == "process_name" && e["args"]["name"] == "GPU";
      if (e["pid"] == 2 && e["name"] == "thread_name") named_streams.insert(e["tid"].get<int64_t>());
      continue;
    }
    if (e["cat"] == "host") {
      EXPECT_EQ(e["pid"], 1) << e.dump();
      host_tids.insert(e["tid"].get<int64_t>());
      continue;
    }
    EXPECT_EQ(e["pid"], 2) << e.dump();
    EXPECT_EQ(e["args"]["run"], "full");
    gpu_tids.insert(e["tid"].get<int64_t>());
    if (e["cat"] == "kernel") {
      EXPECT_EQ(e["args"]["grid"], json({64, 2, 1}));
      EXPECT_EQ(e["args"]["block"], json({128, 1, 1}));
      EXPECT_EQ(e["args"]["registers_per_thread"], 40);
      EXPECT_EQ(e["args"]["shared_memory_bytes"], 49152);
      EXPECT_EQ(e["args"]["phase"], e["name"] == "attn" ? "attention" : "mlp");
      EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 0.14);  // 140 ns, in microseconds
    } else {
      EXPECT_EQ(e["cat"], "memcpy");
      EXPECT_EQ(e["args"]["bytes"], 4096);
      EXPECT_EQ(e["args"]["phase"], "decode step");
    }
  }
  EXPECT_EQ(host_tids, (std::set<int64_t>{1, 2}));   // one host track per run
  EXPECT_EQ(gpu_tids, (std::set<int64_t>{7, 9, 13}));  // one GPU track per stream
  EXPECT_EQ(named_streams, gpu_tids);
  EXPECT_TRUE(gpu_process_named);

  // Without GPU records there is no GPU process at all.
  const json host_only = profiler::chrome_trace({{"full", &host, nullptr}});  // held: a range-for does not extend it
  for (const json& e : host_only["traceEvents"]) EXPECT_EQ(e["pid"], 1);
}

TEST(GpuActivity, KernelNamesAreDemangled) {
  EXPECT_EQ(profiler::demangle("_Z3fooi"), "foo(int)");
  EXPECT_EQ(profiler::demangle("_ZN3kvb4cuda6kernelIfEEvPT_i"), "void kvb::cuda::kernel<float>(float*, int)");
  EXPECT_EQ(profiler::demangle("plain_c_kernel"), "plain_c_kernel");
  EXPECT_EQ(profiler::demangle(nullptr), "(unnamed)");
}

profiler::TelemetrySample sample(double sm, double power, double temp, uint64_t reasons) {
  profiler::TelemetrySample s;
  s.sm_clock_mhz = sm;
  s.memory_clock_mhz = 2619;
  s.power_w = power;
  s.temperature_c = temp;
  s.clock_event_reasons = reasons;
  return s;
}

TEST(Telemetry, SummaryAndThrottleWarning) {
  const std::vector<profiler::TelemetrySample> samples = {sample(1980, 300, 60, 0x1), sample(1755, 450, 70, 0),
                                                          sample(1980, 700, 83, 0x4 | 0x20)};
  const json t = profiler::telemetry_summary(samples, 0, 100);
  ASSERT_EQ(schema_violation(t, result_schema_def("gpu_telemetry")), "");
  EXPECT_TRUE(t["sampled"].get<bool>());
  EXPECT_EQ(t["samples"], 3);
  EXPECT_EQ(t["sm_clock_mhz"], json({{"min", 1755.0}, {"median", 1980.0}, {"max", 1980.0}}));
  EXPECT_EQ(t["memory_clock_mhz"]["median"], 2619.0);
  EXPECT_DOUBLE_EQ(t["power_w"]["mean"].get<double>(), 1450.0 / 3);
  EXPECT_EQ(t["power_w"]["max"], 700.0);
  EXPECT_EQ(t["temperature_c"]["max"], 83.0);
  EXPECT_EQ(t["throttle_reasons"], json({"gpu_idle", "sw_power_cap", "sw_thermal_slowdown"}));
  const std::string warning = t["warning"].get<std::string>();
  EXPECT_NE(warning.find("sw_power_cap, sw_thermal_slowdown"), std::string::npos) << warning;
  EXPECT_NE(warning.find("1 of 3"), std::string::npos) << warning;
  EXPECT_EQ(warning.find("gpu_idle"), std::string::npos) << warning;
}

TEST(Telemetry, IdleAndApplicationClocksAreNoWarningAndMissingReadingsAreNull) {
  std::vector<profiler::TelemetrySample> samples = {sample(1410, 80, 40, 0x1 | 0x2 | 0x10 | 0x100)};
  samples[0].power_w.reset();
  samples[0].temperature_c.reset();
  const json t = profiler::telemetry_summary(samples, 3, 100);
  ASSERT_EQ(schema_violation(t, result_schema_def("gpu_telemetry")), "");
  EXPECT_TRUE(t["warning"].is_null());
  EXPECT_TRUE(t["power_w"].is_null());
  EXPECT_TRUE(t["temperature_c"].is_null());
  EXPECT_EQ(t["gpu_index"], 3);
  EXPECT_EQ(profiler::clock_event_reason_names(0x8 | 0x800), (std::vector<std::string>{"hw_slowdown", "0x800"}));
  EXPECT_NE(profiler::throttle_warning({sample(1000, 1, 1, 0x40)}, 0), "");  // hw thermal slowdown
}

TEST(GpuActivity, SummaryPrintsTheKernelTableAndTheThrottleWarning) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --device cpu --method full -n 8 --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "result.json");
  json doc = json::parse(in);
  // What a traced, throttled GPU run adds to the result.
  profiler::GpuRunTrace trace;
  trace.activities = {kernel("attn_kernel", 150, 0, 300), kernel("gemm_kernel", 450, 0, 100)};
  profiler::attribute_phases(trace.activities, host_ranges());
  doc["runs"][0]["measurements"]["gpu_profile"] = profiler::gpu_profile(trace);
  doc["device"]["gpu_telemetry"] = profiler::telemetry_summary({sample(1500, 700, 88, 0x40)}, 0, 100);
  ASSERT_EQ(schema_violation(doc, load_schema("result.schema.json")), "");

  const std::string table = render_summary_table(doc);
  for (const char* expected : {"main phase", "attn_kernel", "attention (100%)", "gemm_kernel", "mlp (100%)",
                               "warning: GPU 0 was throttled (hw_thermal_slowdown) in 1 of 1"})
    EXPECT_NE(table.find(expected), std::string::npos) << expected << " in\n" << table;
  EXPECT_LT(table.find("attn_kernel"), table.find("gemm_kernel"));  // heaviest first
}

bool gpu_answers() { return !query_gpus().gpus.empty(); }

TEST(CuptiTracer, UnavailableWithoutADriverSaysWhyOnce) {
  if (gpu_answers()) GTEST_SKIP() << "a GPU answers here: CUPTI may work (see CuptiOnGpu)";
  profiler::enable(true);
  for (int attempt = 0; attempt < 2; ++attempt) {  // the second tracer fails for the same reason, not "busy"
    profiler::CuptiTracer tracer;
    EXPECT_FALSE(tracer.available());
    EXPECT_EQ(tracer.unavailable_reason().rfind("CUPTI not available: ", 0), 0u) << tracer.unavailable_reason();
    EXPECT_EQ(tracer.unavailable_reason().find("another"), std::string::npos) << tracer.unavailable_reason();
    EXPECT_EQ(tracer.unavailable_reason().find('\n'), std::string::npos);
    EXPECT_TRUE(tracer.take({}).activities.empty());
  }
  profiler::enable(false);
}

TEST(NvmlSampler, UnavailableWithoutADriverSaysWhy) {
  if (gpu_answers()) GTEST_SKIP() << "a GPU answers here: NVML should work (see NvmlOnGpu)";
  profiler::NvmlSampler sampler(GpuInfo{});
  EXPECT_FALSE(sampler.available());
  EXPECT_EQ(sampler.unavailable_reason().rfind("NVML not available: ", 0), 0u) << sampler.unavailable_reason();
  const json t = sampler.finish();
  EXPECT_EQ(schema_violation(t, result_schema_def("gpu_telemetry")), "");
  EXPECT_FALSE(t["sampled"].get<bool>());
  EXPECT_EQ(t["note"], sampler.unavailable_reason());
}

#ifdef KVBENCH_HAVE_CUDA

class CuptiOnGpu : public GpuTest {};

TEST_F(CuptiOnGpu, KernelsAndCopiesLandInTheirPhase) {
  profiler::enable(true);
  profiler::CuptiTracer tracer;
  if (!tracer.available()) GTEST_SKIP() << tracer.unavailable_reason();  // e.g. profiling not permitted
  const size_t n = 1 << 16;
  {
    profiler::Range upload("upload");
    cuda::DeviceBuffer<float> gate(std::vector<float>(n, 1.0f)), up(std::vector<float>(n, 2.0f));
    {
      profiler::Range compute("compute");
      cuda::swiglu(gate.get(), up.get(), n);
      cuda::synchronize("swiglu");
    }
  }
  const std::vector<profiler::Event> host = profiler::take_events();
  const profiler::GpuRunTrace trace = tracer.take(host);
  profiler::enable(false);
  bool saw_kernel = false, saw_copy = false;
  for (const GpuActivity& a : trace.activities) {
    EXPECT_LE(a.start_ns, a.end_ns) << a.name;
    if (a.kind == GpuActivityKind::Kernel && a.name.find("swiglu") != std::string::npos) {
      saw_kernel = true;
      EXPECT_EQ(a.phase, "compute");
      EXPECT_GT(a.grid[0] * a.block[0], 0);
      EXPECT_GT(a.registers_per_thread, 0);
    }
    if (a.kind == GpuActivityKind::Memcpy && a.bytes == n * sizeof(float)) {
      saw_copy = true;
      EXPECT_EQ(a.phase, "upload");
    }
  }
  EXPECT_TRUE(saw_kernel);
  EXPECT_TRUE(saw_copy);
}

class NvmlOnGpu : public GpuTest {};

TEST_F(NvmlOnGpu, SamplesClocksWhileRunning) {
  profiler::NvmlSampler sampler(query_gpus().gpus.front(), std::chrono::milliseconds(20));
  ASSERT_TRUE(sampler.available()) << sampler.unavailable_reason();
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  const json t = sampler.finish();
  EXPECT_EQ(schema_violation(t, result_schema_def("gpu_telemetry")), "");
  EXPECT_GE(t["samples"].get<int>(), 2);
  EXPECT_GT(t["sm_clock_mhz"]["max"].get<double>(), 0.0);
}

class TracedGpuRun : public GpuTest {};

TEST_F(TracedGpuRun, ResultHasKernelTableTelemetryAndGpuTracks) {
  TempDir dir;
  CommandResult r = run_kvbench("run -q --device cuda:0 --method full,streaming --budget 16 --divide-length 8 -n 24 "
                                "--trace --out " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream rin(dir / "result.json"), tin(dir / "trace.json");
  const json result = json::parse(rin), trace = json::parse(tin);
  EXPECT_EQ(schema_violation(result, load_schema("result.schema.json")), "");
  EXPECT_EQ(schema_violation(trace, load_schema("trace.schema.json")), "");
  EXPECT_TRUE(result["device"]["gpu_telemetry"]["sampled"].get<bool>()) << result["device"].dump();
  if (!result["device"]["gpu_trace"]["traced"].get<bool>())
    GTEST_SKIP() << result["device"]["gpu_trace"]["note"].get<std::string>();
  for (const json& run : result["runs"]) {
    const json& p = run["measurements"]["gpu_profile"];
    EXPECT_FALSE(p["kernels"].empty());
    EXPECT_EQ(p["dropped_records"], 0);
  }
  bool gpu_event = false;
  for (const json& e : trace["traceEvents"]) gpu_event |= e["ph"] == "X" && e["pid"] == 2;
  EXPECT_TRUE(gpu_event);
}

#endif  // KVBENCH_HAVE_CUDA

}  // namespace
}  // namespace kvb::test

#include "profiler/gpu_activity.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <tuple>

namespace kvb::profiler {

using nlohmann::json;

namespace {

// The GPU tracks' process in the Chrome trace (host ranges are on pid 1).
constexpr int kGpuPid = 2;

double duration_ms(const GpuActivity& a) { return std::max<int64_t>(0, a.end_ns - a.start_ns) * 1e-6; }

const char* kind_name(GpuActivityKind k) {
  switch (k) {
    case GpuActivityKind::Kernel: return "kernel";
    case GpuActivityKind::Memcpy: return "memcpy";
    case GpuActivityKind::Memset: return "memset";
  }
  return "unknown";
}

// Calls, bytes and time of the memcpys or the memsets of a run.
json transfer_totals(const GpuRunTrace& trace, GpuActivityKind kind) {
  int64_t calls = 0;
  uint64_t bytes = 0;
  double ms = 0;
  for (const GpuActivity& a : trace.activities) {
    if (a.kind != kind) continue;
    ++calls;
    bytes += a.bytes;
    ms += duration_ms(a);
  }
  return {{"calls", calls}, {"bytes", bytes}, {"total_ms", ms}};
}

json gpu_event(const GpuActivity& a, const std::string& run) {
  json args = {{"run", run}, {"phase", a.phase}, {"stream", a.stream_id}, {"correlation_id", a.correlation_id}};
  if (a.kind == GpuActivityKind::Kernel) {
    args["grid"] = a.grid;
    args["block"] = a.block;
    args["registers_per_thread"] = a.registers_per_thread;
    args["shared_memory_bytes"] = a.shared_memory_bytes;
  } else {
    args["bytes"] = a.bytes;
  }
  return {{"name", a.name},
          {"cat", kind_name(a.kind)},
          {"ph", "X"},
          {"ts", a.start_ns / 1000.0},
          {"dur", std::max<int64_t>(0, a.end_ns - a.start_ns) / 1000.0},
          {"pid", kGpuPid},
          {"tid", a.stream_id},
          {"args", std::move(args)}};
}

// Chrome trace metadata: names a process (tid absent) or a track.
json name_event(const char* what, int pid, int64_t tid, const std::string& name) {
  json e = {{"name", what}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}};
  if (tid >= 0) e["tid"] = tid;
  return e;
}

}  // namespace

std::vector<GpuActivity> place_on_host_clock(GpuCapture capture, int64_t cupti_minus_host_ns) {
  for (GpuActivity& a : capture.activities) {
    const auto api = capture.launch_ns.find(a.correlation_id);
    a.launch_ns = (api != capture.launch_ns.end() ? api->second : a.start_ns) - cupti_minus_host_ns;
    a.start_ns -= cupti_minus_host_ns;
    a.end_ns -= cupti_minus_host_ns;
  }
  return std::move(capture.activities);
}

void attribute_phases(std::vector<GpuActivity>& activities, const std::vector<Event>& host) {
  // One sweep over both, in time order: `open` holds the chain of ranges around the current
  // time, innermost last (parents sort before children that start at the same instant).
  std::vector<const Event*> ranges;
  for (const Event& e : host) ranges.push_back(&e);
  std::sort(ranges.begin(), ranges.end(), [](const Event* a, const Event* b) {
    return std::tie(a->start_ns, a->depth) < std::tie(b->start_ns, b->depth);
  });
  std::vector<GpuActivity*> by_launch;
  for (GpuActivity& a : activities) by_launch.push_back(&a);
  std::sort(by_launch.begin(), by_launch.end(),
            [](const GpuActivity* a, const GpuActivity* b) { return a->launch_ns < b->launch_ns; });

  auto end_of = [](const Event* e) { return e->start_ns + e->duration_ns; };
  std::vector<const Event*> open;
  size_t next = 0;
  for (GpuActivity* a : by_launch) {
    for (; next < ranges.size() && ranges[next]->start_ns <= a->launch_ns; ++next) {
      while (!open.empty() && end_of(open.back()) <= ranges[next]->start_ns) open.pop_back();
      open.push_back(ranges[next]);
    }
    while (!open.empty() && end_of(open.back()) <= a->launch_ns) open.pop_back();
    a->phase = open.empty() ? kOutsidePhases : open.back()->name;
  }
}

json gpu_profile(const GpuRunTrace& trace) {
  struct KernelRow {
    DurationRow time;
    std::map<std::string, double> phase_ms;
  };
  std::map<std::string, KernelRow> kernels;
  double kernel_ms = 0;
  for (const GpuActivity& a : trace.activities) {
    if (a.kind != GpuActivityKind::Kernel) continue;
    const double ms = duration_ms(a);
    KernelRow& row = kernels[a.name];
    row.time.add(ms);
    row.phase_ms[a.phase.empty() ? kOutsidePhases : a.phase] += ms;
    kernel_ms += ms;
  }
  json rows = json::array();
  for (const auto& [name, row] : kernels) {
    json r = row.time.to_json(name, kernel_ms);
    r["phase_ms"] = row.phase_ms;
    rows.push_back(std::move(r));
  }
  sort_heaviest_first(rows);
  return {{"kernels", std::move(rows)},
          {"kernel_ms", kernel_ms},
          {"memcpy", transfer_totals(trace, GpuActivityKind::Memcpy)},
          {"memset", transfer_totals(trace, GpuActivityKind::Memset)},
          {"dropped_records", trace.dropped_records}};
}

json chrome_trace(const std::vector<TraceRun>& runs) {
  json events = json::array();
  events.push_back(name_event("process_name", 1, -1, "host phases"));
  std::set<uint32_t> streams;
  for (size_t i = 0; i < runs.size(); ++i) {
    const int tid = static_cast<int>(i) + 1;
    events.push_back(name_event("thread_name", 1, tid, runs[i].name));
    if (runs[i].host)
      for (json& e : chrome_events(*runs[i].host, runs[i].name, tid)) events.push_back(std::move(e));
    if (!runs[i].gpu) continue;
    for (const GpuActivity& a : runs[i].gpu->activities) {
      events.push_back(gpu_event(a, runs[i].name));
      streams.insert(a.stream_id);
    }
  }
  if (!streams.empty()) events.push_back(name_event("process_name", kGpuPid, -1, "GPU"));
  for (uint32_t s : streams) events.push_back(name_event("thread_name", kGpuPid, s, "stream " + std::to_string(s)));
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

std::string demangle(const char* name) {
  if (!name) return "(unnamed)";
  int status = 0;
  const std::unique_ptr<char, decltype(&std::free)> plain(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                                          &std::free);
  return status == 0 && plain ? std::string(plain.get()) : std::string(name);
}

}  // namespace kvb::profiler

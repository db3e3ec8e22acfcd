// CompressionOps on the device (kernels/cuda/compression_cuda.hpp): each run of an event uploads
// its group and segment tables in one asynchronous copy from page-locked staging (a region of its
// own per run, room for a whole batch, so runs never wait for each other), launches the batched
// kernels over all of them, and keeps the host's copy of the lengths in step (the new lengths are
// known from the plan). finish() is the event's one host synchronisation: it also reads back the
// failed checks. TriAttention's coefficient tables stay on the device while the next run or event
// needs the same times. Further synchronisations happen only where staging would be overwritten
// while a copy from it may still be pending -- new coefficient tables in a second pass of one
// event (more distinct times than the table holds) -- and where the host reads data back
// (read_positions for --dump-kept, read_scores for tests).
#include <algorithm>
#include <cstring>

#include "kernels/cuda/compression_cuda.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "util/errors.hpp"

namespace kvb {

namespace {

// Page-locked host memory, freed with the ops.
class PinnedBytes {
 public:
  explicit PinnedBytes(size_t bytes) : p_(static_cast<uint8_t*>(cuda::pinned_alloc_bytes(std::max<size_t>(bytes, 1), "compression staging"))) {}
  ~PinnedBytes() { cuda::pinned_free(p_); }
  PinnedBytes(const PinnedBytes&) = delete;
  PinnedBytes& operator=(const PinnedBytes&) = delete;
  uint8_t* get() const { return p_; }

 private:
  uint8_t* p_;
};

class CudaCompressionOps final : public CompressionOps {
 public:
  CudaCompressionOps(const KvStorage<bf16>& cache, const CompressionScratch& scratch, const CompressionShape& shape)
      : c_(cache), s_(scratch), shape_(shape), staging_(staging_bytes(shape)) {
    uint8_t* at = staging_.get();
    groups_ = reinterpret_cast<DeviceGroup*>(at);
    at += sizeof(DeviceGroup) * staged_segments(shape);
    segments_ = reinterpret_cast<DeviceSegment*>(at);
    at += sizeof(DeviceSegment) * staged_segments(shape);
    inv_freq_ = reinterpret_cast<double*>(at);  // 8-byte aligned: everything before is
    at += sizeof(double) * (shape.head_dim / 2 + 1);
    coefficients_ = reinterpret_cast<float*>(at);
    at += sizeof(float) * size_t(shape.coefficient_rows) * shape.coefficient_floats_per_row;
    args_ = reinterpret_cast<int32_t*>(at);
    at += sizeof(int32_t) * 2 * staged_segments(shape);
    flags_ = reinterpret_cast<int32_t*>(at);
  }

  const KvGeometry& geometry() const override { return c_.geometry; }
  int length(int layer, int seq, int kv_head) const override {
    return c_.host_lengths[c_.geometry.head(layer, seq, kv_head)];
  }
  int max_segments() const override { return std::max(shape_.max_segments, 1); }

  void begin(const CompressionEvent& event) override {
    const KvGeometry& g = c_.geometry;
    if (shape_.max_segments <= 0 || g.capacity > shape_.capacity)
      fail_runtime("CUDA compression: the engine's workspace was sized for {} segments of {} slots, this cache has {}",
                   shape_.max_segments, shape_.capacity, g.capacity);
    if (static_cast<int>(event.segments.size()) > shape_.max_segments)
      fail_runtime("CUDA compression: an event run of {} segments, the workspace holds {}", event.segments.size(),
                   shape_.max_segments);
    // This run's staging region follows the previous runs' (their copies may still be in flight).
    if (staged_ + event.segments.size() > staged_segments(shape_)) {
      cuda::synchronize("compression staging");
      staged_ = 0;
    }
    DeviceGroup* groups = groups_ + staged_;
    DeviceSegment* segments = segments_ + staged_;
    staged_ += event.segments.size();
    ++runs_;
    e_ = &event;
    // The event's distinct times, for TriAttention's coefficient rows.
    times_.assign(event.processed.begin(), event.processed.end());
    std::sort(times_.begin(), times_.end());
    times_.erase(std::unique(times_.begin(), times_.end()), times_.end());
    int max_length = 0;
    for (int gi = 0; gi < event.groups(); ++gi) {
      DeviceGroup& d = groups[gi];
      d.seg_begin = event.group_begin[gi];
      d.seg_end = event.group_begin[gi + 1];
      d.length = event.length[gi];
      d.keep = event.keep[gi];
      d.below = event.pins[gi].below;
      d.from = event.pins[gi].from;
      d.oldest = event.pins[gi].oldest;
      d.newest = event.pins[gi].newest;
      d.processed = event.processed[gi];
      d.time_row = static_cast<int32_t>(std::lower_bound(times_.begin(), times_.end(), d.processed) - times_.begin());
      d.noise_event = event.noise_event[gi];
      max_length = std::max(max_length, d.length);
      for (int si = d.seg_begin; si < d.seg_end; ++si) {
        const Segment& s = event.segments[si];
        const size_t head = g.head(s.layer, s.seq, s.kv_head);
        if (c_.host_lengths[head] != d.length)
          fail_runtime("compression event: layer {} sequence {} kv-head {} holds {} slots, planned {}", s.layer, s.seq,
                       s.kv_head, c_.host_lengths[head], d.length);
        segments[si] = DeviceSegment{s.layer, s.seq, s.kv_head, gi, static_cast<int64_t>(head)};
      }
    }
    cuda::copy_to_device_async(s_.groups, groups, sizeof(DeviceGroup) * event.groups());
    cuda::copy_to_device_async(s_.segments, segments, sizeof(DeviceSegment) * event.segments.size());
    if (runs_ == 1) cuda::fill_bytes(s_.flags, 0, sizeof(int32_t) * 4);
    d_ = cuda::DeviceEvent{};
    d_.groups = s_.groups;
    d_.segments = s_.segments;
    d_.n_groups = event.groups();
    d_.n_segments = static_cast<int>(event.segments.size());
    d_.max_length = max_length;
    d_.row = shape_.capacity;
    d_.positions_view = event.view == SlotView::Positions;
    d_.order = event.ranks ? s_.order : nullptr;
    d_.rank = event.ranks ? s_.rank : nullptr;
    d_.scores = s_.scores;
    d_.kept = s_.kept;
    if (d_.positions_view && !event.ranks) fail_runtime("compression event: the positions view needs ranks");
    cuda::event_begin(d_, c_, s_.sort_keys);
  }

  void tri_scores(const TriEventScoring& sc) override {
    if (sc.times.size() != times_.size() || !std::equal(times_.begin(), times_.end(), sc.times.begin()))
      fail_runtime("CUDA tri_scores: the coefficient table's times are not the event's");
    const size_t per_row = size_t(c_.geometry.n_layers) * sc.n_heads * sc.stride;
    if (per_row > shape_.coefficient_floats_per_row || shape_.coefficient_rows == 0)
      fail_runtime("CUDA tri_scores: {} coefficients per time, the workspace holds {}", per_row,
                   shape_.coefficient_floats_per_row);
    cuda::TriDeviceScoring d;
    d.n_u = sc.n_u;
    d.stride = sc.stride;
    d.n_heads = sc.n_heads;
    d.interleaved = sc.interleaved;
    d.seed = sc.seed;
    d.mean = sc.reduce == GroupReduce::Mean;
    d.coefficients = s_.coefficients;
    const int times = static_cast<int>(times_.size());
    for (int first = 0; first < times; first += shape_.coefficient_rows) {
      d.first_row = first;
      d.rows = std::min(shape_.coefficient_rows, times - first);
      // The tables depend on the time alone (this ops' method is fixed): the rows already on the
      // device are kept, e.g. for the further runs of an event whose sequences share one time.
      const std::vector<int32_t> rows(times_.begin() + first, times_.begin() + first + d.rows);
      if (rows != device_times_ || per_row != device_row_floats_) {
        if (coefficients_in_flight_) cuda::synchronize("coefficient staging");  // the last copy may still read it
        std::memcpy(coefficients_, sc.coefficients.data() + size_t(first) * per_row, sizeof(float) * d.rows * per_row);
        cuda::copy_to_device_async(s_.coefficients, coefficients_, sizeof(float) * d.rows * per_row);
        device_times_ = rows;
        device_row_floats_ = per_row;
        coefficients_in_flight_ = true;
      }
      cuda::event_tri_scores(d_, c_, d, s_.work, s_.moments);
    }
  }

  void window_scores(const WindowEventScoring& sc) override {
    if (sc.window > shape_.window) fail_runtime("CUDA window scores: a window of {}, the workspace holds {}", sc.window, shape_.window);
    cuda::event_window_scores(d_, c_, sc.window, sc.pool_radius, sc.redundancy, sc.lambda, sc.threshold, s_.work, s_);
  }

  void slot_scores() override { cuda::event_slot_scores(d_, c_); }
  void check_shared_layout() override { cuda::event_check_shared_layout(d_, c_, s_.flags); }
  void select() override { cuda::event_select(d_, c_, s_.sort_keys); }

  void read_scores(std::vector<float>& out) override {
    host_scores_.resize(size_t(d_.n_groups) * d_.row);
    cuda::copy_to_host_bytes(host_scores_.data(), s_.scores, sizeof(float) * host_scores_.size());
    for (int gi = 0; gi < e_->groups(); ++gi) {
      const float* s = host_scores_.data() + size_t(gi) * d_.row;
      out.insert(out.end(), s, s + e_->length[gi]);
    }
  }

  void compact() override {
    cuda::event_compact(d_, c_);
    for (int gi = 0; gi < e_->groups(); ++gi)
      for (int si = e_->group_begin[gi]; si < e_->group_begin[gi + 1]; ++si) {
        const Segment& s = e_->segments[si];
        c_.host_lengths[c_.geometry.head(s.layer, s.seq, s.kv_head)] = e_->keep[gi];
      }
  }

  void read_positions(std::vector<int32_t>& out) override {
    cuda::event_read_positions(d_, c_, s_.order);
    host_positions_.resize(size_t(d_.n_segments) * d_.row);
    cuda::copy_to_host_bytes(host_positions_.data(), s_.order, sizeof(int32_t) * host_positions_.size());
    for (int gi = 0; gi < e_->groups(); ++gi)
      for (int si = e_->group_begin[gi]; si < e_->group_begin[gi + 1]; ++si) {
        const int32_t* p = host_positions_.data() + size_t(si) * d_.row;
        out.insert(out.end(), p, p + e_->keep[gi]);
      }
  }

  void shift_sinks(int sinks, std::span<const int32_t> shift, std::span<const uint8_t> capture,
                   std::span<const double> inv_freq, bool interleaved) override {
    if (!c_.sink_keys || sinks > c_.geometry.sinks)
      fail_runtime("CUDA shift_sinks: {} sinks, the cache keeps {} originals", sinks, c_.geometry.sinks);
    // This run's arguments in its own staging region (the groups' offset), the frequencies once.
    int32_t* args = args_ + 2 * (staged_ - e_->segments.size());
    for (int gi = 0; gi < e_->groups(); ++gi) {
      args[2 * gi] = shift[gi];
      args[2 * gi + 1] = capture[gi];
    }
    cuda::copy_to_device_async(s_.group_args, args, sizeof(int32_t) * 2 * e_->groups());
    if (!inv_freq_uploaded_) {
      std::copy(inv_freq.begin(), inv_freq.end(), inv_freq_);
      cuda::copy_to_device_async(s_.inv_freq, inv_freq_, sizeof(double) * inv_freq.size());
      inv_freq_uploaded_ = true;
    }
    cuda::event_shift_sinks(d_, c_, sinks, s_.group_args, s_.inv_freq, interleaved);
  }

  void finish() override {
    if (runs_ == 0) return;
    cuda::copy_to_host_async(flags_, s_.flags, sizeof(int32_t) * 4);
    cuda::synchronize("compression");  // the event's one synchronisation
    runs_ = 0;
    staged_ = 0;
    coefficients_in_flight_ = false;
    e_ = nullptr;
    if (flags_[0])
      fail_runtime("triattention: the slots of a layer or kv-head differ from its selection group's first; a shared "
                   "selection needs identical layouts");
  }

 private:
  // Groups and segments of every run of an event: a whole batch's.
  static size_t staged_segments(const CompressionShape& s) {
    return static_cast<size_t>(std::max({s.max_segments, s.batch_segments, 1}));
  }
  static size_t staging_bytes(const CompressionShape& s) {
    return staged_segments(s) * (sizeof(DeviceGroup) + sizeof(DeviceSegment) + 2 * sizeof(int32_t)) +
           sizeof(float) * size_t(s.coefficient_rows) * s.coefficient_floats_per_row + sizeof(double) * (s.head_dim / 2 + 1) +
           4 * sizeof(int32_t);
  }

  KvStorage<bf16> c_;
  CompressionScratch s_;
  CompressionShape shape_;
  PinnedBytes staging_;
  DeviceGroup* groups_;
  DeviceSegment* segments_;
  float* coefficients_;
  int32_t* args_;
  double* inv_freq_;
  int32_t* flags_;
  const CompressionEvent* e_ = nullptr;
  cuda::DeviceEvent d_;
  int runs_ = 0;       // runs of the current event
  size_t staged_ = 0;  // staging entries its runs have used
  std::vector<int32_t> device_times_;  // the times whose coefficient tables are on the device
  size_t device_row_floats_ = 0;
  bool coefficients_in_flight_ = false;  // a copy from the coefficient staging may still be pending
  bool inv_freq_uploaded_ = false;
  std::vector<int32_t> times_, host_positions_;
  std::vector<float> host_scores_;
};

}  // namespace

std::unique_ptr<CompressionOps> make_cuda_compression_ops(const KvStorage<bf16>& cache, const CompressionScratch& scratch,
                                                          const CompressionShape& shape) {
  return std::make_unique<CudaCompressionOps>(cache, scratch, shape);
}

}  // namespace kvb

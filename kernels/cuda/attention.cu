// attention (ops_cuda.hpp): softmax(q.K / sqrt(d)) V over a bf16 KV cache, causal by position,
// GQA, per-(sequence, KV head) lengths; one kernel for decode and prefill plus a split merge.
//
// Main kernel, templated on the head dim HD (runtime dispatch below), kThreads = 128 (4 warps):
//  - grid (n tokens, n_kv_heads * head_chunks, splits). A block handles a query tile of up to
//    `tq` consecutive batch tokens of ONE sequence x the `gc` query heads of one KV-head group
//    (rows = tokens x heads <= kRows = 16), so every K/V tile it reads serves all of them. Tiles
//    start at batch indices that are multiples of tq or where the sequence changes; the block of a
//    token that is not a tile start returns at once. Decode (each token its own sequence) thus
//    gets one working block per (token, KV head), prefill a block per tq tokens.
//    gc = min(group, 16), head_chunks = ceil(group / gc), tq = max(1, 16 / gc).
//  - split-K: the `splits` blocks (gridDim.z) of one (tile, KV head) divide its `len` slots into
//    spans of max(256, ceil(len / splits) rounded up to 128) slots: a short cache uses few splits
//    (the rest write an empty partial), a long one all of them. splits is chosen on the host:
//    floor(4 blocks per SM / (n * n_kv_heads * head_chunks)), at most 64, ceil(capacity / 256)
//    and 1024 / n, and 1 without a workspace (lengths live on the device, so the per-sequence
//    choice happens in the kernel, from len).
//  - inside a block each warp walks its own 32-slot tiles of the span (warp w: slots
//    lo + 32w + 128k): it loads the tile's positions (one per lane) and skips the tile when no
//    slot is visible to any query of the block (causal prefill skips the future), else copies the
//    K and V tile (coalesced 16-byte loads) into its private shared memory as bf16 (K rows padded
//    to an odd number of words: lane j reading row j is conflict-free). Lane j scores slot j for
//    every row (q pre-scaled by log2(e)/sqrt(d), in shared memory, read as broadcasts), masks
//    slots with position > the row's token position or beyond the span to -inf, and does the
//    online-softmax update in fp32 base 2 (running max per row, warp-uniform; per-lane partial
//    sums; acc rescaled by exp2(m_old - m_new)); p goes through shared memory and each lane
//    accumulates its output columns lane + 32k over the tile's slots.
//  - at the end the 4 warps' (max, sum, acc) are combined through shared memory (reusing the
//    staging space) and written as out = acc / sum (splits == 1) or as a partial
//    (max, sum, acc) to the workspace. A row with no visible slot gives zeros.
// Shared memory (dynamic): q [16][HD] fp32 + row positions [16] + max(4 warps x (K 32 x (HD/2+1)
// + V 32 x HD/2 words + p 32 x 20 floats), combine 4 x 16 x (HD + 2) floats): 82 KiB at HD 128,
// 43 KiB at HD 64.
// Merge kernel (splits > 1): one block per (token, query head), one thread per column: the max of
// the partial maxima M, out = sum_s acc_s 2^(m_s - M) / sum_s l_s 2^(m_s - M) (0 if M = -inf).
// Workspace: acc [n][n_heads][splits][HD] then (max, sum) [n][n_heads][splits][2].
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

#include "kernels/attention_workspace.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"

namespace kvb::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 16;                          // query rows (tokens x heads) per block
constexpr int kWarpTile = 32;                      // slots per warp step (one per lane)
constexpr int kBlockTile = kWarps * kWarpTile;     // slots per block step
constexpr int kPStride = kRows + 4;                // p [slot][row], 16-byte rows, few conflicts
constexpr int kBlocksPerSm = 4;
constexpr float kLog2e = 1.4426950408889634f;

struct Params {
  float* out;
  const float* q;
  const bf16* keys;
  const bf16* values;
  const int32_t* positions;
  const int32_t* lengths;
  const int32_t* seq;
  const int32_t* pos;
  float* ws;
  int n, n_heads, n_kv_heads, group, capacity;
  int heads_per_block, head_chunks, tokens_per_block;
  float qscale;
};

template <int HD>
struct Layout {
  static_assert(HD % 8 == 0, "16-byte K/V loads need head_dim % 8 == 0");
  static constexpr int kKStride = HD / 2 + 1;  // words per staged key row: odd, conflict-free
  static constexpr int kVStride = HD / 2;
  static constexpr int kWarpWords = kWarpTile * kKStride + kWarpTile * kVStride + kWarpTile * kPStride;
  static constexpr int kStageWords = kWarps * kWarpWords;
  static constexpr int kCombineWords = kWarps * kRows * (HD + 2);
  static constexpr int kRegionWords = kStageWords > kCombineWords ? kStageWords : kCombineWords;
  static constexpr int kHeadWords = kRows * HD + kRows;  // q, row positions
  static constexpr size_t kBytes = size_t(kHeadWords + kRegionWords) * 4;
  static_assert(kHeadWords % 4 == 0 && (kWarpTile * kKStride) % 4 == 0 && kWarpWords % 4 == 0,
                "16-byte alignment of the V and p tiles");
};

__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

template <int HD>
__global__ void __launch_bounds__(kThreads) attention_kernel(const Params p) {
  using L = Layout<HD>;
  constexpr int NC = (HD + 31) / 32;  // output columns per lane: lane + 32k
  constexpr int KS = L::kKStride, VS = L::kVStride;
  constexpr int kGroups = kRows / 4;
  extern __shared__ __align__(16) uint32_t smem[];
  float* q_s = reinterpret_cast<float*>(smem);
  int* rowpos_s = reinterpret_cast<int*>(smem + kRows * HD);
  uint32_t* region = smem + L::kHeadWords;

  // --- The block's query tile: consecutive tokens of one sequence ---
  const int i0 = blockIdx.x;
  const int32_t s = p.seq[i0];
  const int tq = p.tokens_per_block;
  if (i0 % tq != 0 && p.seq[i0 - 1] == s) return;  // inside an earlier block's tile
  int nt = 1;
  while (nt < tq && i0 + nt < p.n && (i0 + nt) % tq != 0 && p.seq[i0 + nt] == s) ++nt;
  int maxq = INT_MIN;
  for (int t = 0; t < nt; ++t) maxq = max(maxq, p.pos[i0 + t]);

  const int kvh = blockIdx.y / p.head_chunks, chunk = blockIdx.y % p.head_chunks;
  const int h0 = kvh * p.group + chunk * p.heads_per_block;  // first query head of the block
  const int gc = min(p.heads_per_block, p.group - chunk * p.heads_per_block);
  const int rows = nt * gc;  // row r: token i0 + r / gc, head h0 + r % gc
  const int groups = (rows + 3) / 4;

  // --- The block's span of slots (split-K) ---
  const size_t head = size_t(s) * p.n_kv_heads + kvh;
  const int len = p.lengths[head];
  const int n_splits = gridDim.z;
  const int per = (len + n_splits - 1) / n_splits;
  const int span = max(kAttentionMinSplitSlots, (per + kBlockTile - 1) / kBlockTile * kBlockTile);
  const int lo = static_cast<int>(min(static_cast<long long>(len), static_cast<long long>(blockIdx.z) * span));
  const int hi = min(len, lo + span);

  for (int e = threadIdx.x; e < kRows * HD; e += kThreads) {
    const int r = e / HD, c = e - r * HD;
    float v = 0.0f;
    if (r < rows) v = p.q[(size_t(i0 + r / gc) * p.n_heads + h0 + r % gc) * HD + c] * p.qscale;
    q_s[e] = v;
  }
  if (threadIdx.x < kRows) rowpos_s[threadIdx.x] = threadIdx.x < rows ? p.pos[i0 + threadIdx.x / gc] : INT_MIN;
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  uint32_t* k_s = region + warp * L::kWarpWords;
  uint32_t* v_s = k_s + kWarpTile * KS;
  float* p_s = reinterpret_cast<float*>(v_s + kWarpTile * VS);
  const bf16* kbase = p.keys + head * p.capacity * HD;
  const bf16* vbase = p.values + head * p.capacity * HD;
  const int32_t* pbase = p.positions + head * p.capacity;

  float m[kRows], l[kRows], acc[kRows][NC];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int k = 0; k < NC; ++k) acc[r][k] = 0.0f;
  }

  for (int base = lo + warp * kWarpTile; base < hi; base += kBlockTile) {
    const int slot = base + lane;
    const bool valid = slot < hi;
    const int sp = valid ? pbase[slot] : INT_MAX;
    if (!__any_sync(0xffffffffu, valid && sp <= maxq)) continue;  // nothing visible here
    const int count = min(kWarpTile, hi - base);

    // Stage the K and V tile (rows past the span zeroed: p is 0 there, and 0 * garbage could be NaN).
    constexpr int kVec = HD / 8;  // 16-byte vectors per row
    const uint4* kg = reinterpret_cast<const uint4*>(kbase + size_t(base) * HD);
    const uint4* vg = reinterpret_cast<const uint4*>(vbase + size_t(base) * HD);
#pragma unroll 4
    for (int e = lane; e < kWarpTile * kVec; e += 32) {
      const int r = e / kVec, c = e - r * kVec;
      uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
      if (r < count) {
        kv = kg[e];
        vv = vg[e];
      }
      uint32_t* kd = k_s + r * KS + c * 4;
      kd[0] = kv.x;
      kd[1] = kv.y;
      kd[2] = kv.z;
      kd[3] = kv.w;
      *reinterpret_cast<uint4*>(v_s + r * VS + c * 4) = vv;
    }
    __syncwarp();

    // Scores of slot `lane` for every row, in groups of 4 rows.
    float sc[kRows];
    const uint32_t* krow = k_s + lane * KS;
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      if (g < groups) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        const float* q0 = q_s + (4 * g) * HD;
#pragma unroll 4
        for (int c4 = 0; c4 < HD / 4; ++c4) {
          const uint32_t w0 = krow[2 * c4], w1 = krow[2 * c4 + 1];
          const float k0 = bf16_lo(w0), k1 = bf16_hi(w0), k2 = bf16_lo(w1), k3 = bf16_hi(w1);
          const float4 x0 = reinterpret_cast<const float4*>(q0)[c4];
          const float4 x1 = reinterpret_cast<const float4*>(q0 + HD)[c4];
          const float4 x2 = reinterpret_cast<const float4*>(q0 + 2 * HD)[c4];
          const float4 x3 = reinterpret_cast<const float4*>(q0 + 3 * HD)[c4];
          a0 = fmaf(x0.x, k0, fmaf(x0.y, k1, fmaf(x0.z, k2, fmaf(x0.w, k3, a0))));
          a1 = fmaf(x1.x, k0, fmaf(x1.y, k1, fmaf(x1.z, k2, fmaf(x1.w, k3, a1))));
          a2 = fmaf(x2.x, k0, fmaf(x2.y, k1, fmaf(x2.z, k2, fmaf(x2.w, k3, a2))));
          a3 = fmaf(x3.x, k0, fmaf(x3.y, k1, fmaf(x3.z, k2, fmaf(x3.w, k3, a3))));
        }
        sc[4 * g] = a0;
        sc[4 * g + 1] = a1;
        sc[4 * g + 2] = a2;
        sc[4 * g + 3] = a3;
      }
    }

    // Online softmax update per row (base 2; max warp-uniform, sums per lane until the end).
#pragma unroll
    for (int g = 0; g < kGroups; ++g) {
      if (g < groups) {
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          const int r = 4 * g + t;
          const bool vis = valid && sp <= rowpos_s[r];
          const float x = vis ? sc[r] : -INFINITY;
          const float mn = fmaxf(m[r], warp_max(x));
          float pe = 0.0f;
          if (mn != -INFINITY) {  // warp-uniform
            const float alpha = exp2f(m[r] - mn);
            pe = vis ? exp2f(x - mn) : 0.0f;
            l[r] = fmaf(l[r], alpha, pe);
#pragma unroll
            for (int k = 0; k < NC; ++k) acc[r][k] *= alpha;
            m[r] = mn;
          }
          p_s[lane * kPStride + r] = pe;
        }
      }
    }
    __syncwarp();

    // acc[r][col] += sum_j p[j][r] * v[j][col], col = lane + 32k.
    for (int j = 0; j < count; ++j) {
      float vc[NC];
      const uint16_t* vrow = reinterpret_cast<const uint16_t*>(v_s + j * VS);
#pragma unroll
      for (int k = 0; k < NC; ++k) {
        const int c = lane + 32 * k;
        vc[k] = (HD % 32 == 0 || c < HD) ? __uint_as_float(uint32_t(vrow[c]) << 16) : 0.0f;
      }
      const float* pj = p_s + j * kPStride;
#pragma unroll
      for (int g = 0; g < kGroups; ++g) {
        if (g < groups) {
          const float4 pr = reinterpret_cast<const float4*>(pj)[g];
#pragma unroll
          for (int k = 0; k < NC; ++k) {
            acc[4 * g][k] = fmaf(pr.x, vc[k], acc[4 * g][k]);
            acc[4 * g + 1][k] = fmaf(pr.y, vc[k], acc[4 * g + 1][k]);
            acc[4 * g + 2][k] = fmaf(pr.z, vc[k], acc[4 * g + 2][k]);
            acc[4 * g + 3][k] = fmaf(pr.w, vc[k], acc[4 * g + 3][k]);
          }
        }
      }
    }
    __syncwarp();  // the next tile overwrites k_s, v_s, p_s
  }

  // --- Combine the 4 warps (the staging space becomes [warp][row] max, sum and acc) ---
  __syncthreads();
  float* cm = reinterpret_cast<float*>(region);
  float* cl = cm + kWarps * kRows;
  float* ca = cl + kWarps * kRows;
#pragma unroll
  for (int g = 0; g < kGroups; ++g) {
    if (g < groups) {
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const int r = 4 * g + t;
        const float lsum = warp_sum(l[r]);
        if (lane == 0) {
          cm[warp * kRows + r] = m[r];
          cl[warp * kRows + r] = lsum;
        }
#pragma unroll
        for (int k = 0; k < NC; ++k) {
          const int c = lane + 32 * k;
          if (HD % 32 == 0 || c < HD) ca[(warp * kRows + r) * HD + c] = acc[r][k];
        }
      }
    }
  }
  __syncthreads();

  for (int e = threadIdx.x; e < rows * HD; e += kThreads) {
    const int r = e / HD, c = e - r * HD;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, cm[w * kRows + r]);
    float sum = 0.0f, a = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = exp2f(cm[w * kRows + r] - mx);
        sum = fmaf(cl[w * kRows + r], f, sum);
        a = fmaf(ca[(w * kRows + r) * HD + c], f, a);
      }
    }
    const size_t row = size_t(i0 + r / gc) * p.n_heads + h0 + r % gc;  // (token, query head)
    if (n_splits == 1) {
      p.out[row * HD + c] = mx == -INFINITY ? 0.0f : a / sum;
    } else {
      const size_t idx = row * n_splits + blockIdx.z;
      p.ws[idx * HD + c] = a;
      if (c == 0) {
        float* ml = p.ws + size_t(p.n) * p.n_heads * n_splits * HD + idx * 2;
        ml[0] = mx;
        ml[1] = sum;
      }
    }
  }
}

__global__ void attention_merge_kernel(float* __restrict__ out, const float* __restrict__ ws, int n_rows,
                                       int head_dim, int n_splits) {
  const size_t row = blockIdx.x;  // token * n_heads + head
  const float* acc = ws + row * n_splits * head_dim;
  const float* ml = ws + size_t(n_rows) * n_splits * head_dim + row * n_splits * 2;
  float mx = -INFINITY;
  for (int s = 0; s < n_splits; ++s) mx = fmaxf(mx, ml[2 * s]);
  for (int c = threadIdx.x; c < head_dim; c += blockDim.x) {
    float sum = 0.0f, a = 0.0f;
    if (mx != -INFINITY) {
      for (int s = 0; s < n_splits; ++s) {
        const float f = exp2f(ml[2 * s] - mx);
        sum = fmaf(ml[2 * s + 1], f, sum);
        a = fmaf(acc[size_t(s) * head_dim + c], f, a);
      }
    }
    out[row * head_dim + c] = mx == -INFINITY ? 0.0f : a / sum;
  }
}

int sm_count() {
  static int cached[64] = {};
  int dev = 0;
  KVB_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) dev = 0;
  if (cached[dev] == 0) {
    int sms = 0;
    KVB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    cached[dev] = sms > 0 ? sms : 1;
  }
  return cached[dev];
}

bool head_dim_supported(int d) {
  return d == 8 || d == 16 || d == 32 || d == 48 || d == 64 || d == 80 || d == 96 || d == 128;
}

template <int HD>
void launch(Params p, int splits) {
  using L = Layout<HD>;
  static const bool opted_in = [] {
    KVB_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L::kBytes)));
    return true;
  }();
  (void)opted_in;
  const dim3 grid(p.n, p.n_kv_heads * p.head_chunks, splits);
  attention_kernel<HD><<<grid, kThreads, L::kBytes>>>(p);
  KVB_CUDA_LAUNCH_CHECK();
  if (splits > 1) {
    const int threads = std::min(128, (HD + 31) / 32 * 32);
    attention_merge_kernel<<<p.n * p.n_heads, threads>>>(p.out, p.ws, p.n * p.n_heads, HD, splits);
    KVB_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

void attention(float* out, const float* q, const bf16* keys, const bf16* values, const int32_t* positions,
               const int32_t* lengths, const int32_t* seq, const int32_t* pos, int n, int n_heads, int n_kv_heads,
               int head_dim, int capacity, float* workspace) {
  if (n <= 0) return;
  if (!head_dim_supported(head_dim)) {
    char msg[128];
    std::snprintf(msg, sizeof msg, "head_dim %d unsupported (8, 16, 32, 48, 64, 80, 96, 128)", head_dim);
    fail_argument("attention", msg);
  }
  if (n_kv_heads <= 0 || n_heads <= 0 || n_heads % n_kv_heads != 0)
    fail_argument("attention", "n_heads must be a positive multiple of n_kv_heads");
  Params p{};
  p.out = out;
  p.q = q;
  p.keys = keys;
  p.values = values;
  p.positions = positions;
  p.lengths = lengths;
  p.seq = seq;
  p.pos = pos;
  p.ws = workspace;
  p.n = n;
  p.n_heads = n_heads;
  p.n_kv_heads = n_kv_heads;
  p.group = n_heads / n_kv_heads;
  p.capacity = capacity;
  p.heads_per_block = std::min(p.group, kRows);
  p.head_chunks = (p.group + p.heads_per_block - 1) / p.heads_per_block;
  p.tokens_per_block = std::max(1, kRows / p.heads_per_block);
  p.qscale = kLog2e / std::sqrt(static_cast<float>(head_dim));

  // Enough blocks to fill the GPU: splits only where the (token, KV head) blocks alone do not.
  const long long blocks = (long long)n * n_kv_heads * p.head_chunks;
  const long long target = std::min<long long>(kAttentionMaxTargetBlocks, (long long)kBlocksPerSm * sm_count());
  int splits = int(std::min<long long>(attention_max_splits(n, capacity), std::max(1LL, target / blocks)));
  if (workspace == nullptr) splits = 1;

  switch (head_dim) {
    case 8: return launch<8>(p, splits);
    case 16: return launch<16>(p, splits);
    case 32: return launch<32>(p, splits);
    case 48: return launch<48>(p, splits);
    case 64: return launch<64>(p, splits);
    case 80: return launch<80>(p, splits);
    case 96: return launch<96>(p, splits);
    case 128: return launch<128>(p, splits);
  }
}

}  // namespace kvb::cuda

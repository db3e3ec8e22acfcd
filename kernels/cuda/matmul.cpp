// y = x . w^T through cuBLASLt: w bf16 [out][in] row-major, x rounded to bf16, fp32 accumulation
// and fp32 output. Compiled by the C++ compiler (not nvcc) so errors can be formatted with fmt.
//
// cuBLASLt is column-major. A row-major [out][in] w is a column-major in x out matrix (ld = in), so
// op(A) = A^T is out x in; a row-major [rows][in] x is a column-major in x rows matrix (ld = in); and
// the column-major out x rows D (ld = out) is the row-major [rows][out] y. So D = A^T . B with
// m = out, n = rows, k = in: the "TN" layout, the one every cuBLASLt kernel family supports.
//
// One handle, one matmul descriptor and one workspace per process, created on the first call (only
// reached once a GPU has answered: cublasLtCreate fails without a driver) and never destroyed: at
// process exit the CUDA runtime may already be unloaded, and tearing down then fails or crashes.
// The layouts and the algorithm chosen by the heuristic are cached per (rows, in, out, alignments),
// so a decode step, which repeats the same few shapes every layer, never re-runs the heuristic.
// The alignments are part of the key because the heuristic, unless told otherwise, assumes
// 256-byte-aligned buffers; a pointer into the middle of a tensor is told its real alignment.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/ops_cuda.hpp"
#include "kernels/matmul_workspace.hpp"
#include "util/errors.hpp"

namespace kvb::cuda {

namespace {


constexpr size_t kMaxPlans = 256;  // prefill chunks of many lengths would otherwise grow the cache forever

void check_lt(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail_runtime("cuBLASLt {}: {} ({})", what, cublasLtGetStatusName(status), cublasLtGetStatusString(status));
}

// Largest power of two up to 256 that divides the address.
uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && address % a != 0) a >>= 1;
  return a;
}

struct PlanKey {
  int rows, in, out;
  uint32_t align_w, align_x, align_y;
  bool operator<(const PlanKey& o) const {
    return std::tie(rows, in, out, align_w, align_x, align_y) <
           std::tie(o.rows, o.in, o.out, o.align_w, o.align_x, o.align_y);
  }
};

struct Plan {
  cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

void destroy(Plan& p) {
  if (p.w) cublasLtMatrixLayoutDestroy(p.w);
  if (p.x) cublasLtMatrixLayoutDestroy(p.x);
  if (p.y) cublasLtMatrixLayoutDestroy(p.y);
  p = Plan{};
}

class Lt {
 public:
  Lt() {
    check_lt(cublasLtCreate(&handle_), "create handle");
    check_lt(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F), "create matmul descriptor");
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    check_lt(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose),
             "set TRANSA");
    check_lt(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep), "set TRANSB");
    workspace_ = device_alloc_bytes(kMatmulWorkspaceBytes, "cuBLASLt workspace");
  }

  void run(float* y, const bf16* w, const bf16* x, int rows, int in, int out) {
    std::lock_guard lock(mutex_);  // the plan cache; the enqueue itself is microseconds
    const Plan& plan = plan_for(PlanKey{rows, in, out, alignment_of(w), alignment_of(x), alignment_of(y)});
    const float alpha = 1.0f, beta = 0.0f;
    // Default stream, like every other op: ordered after the x conversion that filled x_scratch.
    check_lt(cublasLtMatmul(handle_, desc_, &alpha, w, plan.w, x, plan.x, &beta, y, plan.y, y, plan.y, &plan.algo,
                            workspace_, kMatmulWorkspaceBytes, nullptr),
             "matmul");
  }

 private:
  const Plan& plan_for(const PlanKey& key) {
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    if (plans_.size() >= kMaxPlans) {
      for (auto& [k, p] : plans_) destroy(p);
      plans_.clear();
    }
    Plan plan;
    cublasLtMatmulPreference_t pref = nullptr;
    try {
      check_lt(cublasLtMatrixLayoutCreate(&plan.w, CUDA_R_16BF, key.in, key.out, key.in), "create layout of w");
      check_lt(cublasLtMatrixLayoutCreate(&plan.x, CUDA_R_16BF, key.in, key.rows, key.in), "create layout of x");
      check_lt(cublasLtMatrixLayoutCreate(&plan.y, CUDA_R_32F, key.out, key.rows, key.out), "create layout of y");
      check_lt(cublasLtMatmulPreferenceCreate(&pref), "create preference");
      const uint64_t workspace = kMatmulWorkspaceBytes;
      check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                    sizeof workspace),
               "set workspace size");
      const struct {
        cublasLtMatmulPreferenceAttributes_t attribute;
        uint32_t bytes;
      } alignments[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_w},
                        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_x},
                        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_y},
                        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_y}};
      for (const auto& a : alignments)
        check_lt(cublasLtMatmulPreferenceSetAttribute(pref, a.attribute, &a.bytes, sizeof a.bytes), "set alignment");
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      check_lt(cublasLtMatmulAlgoGetHeuristic(handle_, desc_, plan.w, plan.x, plan.y, plan.y, pref, 1, &result, &found),
               "algorithm heuristic");
      if (found == 0 || result.state != CUBLAS_STATUS_SUCCESS)
        fail_runtime("cuBLASLt has no algorithm for bf16 matmul rows {} in {} out {} (alignments {}/{}/{} bytes)",
                     key.rows, key.in, key.out, key.align_w, key.align_x, key.align_y);
      plan.algo = result.algo;
      cublasLtMatmulPreferenceDestroy(pref);
    } catch (...) {
      if (pref) cublasLtMatmulPreferenceDestroy(pref);
      destroy(plan);
      throw;
    }
    return plans_.emplace(key, plan).first->second;
  }

  cublasLtHandle_t handle_ = nullptr;
  cublasLtMatmulDesc_t desc_ = nullptr;
  void* workspace_ = nullptr;
  std::mutex mutex_;
  std::map<PlanKey, Plan> plans_;
};

Lt& lt() {
  static Lt* instance = new Lt();  // deliberately leaked: see the top of the file
  return *instance;
}

}  // namespace

void matmul(float* y, const float* x, const bf16* w, int rows, int in, int out, bf16* x_scratch) {
  if (rows <= 0 || out <= 0) return;
  if (in <= 0) {  // empty sums; cuBLASLt rejects k = 0
    KVB_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t(rows) * size_t(out) * sizeof(float), nullptr));
    return;
  }
  Lt& l = lt();  // before any launch: a failure to create it leaves nothing enqueued
  f32_to_bf16(x_scratch, x, int64_t(rows) * in);
  l.run(y, w, x_scratch, rows, in, out);
}

}  // namespace kvb::cuda

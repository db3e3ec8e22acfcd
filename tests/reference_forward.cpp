#include "tests/reference_forward.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace kvb::test {

using nlohmann::json;

namespace {

double json_number(const json& obj, const char* key, double fallback) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? fallback : it->get<double>();
}

// 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1 (YaRN's attention temperature).
double yarn_get_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

ReferenceRope reference_rope(const HfTinySpec& spec) {
  const int dim = spec.effective_head_dim();
  const int half = dim / 2;
  const double base = spec.rope_theta;
  ReferenceRope r;
  // Default RoPE: theta^(-2i/d).
  std::vector<double> plain(half);
  for (int i = 0; i < half; ++i) plain[i] = 1.0 / std::pow(base, double(2 * i) / dim);
  r.inv_freq = plain;

  const json& rs = spec.rope_scaling;
  if (rs.is_null()) return r;
  std::string type = rs.contains("rope_type") ? rs["rope_type"].get<std::string>() : rs["type"].get<std::string>();
  if (type == "default") return r;

  if (type == "linear") {
    // Position interpolation: positions divided by factor, i.e. every frequency divided by it.
    const double factor = rs["factor"].get<double>();
    for (double& f : r.inv_freq) f /= factor;
    return r;
  }

  if (type == "llama3") {
    // Llama 3.1: long wavelengths (beyond original_context / low_freq_factor) are divided by the
    // factor, short ones (below original_context / high_freq_factor) kept, and the band between
    // blended linearly in original_context / wavelength.
    const double factor = rs["factor"].get<double>();
    const double low = rs["low_freq_factor"].get<double>();
    const double high = rs["high_freq_factor"].get<double>();
    const double ctx = rs["original_max_position_embeddings"].get<double>();
    const double low_freq_wavelen = ctx / low;
    const double high_freq_wavelen = ctx / high;
    for (int i = 0; i < half; ++i) {
      const double wavelen = 2.0 * std::numbers::pi / plain[i];
      if (wavelen < high_freq_wavelen) {
        r.inv_freq[i] = plain[i];
      } else if (wavelen > low_freq_wavelen) {
        r.inv_freq[i] = plain[i] / factor;
      } else {
        const double smooth = (ctx / wavelen - low) / (high - low);
        r.inv_freq[i] = (1.0 - smooth) * plain[i] / factor + smooth * plain[i];
      }
    }
    return r;
  }

  if (type == "yarn") {
    const double factor = rs["factor"].get<double>();
    double ctx = json_number(rs, "original_max_position_embeddings", 0.0);
    if (ctx == 0.0) ctx = spec.max_positions;
    double beta_fast = json_number(rs, "beta_fast", 0.0);
    double beta_slow = json_number(rs, "beta_slow", 0.0);
    if (beta_fast == 0.0) beta_fast = 32.0;
    if (beta_slow == 0.0) beta_slow = 1.0;
    if (rs.contains("attention_factor") && !rs["attention_factor"].is_null()) {
      r.attention_factor = rs["attention_factor"].get<double>();
    } else {
      const double m = json_number(rs, "mscale", 0.0), m_all = json_number(rs, "mscale_all_dim", 0.0);
      r.attention_factor = (m != 0.0 && m_all != 0.0) ? yarn_get_mscale(factor, m) / yarn_get_mscale(factor, m_all)
                                                      : yarn_get_mscale(factor, 1.0);
    }
    // The dimension (counted over the full head_dim) at which a frequency completes
    // `rotations` turns over the original context.
    auto correction_dim = [&](double rotations) {
      return dim * std::log(ctx / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
    };
    double lo = std::max(std::floor(correction_dim(beta_fast)), 0.0);
    double hi = std::min(std::ceil(correction_dim(beta_slow)), double(dim - 1));
    if (lo == hi) hi += 0.001;
    for (int i = 0; i < half; ++i) {
      // ramp 0: keep the original frequency (extrapolate); ramp 1: divide by factor (interpolate).
      const double ramp = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
      r.inv_freq[i] = plain[i] / factor * ramp + plain[i] * (1.0 - ramp);
    }
    return r;
  }
  throw std::runtime_error("reference_rope: unsupported rope type " + type);
}

namespace {

// y[out] = W[out][in] x[in] (+ b)
std::vector<double> matvec(const HfTensorData& w, const std::vector<double>& x, const HfTensorData* bias = nullptr) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  if (int64_t(x.size()) != cols) throw std::runtime_error("matvec: size mismatch");
  std::vector<double> y(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double acc = bias ? bias->values[r] : 0.0;
    for (int64_t c = 0; c < cols; ++c) acc += w.values[r * cols + c] * x[c];
    y[r] = acc;
  }
  return y;
}

// x / sqrt(mean(x^2) + eps) * weight over x[offset, offset + n).
void rms_norm_inplace(double* x, int n, const std::vector<double>& weight, double eps) {
  double ss = 0.0;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  const double inv = 1.0 / std::sqrt(ss / n + eps);
  for (int i = 0; i < n; ++i) x[i] = x[i] * inv * weight[i];
}

}  // namespace

std::vector<double> reference_logits(const HfTinyModel& model, const std::vector<int>& tokens) {
  const HfTinySpec& s = model.spec;
  const int T = static_cast<int>(tokens.size());
  const int D = s.hidden, H = s.heads, KVH = s.kv_heads, hd = s.effective_head_dim(), V = s.vocab;
  const int half = hd / 2;
  const int group = H / KVH;  // query heads per kv head; head h reads kv head h / group
  const ReferenceRope rope = reference_rope(s);

  // Residual stream, one row per position.
  std::vector<std::vector<double>> x(T, std::vector<double>(D));
  const HfTensorData& emb = model.at("model.embed_tokens.weight");
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < D; ++i) x[t][i] = emb.values[int64_t(tokens[t]) * D + i];

  // Rotates each head of `v` (n_heads * hd values) to position `pos`, pairing i with i + hd/2;
  // cos and sin carry the attention factor as transformers multiplies them.
  auto rotate = [&](std::vector<double>& v, int n_heads, int pos) {
    for (int h = 0; h < n_heads; ++h) {
      double* p = v.data() + h * hd;
      for (int i = 0; i < half; ++i) {
        const double angle = pos * rope.inv_freq[i];
        const double c = std::cos(angle) * rope.attention_factor, sn = std::sin(angle) * rope.attention_factor;
        const double a = p[i], b = p[i + half];
        p[i] = a * c - b * sn;
        p[i + half] = b * c + a * sn;
      }
    }
  };

  for (int l = 0; l < s.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    auto W = [&](const std::string& n) -> const HfTensorData& { return model.at(pre + n); };
    const bool bias = s.qkv_bias();

    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      std::vector<double> h = x[t];
      rms_norm_inplace(h.data(), D, W("input_layernorm.weight").values, s.rms_eps);
      q[t] = matvec(W("self_attn.q_proj.weight"), h, bias ? &W("self_attn.q_proj.bias") : nullptr);
      k[t] = matvec(W("self_attn.k_proj.weight"), h, bias ? &W("self_attn.k_proj.bias") : nullptr);
      v[t] = matvec(W("self_attn.v_proj.weight"), h, bias ? &W("self_attn.v_proj.bias") : nullptr);
      if (s.qk_norm()) {  // Qwen3: RMSNorm over each head before RoPE
        for (int hh = 0; hh < H; ++hh)
          rms_norm_inplace(q[t].data() + hh * hd, hd, W("self_attn.q_norm.weight").values, s.rms_eps);
        for (int hh = 0; hh < KVH; ++hh)
          rms_norm_inplace(k[t].data() + hh * hd, hd, W("self_attn.k_norm.weight").values, s.rms_eps);
      }
      rotate(q[t], H, t);
      rotate(k[t], KVH, t);
    }

    const double scale = 1.0 / std::sqrt(double(hd));
    for (int t = 0; t < T; ++t) {
      std::vector<double> attn(size_t(H) * hd, 0.0);
      for (int hh = 0; hh < H; ++hh) {
        const int kv = hh / group;
        std::vector<double> score(t + 1);
        double mx = -INFINITY;
        for (int u = 0; u <= t; ++u) {  // causal: keys at positions <= t
          double dot = 0.0;
          for (int i = 0; i < hd; ++i) dot += q[t][hh * hd + i] * k[u][kv * hd + i];
          score[u] = dot * scale;
          mx = std::max(mx, score[u]);
        }
        double sum = 0.0;
        for (double& sc : score) sum += (sc = std::exp(sc - mx));
        for (int u = 0; u <= t; ++u)
          for (int i = 0; i < hd; ++i) attn[hh * hd + i] += score[u] / sum * v[u][kv * hd + i];
      }
      const std::vector<double> o = matvec(W("self_attn.o_proj.weight"), attn);
      for (int i = 0; i < D; ++i) x[t][i] += o[i];

      std::vector<double> h = x[t];
      rms_norm_inplace(h.data(), D, W("post_attention_layernorm.weight").values, s.rms_eps);
      const std::vector<double> gate = matvec(W("mlp.gate_proj.weight"), h);
      const std::vector<double> up = matvec(W("mlp.up_proj.weight"), h);
      std::vector<double> act(gate.size());
      for (size_t i = 0; i < act.size(); ++i) act[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];  // silu * up
      const std::vector<double> down = matvec(W("mlp.down_proj.weight"), act);
      for (int i = 0; i < D; ++i) x[t][i] += down[i];
    }
  }

  const HfTensorData& head = s.tied ? emb : model.at("lm_head.weight");
  std::vector<double> logits(size_t(T) * V);
  for (int t = 0; t < T; ++t) {
    std::vector<double> h = x[t];
    rms_norm_inplace(h.data(), D, model.at("model.norm.weight").values, s.rms_eps);
    const std::vector<double> row = matvec(head, h);
    std::copy(row.begin(), row.end(), logits.begin() + int64_t(t) * V);
  }
  return logits;
}

}  // namespace kvb::test

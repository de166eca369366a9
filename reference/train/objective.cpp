#include "reference/train/objective.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "reference/model/router.h"
#include "reference/train/fp8_linear.h"
#include "reference/train/ops.h"

namespace dsv3::train {

using model::AttentionWeightsT;
using model::Config;
using model::FfnWeightsT;
using model::LayerWeightsT;
using model::ModelWeightsT;
using model::MoeWeightsT;

const char* to_string(BalanceMode m) {
  switch (m) {
    case BalanceMode::kNone:
      return "none";
    case BalanceMode::kLossFree:
      return "loss-free";
    case BalanceMode::kAux:
      return "aux";
  }
  return "?";
}

BalanceMode parse_balance_mode(const std::string& s) {
  if (s == "none") return BalanceMode::kNone;
  if (s == "loss-free") return BalanceMode::kLossFree;
  if (s == "aux") return BalanceMode::kAux;
  throw std::invalid_argument(
      fmt::format("unknown balance mode '{}' (expected none, loss-free or aux)", s));
}

template <class S>
ModelWeightsT<S> zeros_like(const Config& c, const ModelWeightsT<S>& w) {
  ModelWeightsT<S> g;
  model::alloc_model(c, g, static_cast<int64_t>(w.mtp.size()));
  model::visit_model(c, g, [](const std::string&, auto& t) { t.setZero(); });
  return g;
}

VecT<float>* correction_bias(const Config& c, model::ModelWeights& w, int layer) {
  model::LayerWeights* l = nullptr;
  if (layer < c.num_hidden_layers)
    l = &w.layers[layer];
  else if (layer - c.num_hidden_layers < static_cast<int64_t>(w.mtp.size()))
    l = &w.mtp[layer - c.num_hidden_layers].block;
  if (!l || !l->moe || l->moe->e_score_correction_bias.size() == 0) return nullptr;
  return &l->moe->e_score_correction_bias;
}

const VecT<float>* correction_bias(const Config& c, const model::ModelWeights& w, int layer) {
  return correction_bias(c, const_cast<model::ModelWeights&>(w), layer);  // reads only
}

namespace {

// B sequences of n tokens each, stacked as rows b*n + t (position t).
struct Shape {
  int64_t B = 0, n = 0;
  std::vector<int64_t> positions;  // [B*n]
  Shape(int64_t b, int64_t len) : B(b), n(len), positions(b * len) {
    for (int64_t i = 0; i < b * len; ++i) positions[i] = i % len;
  }
  int64_t rows() const { return B * n; }
};

struct Ctx {
  const Config& c;
  const model::RopeTable& rope;
  const Objective& obj;
  int64_t batch = 1;                 // B: L_Bal is averaged over sequences
  const LowPrecision* lp = nullptr;  // BF16/FP8 Linears (float32 only); null: float32
};

// The Linears DeepSeek-V3 runs in FP8 (§3.3.1) go through these; the others call linear_fwd.
template <class S>
MatT<S> fp8_fwd(const Ctx& ctx, const MatT<S>& x, const MatT<S>& w) {
  if constexpr (std::is_same_v<S, float>)
    if (ctx.lp) return lp_linear_fwd(x, w, *ctx.lp);
  return linear_fwd(x, w);
}

template <class S>
void fp8_bwd(const Ctx& ctx, const MatT<S>& x, const MatT<S>& w, const MatT<S>& dy, MatT<S>* dx,
             MatT<S>& dw, Cached cached = Cached::kFp8) {
  if constexpr (std::is_same_v<S, float>)
    if (ctx.lp) return lp_linear_bwd(x, w, dy, dx, dw, *ctx.lp, cached);
  linear_bwd(x, w, dy, dx, dw);
}

template <class S>
MatT<S> ffn_fwd(const Ctx& ctx, const MatT<S>& x, const FfnWeightsT<S>& f, SwigluCache<S>& cache) {
  if constexpr (std::is_same_v<S, float>)
    if (ctx.lp) return lp_swiglu_fwd(x, f.gate_proj, f.up_proj, f.down_proj, cache, *ctx.lp);
  return swiglu_fwd(x, f.gate_proj, f.up_proj, f.down_proj, cache);
}

template <class S>
void ffn_bwd(const Ctx& ctx, const MatT<S>& x, const FfnWeightsT<S>& f, const SwigluCache<S>& cache,
             const MatT<S>& dy, MatT<S>& dx, FfnWeightsT<S>& g) {
  if constexpr (std::is_same_v<S, float>)
    if (ctx.lp)
      return lp_swiglu_bwd(x, f.gate_proj, f.up_proj, f.down_proj, cache, dy, dx, g.gate_proj,
                           g.up_proj, g.down_proj, *ctx.lp);
  swiglu_bwd(x, f.gate_proj, f.up_proj, f.down_proj, cache, dy, dx, g.gate_proj, g.up_proj,
             g.down_proj);
}

// ---- MLA, naive form (eq. 1-11) ------------------------------------------------------------

template <class S>
struct MlaCache {
  MatT<S> cq_raw, cq;  // c^Q before / after its RMSNorm        [N, d'_c]
  RmsCache<S> q_norm;
  MatT<S> q;     // [q^C; RoPE(q^R)] per head              [N, H*(d_h+d^R_h)]
  MatT<S> kv_c;  // c^KV before its RMSNorm               [N, d_c]
  RmsCache<S> kv_norm;
  MatT<S> ckv;             // ĉ^KV                                   [N, d_c]
  MatT<S> kpe;             // RoPE(k^R), shared by all heads         [N, d^R_h]
  MatT<S> kvb;             // [k^C_h; v_h] per head                  [N, H*(d_h+d_v)]
  std::vector<MatT<S>> p;  // softmax per (sequence, head)        [n, n]
  MatT<S> o;               // head outputs                           [N, H*d_v]
};

struct MlaDims {
  int64_t H, dn, dr, dv, dqk, dc;
  explicit MlaDims(const Config& c)
      : H(c.num_attention_heads),
        dn(c.qk_nope_head_dim),
        dr(c.qk_rope_head_dim),
        dv(c.v_head_dim),
        dqk(c.qk_nope_head_dim + c.qk_rope_head_dim),
        dc(c.kv_lora_rank) {}
};

// Multiply-adds of the attention products of all sequences and heads: threads pay only above
// a fork/join's cost (a few microseconds, far more on a loaded machine).
int64_t attention_work(const Shape& sh, const MlaDims& D) {
  return sh.B * D.H * sh.n * sh.n * (D.dqk + D.dv);
}

// k_h = [k^C_h ; k^R] [n, d_h + d^R_h] and v_h [n, d_v] of sequence b, head h.
template <class S>
void head_kv(const MlaCache<S>& m, const MlaDims& D, const Shape& sh, int64_t b, int64_t h,
             MatT<S>& k, MatT<S>& v) {
  k.resize(sh.n, D.dqk);
  k.leftCols(D.dn) = m.kvb.block(b * sh.n, h * (D.dn + D.dv), sh.n, D.dn);
  k.rightCols(D.dr) = m.kpe.middleRows(b * sh.n, sh.n);
  v = m.kvb.block(b * sh.n, h * (D.dn + D.dv) + D.dn, sh.n, D.dv);
}

template <class S>
MatT<S> mla_fwd(const Ctx& ctx, const AttentionWeightsT<S>& w, const Shape& sh, const MatT<S>& x,
                MlaCache<S>& m) {
  const Config& c = ctx.c;
  const MlaDims D(c);
  const double eps = c.rms_norm_eps;
  // eq. (6)-(9): c^Q = W^{DQ} h, normed; [q^C; q^R] = W^{UQ} c^Q (or plain q_proj).
  if (c.q_lora_rank > 0) {
    m.cq_raw = fp8_fwd(ctx, x, w.q_a_proj);
    m.cq = rms_norm_fwd(m.cq_raw, w.q_a_layernorm, eps, m.q_norm);
    m.q = fp8_fwd(ctx, m.cq, w.q_b_proj);
  } else {
    m.q = fp8_fwd(ctx, x, w.q_proj);
  }
  rope_rows(ctx.rope, m.q, sh.positions, D.dn, D.dqk, D.H, false);  // eq. (8)
  // eq. (1), (3): [c^KV; k^R] = W^{DKV'} h; the latent is normed, k^R rotated.
  MatT<S> kv = fp8_fwd(ctx, x, w.kv_a_proj_with_mqa);  // [N, d_c + d^R_h]
  m.kv_c = kv.leftCols(D.dc);
  m.ckv = rms_norm_fwd(m.kv_c, w.kv_a_layernorm, eps, m.kv_norm);
  m.kpe = kv.rightCols(D.dr);
  rope_rows(ctx.rope, m.kpe, sh.positions, 0, D.dr, 1, false);
  m.kvb = fp8_fwd(ctx, m.ckv, w.kv_b_proj);  // eq. (2), (4), (5)
  m.o.resize(sh.rows(), D.H * D.dv);
  m.p.assign(sh.B * D.H, {});
  const S scale = static_cast<S>(c.softmax_scale());
#pragma omp parallel for schedule(dynamic) if (attention_work(sh, D) > (1 << 22))
  for (int64_t bh = 0; bh < sh.B * D.H; ++bh) {
    const int64_t b = bh / D.H, h = bh % D.H;
    MatT<S> q = m.q.block(b * sh.n, h * D.dqk, sh.n, D.dqk), k, v;
    head_kv(m, D, sh, b, h, k, v);
    m.o.block(b * sh.n, h * D.dv, sh.n, D.dv) = attention_fwd(q, k, v, scale, m.p[bh]);  // (10)
  }
  return fp8_fwd(ctx, m.o, w.o_proj);  // eq. (11)
}

template <class S>
void mla_bwd(const Ctx& ctx, const AttentionWeightsT<S>& w, const Shape& sh, const MatT<S>& x,
             const MlaCache<S>& m, const MatT<S>& dout, MatT<S>& dx, AttentionWeightsT<S>& g) {
  const Config& c = ctx.c;
  const MlaDims D(c);
  const int64_t N = sh.rows();
  MatT<S> d_o = MatT<S>::Zero(N, D.H * D.dv);
  // The input of the Linear after attention is cached in E5M6 (§3.3.3).
  fp8_bwd(ctx, m.o, w.o_proj, dout, &d_o, g.o_proj, Cached::kE5M6);
  MatT<S> dq = MatT<S>::Zero(N, D.H * D.dqk);
  MatT<S> dkvb = MatT<S>::Zero(N, D.H * (D.dn + D.dv));
  std::vector<MatT<S>> dkpe_head(sh.B * D.H);  // k^R is shared: its gradient sums over heads
  const S scale = static_cast<S>(c.softmax_scale());
#pragma omp parallel for schedule(dynamic) if (attention_work(sh, D) > (1 << 22))
  for (int64_t bh = 0; bh < sh.B * D.H; ++bh) {
    const int64_t b = bh / D.H, h = bh % D.H;
    MatT<S> q = m.q.block(b * sh.n, h * D.dqk, sh.n, D.dqk), k, v, dqh, dkh, dvh;
    head_kv(m, D, sh, b, h, k, v);
    MatT<S> doh = d_o.block(b * sh.n, h * D.dv, sh.n, D.dv);
    attention_bwd(q, k, v, m.p[bh], scale, doh, dqh, dkh, dvh);
    dq.block(b * sh.n, h * D.dqk, sh.n, D.dqk) = dqh;
    dkvb.block(b * sh.n, h * (D.dn + D.dv), sh.n, D.dn) = dkh.leftCols(D.dn);
    dkvb.block(b * sh.n, h * (D.dn + D.dv) + D.dn, sh.n, D.dv) = dvh;
    dkpe_head[bh] = dkh.rightCols(D.dr);
  }
  MatT<S> dkpe = MatT<S>::Zero(N, D.dr);
  for (int64_t bh = 0; bh < sh.B * D.H; ++bh)
    dkpe.middleRows((bh / D.H) * sh.n, sh.n) += dkpe_head[bh];
  // RoPE backward: the transposed rotation at the same positions.
  rope_rows(ctx.rope, dq, sh.positions, D.dn, D.dqk, D.H, true);
  rope_rows(ctx.rope, dkpe, sh.positions, 0, D.dr, 1, true);
  MatT<S> dckv = MatT<S>::Zero(N, D.dc);
  fp8_bwd(ctx, m.ckv, w.kv_b_proj, dkvb, &dckv, g.kv_b_proj);
  MatT<S> dkv = MatT<S>::Zero(N, D.dc + D.dr);
  MatT<S> dkv_c = MatT<S>::Zero(N, D.dc);
  rms_norm_bwd(m.kv_c, w.kv_a_layernorm, m.kv_norm, dckv, dkv_c, g.kv_a_layernorm);
  dkv.leftCols(D.dc) = dkv_c;
  dkv.rightCols(D.dr) = dkpe;
  fp8_bwd(ctx, x, w.kv_a_proj_with_mqa, dkv, &dx, g.kv_a_proj_with_mqa);
  if (c.q_lora_rank > 0) {
    MatT<S> dcq = MatT<S>::Zero(N, c.q_lora_rank), dcq_raw = MatT<S>::Zero(N, c.q_lora_rank);
    fp8_bwd(ctx, m.cq, w.q_b_proj, dq, &dcq, g.q_b_proj);
    rms_norm_bwd(m.cq_raw, w.q_a_layernorm, m.q_norm, dcq, dcq_raw, g.q_a_layernorm);
    fp8_bwd(ctx, x, w.q_a_proj, dcq_raw, &dx, g.q_a_proj);
  } else {
    fp8_bwd(ctx, x, w.q_proj, dq, &dx, g.q_proj);
  }
}

// ---- DeepSeekMoE (eq. 12-16) and the sequence-wise balance loss (eq. 17-20) --------------

// Multiply-adds of the routed experts for N tokens: threads pay only above a fork/join's cost.
int64_t expert_work(const Config& c, int64_t N) {
  return N * c.num_experts_per_tok * c.hidden_size * c.moe_intermediate_size * 3;
}

template <class S>
struct MoeCache {
  MatT<S> scores;                      // s_{i,t}, unbiased                          [N, E]
  std::vector<std::vector<int>> topk;  // chosen experts per token                   [N][K]
  std::vector<std::vector<S>> gate;    // g_{i,t} of the chosen experts               [N][K]
  std::vector<S> denom;                // Σ_{chosen} s (+1e-20) when normalised, else 1 [N]
  std::vector<std::vector<std::pair<int64_t, int>>> routed;  // expert -> (token, slot)
  std::vector<MatT<S>> xe, ye;                               // expert inputs and outputs
  std::vector<SwigluCache<S>> ec;
  SwigluCache<S> shared;
  std::vector<int64_t> counts;         // c_i: tokens routed to expert i              [E]
  std::vector<std::vector<double>> f;  // f_i per sequence (eq. 18), a constant        [B][E]
};

template <class S>
MatT<S> moe_fwd(const Ctx& ctx, const MoeWeightsT<S>& w, const Shape& sh, const MatT<S>& x,
                MoeCache<S>& m, double& balance) {
  const Config& c = ctx.c;
  const int64_t N = sh.rows(), E = c.n_routed_experts, K = c.num_experts_per_tok;
  MatT<S> logits = linear_fwd(x, w.gate);  // u_t . e_i, the router in full precision [N, E]
  m.scores.resize(N, E);
  m.topk.assign(N, {});
  m.gate.assign(N, {});
  m.denom.assign(N, S(1));
  m.routed.assign(E, {});
  m.counts.assign(E, 0);
  // The bias tilts the selection, except in aux mode: the classic baseline routes as with b = 0
  // (and keeps noaux_tc's top-2 group score).
  std::vector<float> bias;
  const bool aux = ctx.obj.balance == BalanceMode::kAux;
  for (Eigen::Index i = 0; i < w.e_score_correction_bias.size(); ++i)
    bias.push_back(aux ? 0.0f : static_cast<float>(w.e_score_correction_bias[i]));
  std::vector<float> lf(E);
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t i = 0; i < E; ++i) lf[i] = static_cast<float>(logits(t, i));
    model::RouteResult r = model::route(c, lf, bias);  // selection exactly as in inference
    if (c.scoring_func == model::ScoringFunc::kSigmoid) {
      for (int64_t i = 0; i < E; ++i)
        m.scores(t, i) = S(1) / (S(1) + std::exp(-logits(t, i)));  // (15)
    } else {
      const S mx = logits.row(t).maxCoeff();
      S sum = 0;
      for (int64_t i = 0; i < E; ++i) sum += m.scores(t, i) = std::exp(logits(t, i) - mx);
      m.scores.row(t) /= sum;
    }
    m.topk[t] = r.topk_idx;
    S z = 0;
    for (int j : r.topk_idx) z += m.scores(t, j);
    if (c.norm_topk_prob) m.denom[t] = z + static_cast<S>(1e-20);  // eq. (13)
    for (int64_t j = 0; j < K; ++j) {
      const int e = r.topk_idx[j];
      m.gate[t].push_back(m.scores(t, e) / m.denom[t] * static_cast<S>(c.routed_scaling_factor));
      m.routed[e].push_back({t, static_cast<int>(j)});
      ++m.counts[e];
    }
  }
  // eq. (17)-(20), per sequence: f_i = N_r/(K_r T') Σ_t 1[i ∈ TopK_t], P_i = mean_t s'_{i,t}.
  m.f.assign(sh.B, std::vector<double>(E, 0.0));
  balance = 0;
  for (int64_t b = 0; b < sh.B; ++b) {
    std::vector<double> P(E, 0.0);
    for (int64_t t = b * sh.n; t < (b + 1) * sh.n; ++t) {
      for (int e : m.topk[t]) m.f[b][e] += 1.0;
      double sum = 0;
      for (int64_t i = 0; i < E; ++i) sum += m.scores(t, i);
      for (int64_t i = 0; i < E; ++i) P[i] += m.scores(t, i) / sum / static_cast<double>(sh.n);
    }
    for (int64_t i = 0; i < E; ++i) {
      m.f[b][i] *= static_cast<double>(E) / static_cast<double>(K * sh.n);
      balance += m.f[b][i] * P[i] / static_cast<double>(sh.B);
    }
  }
  // Routed experts, one batch of tokens each, then the weighted sum in ascending expert order.
  m.xe.assign(E, {});
  m.ye.assign(E, {});
  m.ec.assign(E, {});
#pragma omp parallel for schedule(dynamic) if (expert_work(c, N) > (1 << 18))
  for (int64_t e = 0; e < E; ++e) {
    if (m.routed[e].empty()) continue;
    m.xe[e].resize(m.routed[e].size(), x.cols());
    for (size_t i = 0; i < m.routed[e].size(); ++i) m.xe[e].row(i) = x.row(m.routed[e][i].first);
    const FfnWeightsT<S>& f = w.experts[e];
    m.ye[e] = ffn_fwd(ctx, m.xe[e], f, m.ec[e]);
  }
  MatT<S> y = MatT<S>::Zero(N, x.cols());
  for (int64_t e = 0; e < E; ++e)
    for (size_t i = 0; i < m.routed[e].size(); ++i) {
      auto [t, j] = m.routed[e][i];
      y.row(t) += m.gate[t][j] * m.ye[e].row(i);
    }
  if (w.shared) y += ffn_fwd(ctx, x, *w.shared, m.shared);
  return y;
}

template <class S>
void moe_bwd(const Ctx& ctx, const MoeWeightsT<S>& w, const Shape& sh, const MatT<S>& x,
             const MoeCache<S>& m, const MatT<S>& dy, MatT<S>& dx, MoeWeightsT<S>& g) {
  const Config& c = ctx.c;
  const int64_t N = sh.rows(), E = c.n_routed_experts, K = c.num_experts_per_tok;
  const S R = static_cast<S>(c.routed_scaling_factor);
  if (w.shared) ffn_bwd(ctx, x, *w.shared, m.shared, dy, dx, *g.shared);
  // Experts: input gradient g_i δy; gate gradient a_i = δy . FFN_i(u) (training.md §6.2).
  std::vector<std::vector<S>> a(N, std::vector<S>(K, S(0)));
  std::vector<MatT<S>> dxe(E);
#pragma omp parallel for schedule(dynamic) if (expert_work(c, N) > (1 << 18))
  for (int64_t e = 0; e < E; ++e) {
    if (m.routed[e].empty()) continue;
    MatT<S> dye(m.routed[e].size(), x.cols());
    for (size_t i = 0; i < m.routed[e].size(); ++i) {
      auto [t, j] = m.routed[e][i];
      dye.row(i) = m.gate[t][j] * dy.row(t);
      a[t][j] = dy.row(t).dot(m.ye[e].row(i));
    }
    dxe[e] = MatT<S>::Zero(dye.rows(), x.cols());
    ffn_bwd(ctx, m.xe[e], w.experts[e], m.ec[e], dye, dxe[e], g.experts[e]);
  }
  for (int64_t e = 0; e < E; ++e)
    for (size_t i = 0; i < m.routed[e].size(); ++i) dx.row(m.routed[e][i].first) += dxe[e].row(i);

  // Scores: through the normalised gates, g_i = R s_i / Z:  δs_j = (R a_j − Σ_i a_i g_i) / Z.
  MatT<S> ds = MatT<S>::Zero(N, E);
  for (int64_t t = 0; t < N; ++t) {
    S ag = 0;
    if (c.norm_topk_prob)
      for (int64_t j = 0; j < K; ++j) ag += a[t][j] * m.gate[t][j];
    for (int64_t j = 0; j < K; ++j) ds(t, m.topk[t][j]) += (R * a[t][j] - ag) / m.denom[t];
  }
  // Balance loss (eq. 17-20): alpha L_Bal with L_Bal averaged over the B sequences.
  // dL/ds'_{i,t} = alpha f_i / (B T'); s' = s / Σ_j s_j: δs_j = (δs'_j − Σ_i δs'_i s'_i) / Σ.
  const double alpha = ctx.obj.effective_alpha();
  if (alpha != 0) {
    for (int64_t b = 0; b < sh.B; ++b) {
      const double coef = alpha / static_cast<double>(ctx.batch * sh.n);
      for (int64_t t = b * sh.n; t < (b + 1) * sh.n; ++t) {
        double sum = 0, dot = 0;
        for (int64_t i = 0; i < E; ++i) sum += m.scores(t, i);
        for (int64_t i = 0; i < E; ++i) dot += coef * m.f[b][i] * m.scores(t, i) / sum;
        for (int64_t i = 0; i < E; ++i) ds(t, i) += static_cast<S>((coef * m.f[b][i] - dot) / sum);
      }
    }
  }
  // Score function: sigmoid (eq. 15) or softmax (V2).
  MatT<S> dz(N, E);
  if (c.scoring_func == model::ScoringFunc::kSigmoid) {
    dz = ds.cwiseProduct(m.scores.cwiseProduct((S(1) - m.scores.array()).matrix()));
  } else {
    for (int64_t t = 0; t < N; ++t) {
      const S dot = ds.row(t).dot(m.scores.row(t));
      dz.row(t) = m.scores.row(t).cwiseProduct((ds.row(t).array() - dot).matrix());
    }
  }
  linear_bwd(x, w.gate, dz, &dx, g.gate);
}

// ---- One pre-norm block: h = x + MLA(norm(x)); y = h + FFN(norm(h)) ----------------------

template <class S>
struct BlockCache {
  MatT<S> x, xn, h, f;
  RmsCache<S> n1, n2;
  MlaCache<S> attn;
  SwigluCache<S> dense;
  MoeCache<S> moe;
};

template <class S>
MatT<S> block_fwd(const Ctx& ctx, const LayerWeightsT<S>& w, const Shape& sh, const MatT<S>& x,
                  BlockCache<S>& bc, double& balance) {
  const double eps = ctx.c.rms_norm_eps;
  bc.x = x;
  bc.xn = rms_norm_fwd(x, w.input_layernorm, eps, bc.n1);
  bc.h = x + mla_fwd(ctx, w.attn, sh, bc.xn, bc.attn);
  bc.f = rms_norm_fwd(bc.h, w.post_attention_layernorm, eps, bc.n2);
  balance = 0;
  if (w.moe) return bc.h + moe_fwd(ctx, *w.moe, sh, bc.f, bc.moe, balance);
  return bc.h + ffn_fwd(ctx, bc.f, *w.dense, bc.dense);
}

// dx = dL/dx from dy = dL/dy.
template <class S>
MatT<S> block_bwd(const Ctx& ctx, const LayerWeightsT<S>& w, const Shape& sh,
                  const BlockCache<S>& bc, const MatT<S>& dy, LayerWeightsT<S>& g) {
  const int64_t N = sh.rows(), d = ctx.c.hidden_size;
  MatT<S> df = MatT<S>::Zero(N, d);
  if (w.moe)
    moe_bwd(ctx, *w.moe, sh, bc.f, bc.moe, dy, df, *g.moe);
  else
    ffn_bwd(ctx, bc.f, *w.dense, bc.dense, dy, df, *g.dense);
  MatT<S> dh = dy;  // residual
  rms_norm_bwd(bc.h, w.post_attention_layernorm, bc.n2, df, dh, g.post_attention_layernorm);
  MatT<S> dxn = MatT<S>::Zero(N, d);
  mla_bwd(ctx, w.attn, sh, bc.xn, bc.attn, dh, dxn, g.attn);
  MatT<S> dx = dh;  // residual
  rms_norm_bwd(bc.x, w.input_layernorm, bc.n1, dxn, dx, g.input_layernorm);
  return dx;
}

template <class S>
void record_moe(const LayerWeightsT<S>& w, int layer, const BlockCache<S>& bc, double balance,
                LossParts& out) {
  if (!w.moe) return;
  out.moe_layers.push_back(layer);
  out.expert_counts.push_back(bc.moe.counts);
  out.balance += balance;
}

// One MTP depth's forward state.
template <class S>
struct MtpCache {
  Shape sh{0, 0};
  MatT<S> emb, prev, cat, hk, hkn;
  RmsCache<S> en, hn, shn;
  BlockCache<S> block;
  std::vector<int32_t> next_ids, targets;
};

}  // namespace

template <class S>
LossParts loss_and_grad(const Config& c, const model::RopeTable& rope, const ModelWeightsT<S>& w,
                        const Batch& batch, const Objective& obj, ModelWeightsT<S>* grad,
                        const LowPrecision* precision) {
  const int64_t B = batch.B, T = batch.T, d = c.hidden_size, V = c.vocab_size;
  const int D = static_cast<int>(w.mtp.size());
  if (B < 1 || T < D + 2)
    throw std::invalid_argument(fmt::format(
        "a batch needs B >= 1 and T >= {} tokens per sequence (D = {} MTP modules), got [{}, {}]",
        D + 2, D, B, T));
  if (static_cast<int64_t>(batch.ids.size()) != B * T)
    throw std::invalid_argument("batch ids size != B * T");
  for (int32_t id : batch.ids)
    if (id < 0 || id >= V)
      throw std::out_of_range(fmt::format("token id {} is outside the vocabulary [0, {})", id, V));
  if (T > c.max_position_embeddings)
    throw std::out_of_range(fmt::format("sequence length {} exceeds max_position_embeddings {}", T,
                                        c.max_position_embeddings));
  const double eps = c.rms_norm_eps;
  Ctx ctx{c, rope, obj, B, precision};
  if (precision && precision->precision == Precision::kFp32) ctx.lp = nullptr;
  if (ctx.lp) ctx.lp->validate();
  LossParts out;

  // ---- Main model forward.
  const Shape sh(B, T);
  const int64_t N = B * T;
  MatT<S> h(N, d);  // [B*T, d]
  for (int64_t r = 0; r < N; ++r) h.row(r) = w.embed_tokens.row(batch.ids[r]);
  std::vector<BlockCache<S>> caches(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    double bal = 0;
    h = block_fwd(ctx, w.layers[l], sh, h, caches[l], bal);
    record_moe(w.layers[l], static_cast<int>(l), caches[l], bal, out);
  }
  RmsCache<S> final_norm;
  MatT<S> hn = rms_norm_fwd(h, w.norm, eps, final_norm);  // [B*T, d]
  MatT<S> logits = linear_fwd(hn, w.lm_head);             // [B*T, V]
  std::vector<int32_t> targets(N, -1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) targets[b * T + t] = batch.at(b, t + 1);
  const double n_main = static_cast<double>(B * (T - 1));
  MatT<S> dlogits;
  out.main =
      cross_entropy(logits, targets, static_cast<S>(1.0 / n_main), grad ? &dlogits : nullptr) /
      n_main;
  logits.resize(0, 0);

  // ---- MTP modules (eq. 21-23): depth k at positions t = 0 .. T-1-k of each sequence.
  std::vector<MtpCache<S>> mc(D);
  std::vector<MatT<S>> mtp_dlogits(D);
  for (int k = 1; k <= D; ++k) {
    MtpCache<S>& M = mc[k - 1];
    const model::MtpWeightsT<S>& mw = w.mtp[k - 1];
    const int64_t n = T - k, n_prev = T - k + 1;
    M.sh = Shape(B, n);
    const MatT<S>& prev_all = k == 1 ? hn : mc[k - 2].hk;  // h^{k-1}
    M.prev.resize(B * n, d);
    M.emb.resize(B * n, d);
    M.targets.assign(B * n, -1);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n; ++t) {
        M.prev.row(b * n + t) = prev_all.row(b * n_prev + t);
        M.emb.row(b * n + t) = w.embed_tokens.row(batch.at(b, t + k));  // Emb(t_{i+k})
        if (t + k + 1 < T) M.targets[b * n + t] = batch.at(b, t + k + 1);
      }
    M.cat.resize(B * n, 2 * d);  // code order: [enorm(Emb); hnorm(h)]
    M.cat.leftCols(d) = rms_norm_fwd(M.emb, mw.enorm, eps, M.en);
    M.cat.rightCols(d) = rms_norm_fwd(M.prev, mw.hnorm, eps, M.hn);
    MatT<S> x = linear_fwd(M.cat, mw.eh_proj);  // eq. (21)
    double bal = 0;
    M.hk = block_fwd(ctx, mw.block, M.sh, x, M.block, bal);  // eq. (22)
    record_moe(mw.block, static_cast<int>(c.num_hidden_layers + k - 1), M.block, bal, out);
    M.hkn = rms_norm_fwd(M.hk, mw.shared_head_norm, eps, M.shn);
    MatT<S> lk = linear_fwd(M.hkn, w.lm_head);  // eq. (23), the shared head
    const double n_k = static_cast<double>(B * (T - 1 - k));
    const double wk = obj.mtp_lambda / D / n_k;  // eq. (25): λ/D times the mean
    out.mtp.push_back(
        cross_entropy(lk, M.targets, static_cast<S>(wk), grad ? &mtp_dlogits[k - 1] : nullptr) /
        n_k);
  }
  out.total = out.main + obj.effective_alpha() * out.balance;
  for (double lk : out.mtp) out.total += obj.mtp_lambda / D * lk;
  if (!grad) return out;

  // ---- Backward, in reverse.
  ModelWeightsT<S>& g = *grad;
  MatT<S> dhn = MatT<S>::Zero(N, d);
  MatT<S> dnext;  // dL/dh^k flowing back from depth k+1 into depth k's block output
  for (int k = D; k >= 1; --k) {
    MtpCache<S>& M = mc[k - 1];
    const model::MtpWeightsT<S>& mw = w.mtp[k - 1];
    model::MtpWeightsT<S>& mg = g.mtp[k - 1];
    const int64_t n = T - k, n_prev = T - k + 1;
    MatT<S> dhkn = MatT<S>::Zero(B * n, d);
    linear_bwd(M.hkn, w.lm_head, mtp_dlogits[k - 1], &dhkn, g.lm_head);
    MatT<S> dhk = dnext.size() ? dnext : MatT<S>::Zero(B * n, d);
    rms_norm_bwd(M.hk, mw.shared_head_norm, M.shn, dhkn, dhk, mg.shared_head_norm);
    MatT<S> dx = block_bwd(ctx, mw.block, M.sh, M.block, dhk, mg.block);
    MatT<S> dcat = MatT<S>::Zero(B * n, 2 * d);
    linear_bwd(M.cat, mw.eh_proj, dx, &dcat, mg.eh_proj);
    MatT<S> demb = MatT<S>::Zero(B * n, d), dprev = MatT<S>::Zero(B * n, d);
    rms_norm_bwd(M.emb, mw.enorm, M.en, MatT<S>(dcat.leftCols(d)), demb, mg.enorm);
    rms_norm_bwd(M.prev, mw.hnorm, M.hn, MatT<S>(dcat.rightCols(d)), dprev, mg.hnorm);
    // The shared embedding collects this depth's gradient; h^{k-1} passes it on (not detached).
    MatT<S>& dprev_all = k == 1 ? dhn : dnext;
    if (k > 1) dprev_all = MatT<S>::Zero(B * n_prev, d);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n; ++t) {
        g.embed_tokens.row(batch.at(b, t + k)) += demb.row(b * n + t);
        dprev_all.row(b * n_prev + t) += dprev.row(b * n + t);
      }
    if (k == 1) dnext.resize(0, 0);
  }
  linear_bwd(hn, w.lm_head, dlogits, &dhn, g.lm_head);
  dlogits.resize(0, 0);
  MatT<S> dh = MatT<S>::Zero(N, d);
  rms_norm_bwd(h, w.norm, final_norm, dhn, dh, g.norm);
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l)
    dh = block_bwd(ctx, w.layers[l], sh, caches[l], dh, g.layers[l]);
  for (int64_t r = 0; r < N; ++r) g.embed_tokens.row(batch.ids[r]) += dh.row(r);
  return out;
}

template LossParts loss_and_grad(const Config&, const model::RopeTable&,
                                 const ModelWeightsT<float>&, const Batch&, const Objective&,
                                 ModelWeightsT<float>*, const LowPrecision*);
template LossParts loss_and_grad(const Config&, const model::RopeTable&,
                                 const ModelWeightsT<double>&, const Batch&, const Objective&,
                                 ModelWeightsT<double>*, const LowPrecision*);
template ModelWeightsT<float> zeros_like(const Config&, const ModelWeightsT<float>&);
template ModelWeightsT<double> zeros_like(const Config&, const ModelWeightsT<double>&);

}  // namespace dsv3::train

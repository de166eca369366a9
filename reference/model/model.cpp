#include "reference/model/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string_view>

#include "reference/model/compact_linear.h"
#include "reference/model/threads.h"

namespace dsv3::model {
namespace fs = std::filesystem;

namespace {

float silu(float v) {
  return v / (1.0f + std::exp(-v));
}

// Whether a loop of `work` multiply-adds over T tokens is worth the OpenMP team. A fork/join
// costs about 1 us on 2 idle cores, so a decode step (T = 1) splits a loop from 2^16 (some 5 us
// of one core's work: a tiny model's attention past 114 tokens of context, the 4 + 1 experts of
// its MoE layer). With more tokens the bar stays above 2^20: products past 8 rows are Eigen
// GEMMs, whose blocking, and so whose sums, depend on the threads they get, and a lower bar
// would move some of them into a region; a decode step's products (matmul_wt's one-row path,
// Eigen's GEMV) sum in the same order on any team (test DecodeStep.TwoThreadsGiveTheBitsOfOne).
bool worth_threads(int64_t work, int64_t T) {
  return T == 1 ? work >= (int64_t{1} << 16) : work > (int64_t{1} << 20);
}

// fn(i) for i in [0, n), on the OpenMP team only when `parallel` (open_team: there is a team, and
// not already inside a region).
template <class Fn>
void for_each_index(int64_t n, bool parallel, Fn&& fn) {
  if (!open_team(parallel)) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace

// RMSNorm over each row (eps from the config), then the learned per-channel weight.
Mat rms_norm(const Mat& x, const Vec& weight, double eps) {
  Mat y(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    float ms = x.row(r).squaredNorm() / static_cast<float>(x.cols());
    float inv = 1.0f / std::sqrt(ms + static_cast<float>(eps));
    y.row(r) = (x.row(r) * inv).cwiseProduct(weight.transpose());
  }
  return y;
}

// The max and the divisions run in vector lanes with the numbers of the plain loops (a max is
// exact in any order, up to the sign of a zero, which c z_s - m does not show; each quotient is
// one rounding); the exponentials are summed one by one, in order.
void softmax_row(float* z, int64_t n, float c) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t s = 0; s < n; ++s) m = std::max(m, z[s] * c);
  float sum = 0;
  for (int64_t s = 0; s < n; ++s) sum += z[s] = std::exp(z[s] * c - m);
#pragma omp simd
  for (int64_t s = 0; s < n; ++s) z[s] /= sum;
}

Mat matmul_wt(const Mat& x, const Mat& w) {
  // A few rows (decode, or verifying a handful of drafts): one pass over W, each output a dot
  // product of a weight row with an input row. This reads W once (a packed GEMM would copy it
  // first) and gives every row the same summation order, so a token's result does not depend
  // on how many tokens share the call.
  if (x.rows() <= 8) {
    Mat y(x.rows(), w.rows());
    const Eigen::Index out = w.rows(), rows = x.rows();
    // Outputs [o0, o1): one input row (decode) through matvec_f32, the same dots.
    auto outputs = [&](Eigen::Index o0, Eigen::Index o1) {
      if (rows == 1)
        return matvec_f32(w.data() + o0 * w.cols(), o1 - o0, w.cols(), x.data(), y.data() + o0);
      for (Eigen::Index o = o0; o < o1; ++o)
        for (Eigen::Index t = 0; t < rows; ++t) y(t, o) = w.row(o).dot(x.row(t));
    };
    // Threads from 2^18 multiply-adds per row (1 MB of weights, some 15 us of one core's work,
    // against about 1 us for a fork/join on 2 idle cores), never inside another region (a routed
    // expert's product). Each output is one thread's dot, whatever the split.
    constexpr Eigen::Index kBlock = 64;  // outputs per task
    for_each_index((out + kBlock - 1) / kBlock, out * w.cols() >= (1 << 18),
                   [&](int64_t b) { outputs(b * kBlock, std::min(out, (b + 1) * kBlock)); });
    return y;
  }
  return x * w.transpose();
}

Model::Model(Config config, ModelWeights weights, std::shared_ptr<const io::Tokenizer> tokenizer)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      rope_(make_rope_table(config_)),
      tokenizer_(tokenizer ? std::move(tokenizer) : std::make_shared<io::ByteTokenizer>()) {}

Model::Model(Config config, ModelWeights weights, std::shared_ptr<const NativeWeights> native,
             std::shared_ptr<const io::Tokenizer> tokenizer)
    : Model(std::move(config), std::move(weights), std::move(tokenizer)) {
  native_ = std::move(native);
}

Model Model::load(const std::string& name_or_dir, uint64_t seed, WeightMode mode) {
  Config c = resolve_config(name_or_dir);
  const fs::path p(resolve_model_path(name_or_dir));
  if (fs::is_directory(p) && mode == WeightMode::kNative) {
    auto [vectors, native] = load_native(c, p.string());
    return Model(c, std::move(vectors), std::move(native), io::load_tokenizer(p.string()));
  }
  if (fs::is_directory(p))
    return Model(c, load_weights(c, p.string()), io::load_tokenizer(p.string()));
  if (mode == WeightMode::kNative)
    throw std::invalid_argument(fmt::format(
        "--weights native needs a checkpoint folder; '{}' is a config with random weights",
        name_or_dir));
  Model m(c, dsv3::model::random_weights(c, seed));
  m.random_ = true;
  return m;
}

Mat Model::head(const Mat& h_normed) const {
  if (native_) return matmul_wt(h_normed, native_->at("lm_head.weight"));
  return matmul_wt(h_normed, weights_.lm_head);
}

Mat Model::embed(std::span<const int32_t> ids) const {
  Mat e(static_cast<Eigen::Index>(ids.size()), config_.hidden_size);  // [n, d]
  const CompactMatrix* table = native_ ? &native_->at("model.embed_tokens.weight") : nullptr;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      throw std::out_of_range(
          fmt::format("token id {} is outside the vocabulary [0, {})", ids[i], config_.vocab_size));
    if (table)
      table->row(ids[i], e.row(static_cast<Eigen::Index>(i)).data());
    else
      e.row(static_cast<Eigen::Index>(i)) = weights_.embed_tokens.row(ids[i]);
  }
  return e;
}

const Mat& Model::f32_matrix(const Mat& w, const std::string& name) const {
  return native_ ? native_->f32(name) : w;
}

namespace {

struct Ctx {
  const Config& c;
  const RopeTable& rope;
  const ForwardOptions& opt;
  std::string prefix;           // "model.layers.{l}."
  const NativeWeights* native;  // null: float32 weights
  const Model& model;

  // y = x W^T, or the FP8 hook for the projections DeepSeek runs in FP8 (Fig. 6). With native
  // weights W is the stored matrix of that name, dequantized inside the product. The name is
  // prefix + group + leaf ("model.layers.3." "mlp.experts.5." "up_proj.weight"), put together
  // only when a hook or a native lookup reads it: float32 decode builds no strings.
  Mat linear(const Mat& x, const Mat& w, std::string_view leaf, std::string_view group = {}) const {
    if (!uses_names()) return matmul_wt(x, w);
    const std::string name = fmt::format("{}{}{}", prefix, group, leaf);
    if (native) {
      const CompactMatrix& m = native->at(name);
      if (opt.linear) return opt.linear(x, m.to_f32(), name);
      return matmul_wt(x, m);
    }
    return opt.linear(x, w, name);
  }
  bool uses_names() const { return native || opt.linear; }
  // A matrix used as a whole in float32 (router, absorbed kv_b_proj).
  const Mat& f32(const Mat& w, const std::string& name) const {
    return model.f32_matrix(w, prefix + name);
  }
};

// SwiGLU FFN (dense layers, routed and shared experts): down( silu(gate x) * up x ). `name` is
// the FFN's tensor group, e.g. "mlp.experts.5.".
Mat swiglu(const Ctx& ctx, const Mat& x, const FfnWeights& f, std::string_view name) {
  Mat g = ctx.linear(x, f.gate_proj, "gate_proj.weight", name);
  Mat u = ctx.linear(x, f.up_proj, "up_proj.weight", name);
  Mat a = g.unaryExpr([](float v) { return silu(v); }).cwiseProduct(u);
  return ctx.linear(a, f.down_proj, "down_proj.weight", name);
}

// Multi-head Latent Attention over x [T, d] at positions p0 .. p0+T-1 (V3 §2.1.1, eq. 1-11).
Mat mla(const Ctx& ctx, const AttentionWeights& w, const Mat& x, int64_t p0, KVCache::Layer& cache,
        AttnImpl impl, std::vector<LayerTrace*>& traces) {
  const Config& c = ctx.c;
  const int64_t T = x.rows(), H = c.num_attention_heads;
  const int64_t dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim, dv = c.v_head_dim;
  const int64_t dqk = dn + dr, dc = c.kv_lora_rank;
  const int64_t S = p0 + T;  // keys visible to the last query
  const float scale = static_cast<float>(c.softmax_scale());

  // eq. (6)-(9): queries. c^Q = W^{DQ} h (then RMSNorm); [q^C; q^R] = W^{UQ}/W^{QR} c^Q.
  Mat q;  // [T, H*(dn+dr)], per head: dn "nope" columns then dr rope columns
  if (c.q_lora_rank > 0) {
    Mat cq = rms_norm(ctx.linear(x, w.q_a_proj, "self_attn.q_a_proj.weight"), w.q_a_layernorm,
                      c.rms_norm_eps);
    q = ctx.linear(cq, w.q_b_proj, "self_attn.q_b_proj.weight");
  } else {
    q = ctx.linear(x, w.q_proj, "self_attn.q_proj.weight");
  }
  // eq. (1), (3): the compressed latent c^{KV} and the shared RoPE key k^R.
  Mat kv =
      ctx.linear(x, w.kv_a_proj_with_mqa, "self_attn.kv_a_proj_with_mqa.weight");  // [T, dc+dr]
  Mat ckv = rms_norm(kv.leftCols(dc), w.kv_a_layernorm, c.rms_norm_eps);           // [T, dc]
  Mat kpe = kv.rightCols(dr);                                                      // [T, dr]
  for (int64_t t = 0; t < T; ++t) {
    // eq. (3), (8): RoPE on q^R (every head) and on the one shared k^R, at position p0 + t.
    for (int64_t h = 0; h < H; ++h) ctx.rope.apply(q.row(t).data() + h * dqk + dn, 1, p0 + t);
    ctx.rope.apply(kpe.row(t).data(), 1, p0 + t);
  }

  // Kv_b split per head: rows [h*(dn+dv), +dn) are W^{UK}_h, the next dv rows W^{UV}_h.
  Mat folded;  // FP8 mode, absorbed form: the weight as its FP8 blocks dequantize
  // Native weights, absorbed form: kv_b_proj's float32 copy (made once, NativeWeights::f32).
  const Mat& kv_b = impl == AttnImpl::kAbsorbed ? ctx.f32(w.kv_b_proj, "self_attn.kv_b_proj.weight")
                                                : w.kv_b_proj;
  if (impl == AttnImpl::kAbsorbed && ctx.opt.absorbed_weight)
    folded = ctx.opt.absorbed_weight(kv_b, ctx.prefix + "self_attn.kv_b_proj.weight");
  const Mat& wkvb = folded.size() ? folded : kv_b;  // [H*(dn+dv), dc]
  if (impl == AttnImpl::kNaive) {
    // eq. (2), (4), (5): materialise k_h = [k^C_h; k^R] and v_h for every head and cache them.
    Mat kvb = ctx.linear(ckv, wkvb, "self_attn.kv_b_proj.weight");  // [T, H*(dn+dv)]
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        cache.a.row(p0 + t).segment(h * dqk, dn) = kvb.row(t).segment(h * (dn + dv), dn);
        cache.a.row(p0 + t).segment(h * dqk + dn, dr) = kpe.row(t);
        cache.b.row(p0 + t).segment(h * dv, dv) = kvb.row(t).segment(h * (dn + dv) + dn, dv);
      }
  } else {
    // Absorbed form: only c^{KV} and k^R are cached (d_c + d^R_h numbers per token).
    cache.a.middleRows(p0, T) = ckv;
    cache.b.middleRows(p0, T) = kpe;
  }

  Mat o(T, H * dv);  // [T, H*dv], head-major
  const int64_t head_work = S * T * (impl == AttnImpl::kNaive ? dqk + dv : 2 * dc + dr);
  for_each_index(H, worth_threads(H * head_work, T), [&](int64_t h) {
    Mat scores;  // [T, S]
    if (impl == AttnImpl::kNaive) {
      Mat qh = q.middleCols(h * dqk, dqk);
      scores = qh * cache.a.block(0, h * dqk, S, dqk).transpose();
    } else {
      // q^C_h^T k^C_h(s) = (W^{UK}_h^T q^C_h)^T c^{KV}(s): absorb W^{UK} into the query.
      Mat q_abs = q.middleCols(h * dqk, dn) * wkvb.middleRows(h * (dn + dv), dn);  // [T, dc]
      scores = q_abs * cache.a.topRows(S).transpose() +
               q.middleCols(h * dqk + dn, dr) * cache.b.topRows(S).transpose();
    }
    // eq. (10): softmax(q^T k / sqrt(d_h + d^R_h)) with a causal mask.
    for (int64_t t = 0; t < T; ++t) {
      const int64_t visible = p0 + t + 1;
      softmax_row(scores.row(t).data(), visible, scale);
      for (int64_t s = visible; s < S; ++s) scores(t, s) = 0;
      if (traces[t])
        traces[t]->attn[h].assign(scores.row(t).data(), scores.row(t).data() + visible);
    }
    if (impl == AttnImpl::kNaive) {
      o.middleCols(h * dv, dv) = scores * cache.b.block(0, h * dv, S, dv);
    } else {
      // Absorb W^{UV} on the output side: o_h = W^{UV}_h (sum_s p_s c^{KV}(s)).
      Mat lat = scores * cache.a.topRows(S);  // [T, dc]
      o.middleCols(h * dv, dv) = lat * wkvb.middleRows(h * (dn + dv) + dn, dv).transpose();
    }
  });
  return ctx.linear(o, w.o_proj, "self_attn.o_proj.weight");  // eq. (11)
}

// DeepSeekMoE (eq. 12-16): h' = u + sum_shared FFN(u) + sum_routed g_{i,t} FFN_i(u).
Mat moe(const Ctx& ctx, const MoeWeights& m, const Mat& x, std::vector<LayerTrace*>& traces) {
  const Config& c = ctx.c;
  const int64_t T = x.rows(), E = c.n_routed_experts;
  const Mat& gate = ctx.f32(m.gate, "mlp.gate.weight");
  Mat logits = x * gate.transpose();  // router in full precision, never FP8  [T, E]
  std::span<const float> bias;
  if (m.e_score_correction_bias.size())
    bias = {m.e_score_correction_bias.data(), static_cast<size_t>(E)};
  // (expert, token, gate) for every routed token, sorted by expert; tokens ascending within one.
  struct Routed {
    int64_t expert, token;
    float gate;
  };
  std::vector<Routed> routed;
  routed.reserve(T * c.num_experts_per_tok);
  for (int64_t t = 0; t < T; ++t) {
    RouteResult r = route(c, {logits.row(t).data(), static_cast<size_t>(E)}, bias, ctx.opt.router);
    for (size_t j = 0; j < r.topk_idx.size(); ++j)
      routed.push_back({r.topk_idx[j], t, r.topk_weight[j]});
    if (traces[t]) {
      traces[t]->router = std::move(r);
      traces[t]->bias.assign(bias.begin(), bias.end());  // b_i as used by eq. (16) just now
    }
  }
  std::stable_sort(routed.begin(), routed.end(),
                   [](const Routed& a, const Routed& b) { return a.expert < b.expert; });
  std::vector<size_t> first;  // the chosen experts' runs: [first[g], first[g + 1]) of routed
  for (size_t i = 0; i < routed.size(); ++i)
    if (i == 0 || routed[i].expert != routed[i - 1].expert) first.push_back(i);
  first.push_back(routed.size());
  const int64_t chosen = static_cast<int64_t>(first.size()) - 1;

  // One task per chosen expert; in a decode step the shared experts' FFN is one more, so that
  // it runs beside the routed ones (with more tokens it runs after them, on the whole team).
  const bool shared_task = m.shared && T == 1;
  std::vector<Mat> outs(chosen + (shared_task ? 1 : 0));  // FFN outputs, one per task
  const int64_t ffns = T * c.num_experts_per_tok + (shared_task ? c.n_shared_experts : 0);
  const int64_t work = ffns * x.cols() * c.moe_intermediate_size * 3;
  // With a linear hook the experts run one after another: the hook sees them in order, on the
  // calling thread (ForwardOptions::linear).
  const bool threads = worth_threads(work, T) && !ctx.opt.linear;
  for_each_index(static_cast<int64_t>(outs.size()), threads, [&](int64_t g) {
    if (g == chosen) {  // the shared task
      outs[g] = swiglu(ctx, x, *m.shared, "mlp.shared_experts.");
      return;
    }
    const int64_t e = routed[first[g]].expert, n = first[g + 1] - first[g];
    const std::string name = ctx.uses_names() ? fmt::format("mlp.experts.{}.", e) : "";
    if (n == T) {  // every token (decode: the one token): x itself
      outs[g] = swiglu(ctx, x, m.experts[e], name);
      return;
    }
    Mat xe(n, x.cols());
    for (int64_t i = 0; i < n; ++i) xe.row(i) = x.row(routed[first[g] + i].token);
    outs[g] = swiglu(ctx, xe, m.experts[e], name);
  });
  Mat y = Mat::Zero(T, x.cols());
  for (int64_t g = 0; g < chosen; ++g)  // ascending expert order, as both references accumulate
    for (size_t i = first[g]; i < first[g + 1]; ++i)
      y.row(routed[i].token) += routed[i].gate * outs[g].row(i - first[g]);
  if (shared_task)
    y += outs[chosen];
  else if (m.shared)
    y += swiglu(ctx, x, *m.shared, "mlp.shared_experts.");
  return y;
}

}  // namespace

Mat Model::block(const LayerWeights& w, int layer_index, const Mat& x, KVCache& cache,
                 int cache_layer, const ForwardOptions& opt, int64_t trace_offset) const {
  const int64_t T = x.rows(), p0 = cache.length();
  Ctx ctx{config_, rope_, opt, fmt::format("model.layers.{}.", layer_index), native_.get(), *this};
  std::vector<LayerTrace*> traces(T, nullptr);
  if (opt.trace) {
    for (int64_t t = 0; t < T; ++t) {
      TokenTrace& tt = opt.trace->tokens[trace_offset + t];
      if (static_cast<int64_t>(tt.layers.size()) <= layer_index) tt.layers.resize(layer_index + 1);
      LayerTrace& lt = tt.layers[layer_index];
      lt.layer = layer_index;
      lt.moe = w.moe.has_value();
      lt.cache_elements_per_token = cache.elements_per_token_per_layer();
      lt.cache_bytes = (p0 + t + 1) * lt.cache_elements_per_token * 4;
      lt.attn.assign(config_.num_attention_heads, {});
      traces[t] = &lt;
    }
  }
  // Pre-norm residual block: h = x + MLA(norm(x)); out = h + FFN(norm(h)).
  Mat h = x + mla(ctx, w.attn, rms_norm(x, w.input_layernorm, config_.rms_norm_eps), p0,
                  cache.layer(cache_layer), cache.impl(), traces);
  Mat f = rms_norm(h, w.post_attention_layernorm, config_.rms_norm_eps);
  if (w.moe) return h + moe(ctx, *w.moe, f, traces);
  return h + swiglu(ctx, f, *w.dense, "mlp.");
}

Mat Model::forward(std::span<const int32_t> ids, KVCache& cache, const ForwardOptions& opt) const {
  const int64_t T = static_cast<int64_t>(ids.size()), p0 = cache.length();
  if (T == 0) return Mat(0, config_.vocab_size);
  for (int32_t id : ids)
    if (id < 0 || id >= config_.vocab_size)
      throw std::out_of_range(
          fmt::format("token id {} is outside the vocabulary [0, {})", id, config_.vocab_size));
  if (p0 + T > config_.max_position_embeddings)
    throw std::out_of_range(fmt::format("position {} exceeds max_position_embeddings {}",
                                        p0 + T - 1, config_.max_position_embeddings));

  int64_t trace_offset = 0;
  if (opt.trace) {
    trace_offset = static_cast<int64_t>(opt.trace->tokens.size());
    for (int64_t t = 0; t < T; ++t) {
      TokenTrace tt;
      tt.position = p0 + t;
      tt.token = ids[t];
      tt.layers.resize(config_.num_hidden_layers);
      opt.trace->tokens.push_back(std::move(tt));
    }
  }
  cache.reserve_more(T);
  Mat h = embed(ids);  // [T, d]
  if (opt.hidden) opt.hidden->assign(1, h);
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    h = block(weights_.layers[l], static_cast<int>(l), h, cache, static_cast<int>(l), opt,
              trace_offset);
    if (opt.hidden && l + 1 < config_.num_hidden_layers) opt.hidden->push_back(h);
  }
  cache.advance(T);
  Mat hn = rms_norm(h, weights_.norm, config_.rms_norm_eps);
  if (opt.hidden) opt.hidden->push_back(hn);  // hidden.L is after the final norm (HF convention)
  Mat logits = head(hn);                      // [T, V]

  if (opt.trace) {
    for (int64_t t = 0; t < T; ++t) {
      auto row = logits.row(t);
      float mx = row.maxCoeff();
      Eigen::RowVectorXf p = (row.array() - mx).exp();
      p /= p.sum();
      std::vector<int32_t> idx(config_.vocab_size);
      std::iota(idx.begin(), idx.end(), 0);
      int k = std::min<int>(opt.trace->top_k, static_cast<int>(config_.vocab_size));
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int a, int b) { return p[a] > p[b]; });
      auto& top = opt.trace->tokens[trace_offset + t].top_next;
      for (int j = 0; j < k; ++j) top.emplace_back(idx[j], p[idx[j]]);
    }
  }
  return logits;
}

}  // namespace dsv3::model

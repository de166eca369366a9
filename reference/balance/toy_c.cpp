#include "reference/balance/toy_c.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "reference/balance/aux_loss.h"
#include "reference/balance/batch_router.h"
#include "reference/balance/metrics.h"
#include "reference/balance/rng.h"
#include "reference/model/tensor.h"

namespace dsv3::balance {

std::string_view balancing_name(Balancing b) {
  switch (b) {
    case Balancing::kNone:
      return "none";
    case Balancing::kAuxLoss:
      return "aux-loss";
    case Balancing::kLossFree:
      return "loss-free";
  }
  return "?";
}

namespace {

struct Task {
  Mat mu;                   // [C, d] cluster centres
  Mat a;                    // [C, d] per-cluster target maps
  std::vector<double> cdf;  // Zipf cumulative frequencies [C]

  Task(const ToyCConfig& c) : mu(c.clusters, c.dim), a(c.clusters, c.dim), cdf(c.clusters) {
    Rng rng(c.task_seed * 7777 + 17);
    for (Eigen::Index i = 0; i < mu.size(); ++i) mu.data()[i] = static_cast<float>(rng.normal());
    const double s = 1.0 / std::sqrt(static_cast<double>(c.dim));
    for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(s * rng.normal());
    double total = 0;
    for (int k = 0; k < c.clusters; ++k) total += cdf[k] = std::pow(k + 1.0, -c.zipf);
    double run = 0;
    for (int k = 0; k < c.clusters; ++k) cdf[k] = (run += cdf[k]) / total;
  }

  // x [T, d] and y [T]: cluster by Zipf, x = μ_c + ε, y = a_c·x.
  void sample(Rng& rng, Mat& x, Vec& y) const {
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
      const double u = rng.uniform();
      int cl = static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
      cl = std::min(cl, static_cast<int>(cdf.size()) - 1);
      for (Eigen::Index j = 0; j < x.cols(); ++j)
        x(t, j) = mu(cl, j) + static_cast<float>(rng.normal());
      y[t] = x.row(t).dot(a.row(cl));
    }
  }
};

struct Adam {
  Mat m, v;
  double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int t = 0;
  explicit Adam(const Mat& p)
      : m(Mat::Zero(p.rows(), p.cols())), v(Mat::Zero(p.rows(), p.cols())) {}
  void step(Mat& p, const Mat& g, double lr) {
    ++t;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g.cwiseProduct(g);
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    p.array() -= static_cast<float>(lr) *
                 ((m.array() / c1) / ((v.array() / c2).sqrt() + static_cast<float>(eps)));
  }
};

}  // namespace

ToyCResult run_toy_c(const ToyCConfig& c) {
  if (c.dim <= 0 || c.clusters <= 0 || c.tokens_per_batch <= 0 || c.steps < 0)
    throw std::invalid_argument("toy C: sizes must be positive");
  const model::Config rc = router_config(c.experts, c.top_k);
  const Task task(c);
  Rng rng(c.seed * 104729 + 3);
  // Router e_i (rows) with the V3 init std 0.006; experts w_i small.
  Mat router(c.experts, c.dim), experts(c.experts, c.dim);
  for (Eigen::Index i = 0; i < router.size(); ++i)
    router.data()[i] = static_cast<float>(0.006 * rng.normal());
  for (Eigen::Index i = 0; i < experts.size(); ++i)
    experts.data()[i] = static_cast<float>(0.1 * rng.normal());
  Adam opt_r(router), opt_e(experts);
  std::vector<float> bias(c.experts, 0.0f);
  const bool loss_free = c.method == Balancing::kLossFree;
  const bool aux = c.method == Balancing::kAuxLoss && c.alpha > 0;
  BiasBalancer balancer(c.experts, c.gamma, c.rule);

  const int T = c.tokens_per_batch, K = c.top_k;
  Mat x(T, c.dim), z(T, c.experts), gz(T, c.experts), gr(c.experts, c.dim), ge(c.experts, c.dim);
  Vec y(T);
  BatchRouting routing;
  ToyCResult res;
  res.train_mse.reserve(c.steps);
  res.maxvio_batch.reserve(c.steps);
  for (int step = 0; step < c.steps; ++step) {
    task.sample(rng, x, y);
    z.noalias() = x * router.transpose();  // logits u_t·e_i  [T, N]
    route_batch(rc, z, loss_free ? std::span<const float>(bias) : std::span<const float>(),
                routing);
    gz.setZero();
    ge.setZero();
    double mse = 0;
    for (int t = 0; t < T; ++t) {
      const int* S = routing.experts(t);
      const float* g = routing.topk_weight.data() + static_cast<size_t>(t) * K;  // eq. (13)
      double pred = 0, ssum = 0;
      for (int j = 0; j < K; ++j) {
        pred += g[j] * static_cast<double>(experts.row(S[j]).dot(x.row(t)));
        ssum += 1.0 / (1.0 + std::exp(-static_cast<double>(z(t, S[j]))));
      }
      const double err = pred - y[t];
      mse += err * err / T;
      const double r = 2.0 * err / T;  // dL/dŷ
      for (int j = 0; j < K; ++j) {
        const int e = S[j];
        const double o = experts.row(e).dot(x.row(t));
        ge.row(e) += static_cast<float>(r * g[j]) * x.row(t);
        // g_j = s_j/Σ_S s: dL/ds_j = r (o_j − ŷ)/Σ_S s, then σ' = s(1 − s).
        const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(z(t, e))));
        gz(t, e) += static_cast<float>(r * (o - pred) / ssum * s * (1 - s));
      }
    }
    if (aux) gz += sequence_balance_loss(z, K, T, c.alpha).grad_logits;  // eq. (17-20)
    gr.noalias() = gz.transpose() * x;                                   // [N, d]
    opt_r.step(router, gr, c.lr);
    opt_e.step(experts, ge, c.lr);
    balancer.observe_batch(routing.topk_idx, K);
    const StepStats st = balancer.step(bias);  // moves the bias only when enabled
    res.train_mse.push_back(mse);
    res.maxvio_batch.push_back(st.maxvio);
    if (!loss_free) std::fill(bias.begin(), bias.end(), 0.0f);
  }

  // Held-out evaluation with the final router and biases.
  Rng eval_rng(c.task_seed * 31337 + 99);
  Mat xe(c.eval_tokens, c.dim);
  Vec ye(c.eval_tokens);
  task.sample(eval_rng, xe, ye);
  const Mat ze = xe * router.transpose();
  route_batch(rc, ze, loss_free ? std::span<const float>(bias) : std::span<const float>(), routing);
  double mse = 0;
  for (int t = 0; t < c.eval_tokens; ++t) {
    double pred = 0;
    for (int j = 0; j < K; ++j)
      pred += routing.topk_weight[static_cast<size_t>(t) * K + j] *
              static_cast<double>(experts.row(routing.experts(t)[j]).dot(xe.row(t)));
    mse += (pred - ye[t]) * (pred - ye[t]);
  }
  res.eval_mse = c.eval_tokens > 0 ? mse / c.eval_tokens : 0;
  const std::vector<int64_t> counts = expert_counts(routing, c.experts);
  res.maxvio_global = max_vio(counts);
  res.load = load_fractions(counts);
  res.bias = bias;
  return res;
}

std::vector<TradeoffPoint> run_tradeoff(const ToyCConfig& base, const std::vector<double>& alphas,
                                        const std::vector<double>& gammas, int seeds) {
  std::vector<TradeoffPoint> points;
  points.push_back({Balancing::kNone, 0, 0, 0, {}, {}, {}});
  for (double a : alphas)
    if (a > 0) points.push_back({Balancing::kAuxLoss, a, 0, 0, {}, {}, {}});
  for (double g : gammas) points.push_back({Balancing::kLossFree, g, 0, 0, {}, {}, {}});
  seeds = std::max(1, seeds);
  const int runs = static_cast<int>(points.size()) * seeds;
  std::vector<ToyCResult> results(runs);
#pragma omp parallel for schedule(dynamic)
  for (int r = 0; r < runs; ++r) {
    const TradeoffPoint& p = points[r / seeds];
    ToyCConfig c = base;
    c.method = p.method;
    c.alpha = p.method == Balancing::kAuxLoss ? p.param : 0;
    if (p.method == Balancing::kLossFree) c.gamma = static_cast<float>(p.param);
    c.seed = base.seed + static_cast<uint64_t>(r % seeds);
    results[r] = run_toy_c(c);
  }
  for (size_t i = 0; i < points.size(); ++i) {
    TradeoffPoint& p = points[i];
    for (int s = 0; s < seeds; ++s) {
      const ToyCResult& r = results[i * seeds + s];
      p.eval_mse_seeds.push_back(r.eval_mse);
      p.maxvio_seeds.push_back(r.maxvio_global);
      p.eval_mse += r.eval_mse / seeds;
      p.maxvio_global += r.maxvio_global / seeds;
    }
    p.maxvio_batch = results[i * seeds].maxvio_batch;
  }
  return points;
}

}  // namespace dsv3::balance

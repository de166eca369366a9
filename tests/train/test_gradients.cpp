// Finite differences in double precision: every elementary op, then the whole objective
// (main model + MTP + balance loss) on micro configs covering YaRN, groups, q_lora null,
// softmax scores and MTP depth 2.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "reference/model/rope.h"
#include "reference/train/objective.h"
#include "reference/train/ops.h"
#include "tests/train/micro.h"

namespace dsv3::train {
namespace {

using Md = MatT<double>;
using Vd = VecT<double>;

Md randn(int64_t r, int64_t c, std::mt19937& g, double s = 1.0) {
  std::normal_distribution<double> n(0.0, s);
  Md m(r, c);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  return m;
}

// Central difference of f at every entry of x, against the analytic gradient.
template <class F, class X>
void expect_fd(X& x, const X& analytic, F&& f, double tol = 1e-7) {
  const double h = 1e-6;
  for (int64_t i = 0; i < x.size(); ++i) {
    const double keep = x.data()[i];
    x.data()[i] = keep + h;
    const double up = f();
    x.data()[i] = keep - h;
    const double down = f();
    x.data()[i] = keep;
    const double fd = (up - down) / (2 * h);
    ASSERT_NEAR(analytic.data()[i], fd, tol * std::max(1.0, std::abs(fd))) << "entry " << i;
  }
}

TEST(OpGradients, Linear) {
  std::mt19937 g(1);
  Md x = randn(5, 7, g), w = randn(4, 7, g), r = randn(5, 4, g);
  auto f = [&] { return linear_fwd(x, w).cwiseProduct(r).sum(); };
  Md dx = Md::Zero(5, 7), dw = Md::Zero(4, 7);
  linear_bwd(x, w, r, &dx, dw);
  expect_fd(x, dx, f);
  expect_fd(w, dw, f);
  Md dx2 = Md::Zero(5, 7), dw2 = Md::Zero(4, 7);
  linear_bwd_reference(x, w, r, dx2, dw2);
  EXPECT_LT((dx - dx2).norm(), 1e-12);
  EXPECT_LT((dw - dw2).norm(), 1e-12);
}

TEST(OpGradients, RmsNorm) {
  std::mt19937 g(2);
  Md x = randn(4, 9, g), r = randn(4, 9, g);
  Vd w = Vd::Ones(9) + 0.3 * Vd::Random(9);
  auto f = [&] {
    RmsCache<double> c;
    return rms_norm_fwd(x, w, 1e-6, c).cwiseProduct(r).sum();
  };
  RmsCache<double> c;
  rms_norm_fwd(x, w, 1e-6, c);
  Md dx = Md::Zero(4, 9);
  Vd dw = Vd::Zero(9);
  rms_norm_bwd(x, w, c, r, dx, dw);
  expect_fd(x, dx, f);
  expect_fd(w, dw, f);
}

TEST(OpGradients, Swiglu) {
  std::mt19937 g(3);
  Md x = randn(6, 5, g), w1 = randn(7, 5, g), w3 = randn(7, 5, g), w2 = randn(5, 7, g),
     r = randn(6, 5, g);
  auto f = [&] {
    SwigluCache<double> c;
    return swiglu_fwd(x, w1, w3, w2, c).cwiseProduct(r).sum();
  };
  SwigluCache<double> c;
  swiglu_fwd(x, w1, w3, w2, c);
  Md dx = Md::Zero(6, 5), d1 = Md::Zero(7, 5), d3 = Md::Zero(7, 5), d2 = Md::Zero(5, 7);
  swiglu_bwd(x, w1, w3, w2, c, r, dx, d1, d3, d2);
  expect_fd(x, dx, f);
  expect_fd(w1, d1, f);
  expect_fd(w3, d3, f);
  expect_fd(w2, d2, f);
}

TEST(OpGradients, RopeBackwardIsTheTransposeWithYarn) {
  model::Config c = testing::micro_config();
  model::RopeTable rope = model::make_rope_table(c);
  ASSERT_NE(rope.attention_factor, 1.0f);  // YaRN's scale is part of the rotation
  std::mt19937 g(4);
  const int64_t H = 3, dn = 2, dr = c.qk_rope_head_dim, stride = dn + dr;
  Md x = randn(5, H * stride, g), y = randn(5, H * stride, g);
  std::vector<int64_t> pos = {0, 3, 7, 40, 200};
  Md rx = x, rty = y;
  rope_rows(rope, rx, pos, dn, stride, H, false);
  rope_rows(rope, rty, pos, dn, stride, H, true);
  // <R x, y> = <x, R^T y>; the nope columns are untouched.
  EXPECT_NEAR(rx.cwiseProduct(y).sum(), x.cwiseProduct(rty).sum(), 1e-12);
  for (int64_t h = 0; h < H; ++h)
    EXPECT_EQ(rx.middleCols(h * stride, dn), x.middleCols(h * stride, dn));
  // Position 0 rotates by nothing: only the attention factor scales.
  EXPECT_NEAR(rx(0, dn), x(0, dn) * rope.attention_factor, 1e-12);
}

TEST(OpGradients, CausalAttention) {
  std::mt19937 g(5);
  const int64_t n = 6;
  Md q = randn(n, 5, g), k = randn(n, 5, g), v = randn(n, 3, g), r = randn(n, 3, g);
  const double scale = 0.37;
  auto f = [&] {
    Md p;
    return attention_fwd(q, k, v, scale, p).cwiseProduct(r).sum();
  };
  Md p, dq, dk, dv;
  attention_fwd(q, k, v, scale, p);
  attention_bwd(q, k, v, p, scale, r, dq, dk, dv);
  expect_fd(q, dq, f);
  expect_fd(k, dk, f);
  expect_fd(v, dv, f);
  Md dq2, dk2, dv2;
  attention_bwd_reference(q, k, v, p, scale, r, dq2, dk2, dv2);
  EXPECT_LT((dq - dq2).norm(), 1e-12);
  EXPECT_LT((dk - dk2).norm(), 1e-12);
  EXPECT_LT((dv - dv2).norm(), 1e-12);
  // Causality: the last key and value reach only the last query.
  EXPECT_NEAR(p(0, 0), 1.0, 1e-15);
}

TEST(OpGradients, CrossEntropy) {
  std::mt19937 g(6);
  Md z = randn(4, 7, g);
  std::vector<int32_t> y = {3, -1, 0, 6};  // -1: no target at this row
  auto f = [&] { return cross_entropy<double>(z, y, 1.0, nullptr); };
  Md dz;
  cross_entropy<double>(z, y, 1.0, &dz);
  expect_fd(z, dz, f);
  EXPECT_EQ(dz.row(1).norm(), 0.0);
}

// ---- The whole objective ------------------------------------------------------------------

struct Case {
  const char* name;
  testing::MicroOptions micro;
  BalanceMode balance;
};

class ModelGradient : public ::testing::TestWithParam<Case> {};

TEST_P(ModelGradient, MatchesFiniteDifferencesForEveryTensor) {
  const Case& cs = GetParam();
  model::Config c = testing::micro_config(cs.micro);
  model::RopeTable rope = model::make_rope_table(c);
  auto wd = model::cast_weights<double>(c, testing::micro_weights(c, 7));
  Batch batch = testing::random_batch(c, 2, 9, 11);
  Objective obj;
  obj.mtp_lambda = 0.3;
  obj.balance_alpha = 0.1;  // large, so that the balance-loss gradient is tested too
  obj.balance = cs.balance;
  auto grad = zeros_like(c, wd);
  LossParts lp = loss_and_grad(c, rope, wd, batch, obj, &grad);
  ASSERT_EQ(static_cast<int>(lp.mtp.size()), cs.micro.mtp);
  EXPECT_GT(lp.balance, 0.0);

  std::vector<std::pair<std::string, std::pair<double*, const double*>>> entries;
  std::vector<std::pair<std::string, std::pair<double*, int64_t>>> tensors;
  std::vector<const double*> gptr;
  model::visit_model(c, wd, [&](const std::string& name, auto& t) {
    tensors.push_back({name, {t.data(), t.size()}});
  });
  model::visit_model(c, grad, [&](const std::string&, auto& t) { gptr.push_back(t.data()); });
  std::mt19937 g(3);
  int checked = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, td] = tensors[i];
    if (name.find("e_score_correction_bias") != std::string::npos) continue;
    // Every entry of small tensors, a sample of large ones; gradients far from zero included.
    std::vector<int64_t> idx;
    if (td.second <= 24) {
      for (int64_t j = 0; j < td.second; ++j) idx.push_back(j);
    } else {
      std::uniform_int_distribution<int64_t> pick(0, td.second - 1);
      for (int j = 0; j < 12; ++j) idx.push_back(pick(g));
    }
    for (int64_t j : idx) {
      double* p = td.first + j;
      const double keep = *p, h = 1e-6;
      *p = keep + h;
      const double up = loss_and_grad<double>(c, rope, wd, batch, obj, nullptr).total;
      *p = keep - h;
      const double down = loss_and_grad<double>(c, rope, wd, batch, obj, nullptr).total;
      *p = keep;
      const double fd = (up - down) / (2 * h), an = gptr[i][j];
      ASSERT_NEAR(an, fd, 2e-7 * std::max(1.0, std::abs(fd))) << name << " [" << j << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

INSTANTIATE_TEST_SUITE_P(
    Micro, ModelGradient,
    ::testing::Values(Case{"YarnGroupsLossFree", {}, BalanceMode::kLossFree},
                      Case{"YarnGroupsAux", {}, BalanceMode::kAux},
                      Case{"NoQLoraMtpDepth2", {.yarn = false, .q_lora = false, .mtp = 2},
                           BalanceMode::kLossFree},
                      Case{"SoftmaxScores", {.softmax = true}, BalanceMode::kAux},
                      Case{"NoBalancing", {}, BalanceMode::kNone}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dsv3::train

// Parity with an independent implementation: tests/data/gen/train_reference.py computes the
// training contract (objective.h) with PyTorch autograd in float64 on tests/data/tiny-yarn-groups
// (YaRN, 4 expert groups, q_lora, one MTP module): the loss parts and every gradient for one
// batch (loss-free and aux routing), and a 3-step AdamW trajectory with clipping and bias updates.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "reference/io/safetensors.h"
#include "reference/model/model.h"
#include "reference/train/objective.h"
#include "reference/train/optimizer.h"

namespace dsv3::train {
namespace {

const std::string kRef = std::string(DSV3_TEST_DATA) + "/train-ref/";
const std::string kModel = std::string(DSV3_TEST_DATA) + "/tiny-yarn-groups";

std::vector<float> tensor(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  if (!t) throw std::runtime_error(f.path() + ": missing " + name);
  return io::to_f32(*t);
}

std::vector<int64_t> ints(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorView* t = f.find(name);
  if (!t || t->dtype != io::DType::kI64) throw std::runtime_error(f.path() + ": no I64 " + name);
  std::vector<int64_t> v(t->numel());
  std::memcpy(v.data(), t->data, 8 * v.size());
  return v;
}

double scalar(const io::SafetensorsFile& f, const std::string& name) {
  return tensor(f, name).at(0);
}

Batch batch(const std::string& name) {
  io::SafetensorsFile f(kRef + "batch.safetensors");
  const io::TensorView* t = f.find(name);
  Batch b{t->shape[0], t->shape[1], std::vector<int32_t>(t->numel())};
  for (int64_t i = 0; i < t->numel(); ++i) {
    int64_t v;
    std::memcpy(&v, t->data + 8 * i, 8);
    b.ids[i] = static_cast<int32_t>(v);
  }
  return b;
}

// Every tensor of `ours` against the reference's `prefix + name`: relative L2 error per tensor.
void expect_tensors_match(const model::Config& c, const model::ModelWeights& ours,
                          const io::SafetensorsFile& ref, const std::string& prefix, double tol) {
  int n = 0;
  model::visit_model(c, ours, [&](const std::string& name, const auto& t) {
    if (name.find("e_score_correction_bias") != std::string::npos) return;
    std::vector<float> r = tensor(ref, prefix + name);
    ASSERT_EQ(static_cast<int64_t>(r.size()), t.size()) << name;
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < t.size(); ++i) {
      diff += std::pow(static_cast<double>(t.data()[i]) - r[i], 2);
      norm += std::pow(static_cast<double>(r[i]), 2);
    }
    EXPECT_LE(std::sqrt(diff), tol * std::sqrt(norm) + 1e-7) << prefix << name;
    ++n;
  });
  EXPECT_EQ(n, 202);  // every trainable tensor of the config (the biases are not parameters)
}

struct GradCase {
  const char* file;
  BalanceMode mode;
  double alpha;
};

class TorchGradParity : public ::testing::TestWithParam<GradCase> {};

TEST_P(TorchGradParity, LossPartsAndEveryGradient) {
  const GradCase& gc = GetParam();
  model::Model m = model::Model::load(kModel);
  const model::Config& c = m.config();
  Objective obj{0.3, gc.alpha, gc.mode};
  model::ModelWeights grad = zeros_like(c, m.weights());
  LossParts lp = loss_and_grad(c, m.rope(), m.weights(), batch("ids"), obj, &grad);
  io::SafetensorsFile ref(kRef + gc.file);
  EXPECT_NEAR(lp.total, scalar(ref, "loss"), 2e-5 * lp.total);
  EXPECT_NEAR(lp.main, scalar(ref, "loss.main"), 2e-5 * lp.main);
  ASSERT_EQ(lp.mtp.size(), 1u);
  EXPECT_NEAR(lp.mtp[0], scalar(ref, "loss.mtp.1"), 2e-5 * lp.mtp[0]);
  EXPECT_NEAR(lp.balance, scalar(ref, "loss.balance"), 2e-5 * lp.balance);
  expect_tensors_match(c, grad, ref, "grad.", 2e-4);
}

INSTANTIATE_TEST_SUITE_P(Reference, TorchGradParity,
                         ::testing::Values(GradCase{"grad.safetensors", BalanceMode::kLossFree, 0.01},
                                           GradCase{"grad_aux.safetensors", BalanceMode::kAux, 0.1}),
                         [](const auto& info) {
                           return std::string(info.param.mode == BalanceMode::kAux ? "Aux"
                                                                                    : "LossFree");
                         });

TEST(TorchTrajectoryParity, ThreeAdamWStepsWithClippingAndBiasUpdates) {
  model::Model m = model::Model::load(kModel);
  const model::Config& c = m.config();
  model::ModelWeights w = m.weights();
  io::SafetensorsFile ref(kRef + "trajectory.safetensors");
  Objective obj{0.3, 0.01, BalanceMode::kLossFree};
  AdamWState st = adamw_init(c, w);
  AdamWOptions ao;  // 0.9, 0.95, 1e-8, wd 0.1
  for (int k = 0; k < 3; ++k) {
    const std::string p = "step" + std::to_string(k) + ".";
    model::ModelWeights grad = zeros_like(c, w);
    LossParts lp = loss_and_grad(c, m.rope(), w, batch("ids.step" + std::to_string(k)), obj, &grad);
    EXPECT_NEAR(lp.total, scalar(ref, p + "loss"), 2e-5 * lp.total) << p;
    EXPECT_NEAR(lp.main, scalar(ref, p + "loss.main"), 2e-5 * lp.main) << p;
    EXPECT_NEAR(lp.mtp[0], scalar(ref, p + "loss.mtp.1"), 2e-5 * lp.mtp[0]) << p;
    EXPECT_NEAR(lp.balance, scalar(ref, p + "loss.balance"), 2e-5 * lp.balance) << p;
    const double norm = clip_grad_norm(c, grad, 1.0);
    EXPECT_NEAR(norm, scalar(ref, p + "grad_norm"), 1e-4 * norm) << p;
    adamw_step(c, w, grad, st, 1e-3, ao);
    update_biases(c, w, lp, 1e-3);
    ASSERT_EQ(lp.moe_layers, (std::vector<int>{1, 2, 3}));
    for (size_t l = 0; l < lp.moe_layers.size(); ++l) {
      const std::string layer = std::to_string(lp.moe_layers[l]);
      EXPECT_EQ(lp.expert_counts[l], ints(ref, p + "counts." + layer)) << p << layer;
      std::vector<float> bias = tensor(ref, p + "bias." + layer);
      const VecT<float>& b = *correction_bias(c, w, lp.moe_layers[l]);
      for (size_t e = 0; e < bias.size(); ++e) EXPECT_NEAR(b[e], bias[e], 1e-6) << p << layer;
    }
  }
  expect_tensors_match(c, w, ref, "param.", 1e-5);
}

}  // namespace
}  // namespace dsv3::train

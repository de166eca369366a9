// The model in FP8: which layers go through the hook, the weight cache, stored FP8 checkpoint
// weights, and the logit comparison report.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "reference/fp8/analysis.h"
#include "reference/fp8/linear.h"
#include "reference/io/safetensors.h"
#include "reference/model/model.h"

namespace dsv3::fp8 {
namespace {

namespace fs = std::filesystem;

const std::string kTinyDir = std::string(DSV3_TEST_DATA) + "/hf-tiny";
const std::vector<int32_t> kIds = {0, 17, 250, 3, 99, 402, 7, 64};

bool fp8_eligible(const std::string& name) {
  for (const char* s : {"q_a_proj.weight", "q_b_proj.weight", "q_proj.weight",
                        "kv_a_proj_with_mqa.weight", "kv_b_proj.weight", "o_proj.weight",
                        "gate_proj.weight", "up_proj.weight", "down_proj.weight"}) {
    if (name.ends_with(s)) return true;
  }
  return false;
}

TEST(Fp8Linear, HookSeesExactlyTheLayersDeepSeekRunsInFp8) {
  const model::Model m = model::Model::load(kTinyDir);
  std::set<std::string> names;
  std::mutex mu;
  model::ForwardOptions opt;
  opt.linear = [&](const Mat& x, const Mat& w, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    names.insert(name);
    return Mat(x * w.transpose());
  };
  model::KVCache cache = m.new_cache(model::AttnImpl::kNaive);
  m.forward(kIds, cache, opt);
  ASSERT_FALSE(names.empty());
  for (const std::string& n : names) EXPECT_TRUE(fp8_eligible(n)) << n;
  EXPECT_TRUE(names.count("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(names.count("model.layers.1.self_attn.kv_b_proj.weight"));
  EXPECT_TRUE(names.count("model.layers.2.mlp.shared_experts.down_proj.weight"));
  for (const std::string& n : names) {
    EXPECT_EQ(n.find("embed"), std::string::npos);
    EXPECT_EQ(n.find("lm_head"), std::string::npos);
    EXPECT_FALSE(n.ends_with("mlp.gate.weight"));  // the router stays in float32
  }
}

TEST(Fp8Linear, QuantizesEachWeightOnceAndMatchesTheGemm) {
  Fp8Linear lin;
  const Mat w = random_matrix(96, 256, Dist::kRandn, 1) * 0.02f;
  const Mat x = random_matrix(5, 256, Dist::kRandn, 2);
  const Mat y1 = lin(x, w, "a.weight");
  const Mat y2 = lin(x, w, "a.weight");
  EXPECT_EQ(lin.weights_quantized(), 1);
  EXPECT_EQ(lin.calls(), 2);
  EXPECT_EQ(y1, y2);
  const Mat want = gemm(quantize_activations(x), quantize_weights(w), {Accum::kH100, 128});
  EXPECT_EQ(y1, want);
  const double rel = (y1 - x * w.transpose()).norm() / (x * w.transpose()).norm();
  EXPECT_GT(rel, 1e-3);  // E4M3 quantization error is a few percent
  EXPECT_LT(rel, 0.08);
  EXPECT_THROW(Fp8Linear(forward_options("h100", 0)).operator()(x, w.leftCols(100), "b"),
               std::invalid_argument);
}

TEST(Fp8Linear, ForwardOptionsFollowTheCommandLine) {
  EXPECT_EQ(forward_options("h100", 128).scaling, Scaling::kTile);
  EXPECT_EQ(forward_options("h100", 0).scaling, Scaling::kTensor);  // no promotion: per tensor
  EXPECT_EQ(forward_options("fp32", 0).gemm.accum, Accum::kFp32);
  EXPECT_THROW(forward_options("h100", 64 + 32), std::invalid_argument);
  EXPECT_THROW(forward_options("h100", 256), std::invalid_argument);
  EXPECT_THROW(forward_options("bf16", 128), std::invalid_argument);
}

// Writes hf-tiny with every FP8-eligible weight stored as F8_E4M3 codes + weight_scale_inv.
std::string write_fp8_checkpoint() {
  const fs::path dir = fs::temp_directory_path() / fmt::format("dsv3-fp8-ckpt-{}", ::getpid());
  fs::create_directories(dir);
  fs::copy_file(kTinyDir + "/config.json", dir / "config.json",
                fs::copy_options::overwrite_existing);
  const io::Checkpoint src(kTinyDir);
  io::SafetensorsWriter w;
  for (const std::string& name : src.names()) {
    const io::TensorView& t = src.get(name);
    if (fp8_eligible(name) && t.shape.size() == 2) {
      const QMatrix q = quantize_weights(src.matrix(name));
      w.add(name, io::DType::kF8E4M3, t.shape, q.codes.data(), q.codes.size());
      Mat s = Eigen::Map<const Mat>(q.scales.data(), q.scale_rows(), q.scale_cols());
      w.add(name.substr(0, name.size() - 7) + ".weight_scale_inv", s);
    } else {
      w.add(name, t.dtype, t.shape, t.data, t.nbytes);
    }
  }
  w.write((dir / "model.safetensors").string());
  return dir.string();
}

TEST(Fp8Linear, UsesTheCheckpointsOwnFp8Weights) {
  const std::string dir = write_fp8_checkpoint();
  const auto ckpt = std::make_shared<io::Checkpoint>(dir);
  const model::Model m = model::Model::load(dir);  // dequantized on load
  auto lin = std::make_shared<Fp8Linear>(Fp8LinearOptions{}, ckpt);
  const std::string name = "model.layers.1.self_attn.q_b_proj.weight";
  const auto q = lin->weight(m.weights().layers[1].attn.q_b_proj, name);
  const io::TensorView& t = ckpt->get(name);
  ASSERT_EQ(q->codes.size(), t.nbytes);
  EXPECT_TRUE(std::equal(q->codes.begin(), q->codes.end(), t.data));
  EXPECT_EQ(q->scales, io::to_f32(ckpt->get("model.layers.1.self_attn.q_b_proj.weight_scale_inv")));
  EXPECT_EQ(lin->weights_from_checkpoint(), 1);

  model::ForwardOptions opt;
  opt.linear = [lin](const Mat& x, const Mat& w, const std::string& n) { return (*lin)(x, w, n); };
  model::KVCache c8 = m.new_cache(model::AttnImpl::kNaive),
                 c32 = m.new_cache(model::AttnImpl::kNaive);
  const Mat l8 = m.forward(kIds, c8, opt), l32 = m.forward(kIds, c32);
  EXPECT_GT(lin->weights_from_checkpoint(), 20);
  EXPECT_EQ(lin->weights_quantized(), 0);
  const PrecisionRow r = compare_logits(l32, l8);
  EXPECT_GT(r.rel_error, 0.0);
  EXPECT_LT(r.rel_error, 0.2);
  // The string-level factory the command line uses finds the same checkpoint.
  opt.linear = make_forward_hook("h100", 128, dir);
  model::KVCache c8b = m.new_cache(model::AttnImpl::kNaive);
  EXPECT_EQ(m.forward(kIds, c8b, opt), l8);
  fs::remove_all(dir);
}

TEST(Fp8Linear, ComparisonReportCoversEveryAccumulationChoice) {
  const model::Model m = model::Model::load(kTinyDir);
  const auto rows = compare_precisions(m, kIds, default_precision_modes());
  ASSERT_EQ(rows.size(), 5u);
  for (const PrecisionRow& r : rows) {
    EXPECT_EQ(r.positions, static_cast<int64_t>(kIds.size()));
    EXPECT_GT(r.rel_error, 0.0) << r.label;
    EXPECT_LT(r.rel_error, 0.2) << r.label;
    EXPECT_GE(r.top1_agreement, 0.5) << r.label;
    EXPECT_GE(r.kl_mean, 0.0);
    EXPECT_GE(r.kl_max, r.kl_mean);
  }
  for (const PrecisionRow& r : rows) {
    EXPECT_GE(r.route_flips, 0.0) << r.label;
    EXPECT_LE(r.route_flips, 1.0) << r.label;
    EXPECT_GT(r.rel_error_se, 0.0) << r.label;  // a sample of positions has an error bar
    EXPECT_LT(r.rel_error_se, r.rel_error) << r.label;
    if (r.route_flips == 0.0) {
      EXPECT_NEAR(r.rel_error_same_routing, r.rel_error, 1e-9) << r.label;
    }
  }
  EXPECT_EQ(rows[0].accum_rel_error, 0.0);                      // exact against itself
  EXPECT_LT(rows[1].accum_rel_error, 1e-5);                     // fp32 accumulation is nearly exact
  EXPECT_GT(rows[3].accum_rel_error, rows[1].accum_rel_error);  // the tensor core truncates
  EXPECT_NEAR(rows[1].rel_error, rows[0].rel_error, 1e-3);
}

TEST(Fp8Linear, CompareLogitsMetrics) {
  Mat a(2, 3), b(2, 3);
  a << 1, 2, 3, 3, 2, 1;
  b << 1, 2, 3, 1, 2, 3;
  const PrecisionRow r = compare_logits(a, b);
  EXPECT_EQ(r.top1_agreement, 0.5);
  EXPECT_NEAR(r.rel_error, std::sqrt(8.0) / std::sqrt(28.0), 1e-12);
  EXPECT_NEAR(r.kl_mean, r.kl_max / 2, 1e-12);
  EXPECT_GT(r.kl_max, 0.5);
}

}  // namespace
}  // namespace dsv3::fp8

namespace dsv3::fp8 {
namespace {

// The absorbed form in FP8 mode is the naive form with kv_b_proj run in float32 on its
// dequantized FP8 weight: the same products, reassociated (W^{UK} folded into the query, W^{UV}
// applied after the attention sum).
TEST(Fp8Absorbed, FoldsTheDequantizedWeightExactlyAsNaiveWouldMultiplyIt) {
  const model::Model m = model::Model::load(kTinyDir);
  const std::vector<int32_t> ids = {0, 17, 250, 3, 99, 402, 7, 64};
  LinearHook fp8 = make_forward_hook("h100", 128);
  auto deq = make_absorbed_weight_hook("h100", 128);
  model::ForwardOptions naive_opt;
  naive_opt.linear = [&](const Mat& x, const Mat& w, const std::string& n) {
    if (n.find("kv_b_proj") != std::string::npos) return model::matmul_wt(x, deq(w, n));
    return fp8(x, w, n);
  };
  model::ForwardOptions abs_opt;
  abs_opt.linear = fp8;
  abs_opt.absorbed_weight = deq;
  auto cn = m.new_cache(model::AttnImpl::kNaive), ca = m.new_cache(model::AttnImpl::kAbsorbed);
  const Mat ln = m.forward(ids, cn, naive_opt), la = m.forward(ids, ca, abs_opt);
  EXPECT_LT((la - ln).norm() / ln.norm(), 1e-5f);
  // Without the hook the absorbed form would fold the float32 weight: a different result.
  model::ForwardOptions float_fold;
  float_fold.linear = fp8;
  auto cf = m.new_cache(model::AttnImpl::kAbsorbed);
  const Mat lf = m.forward(ids, cf, float_fold);
  EXPECT_GT((lf - la).norm() / la.norm(), 1e-5f);
  // The hook returns the FP8 blocks' values: every element is an E4M3 code times its scale.
  const Mat& w = m.weights().layers[1].attn.kv_b_proj;
  const Mat d = deq(w, "model.layers.1.self_attn.kv_b_proj.weight");
  ASSERT_EQ(d.rows(), w.rows());
  EXPECT_GT((d - w).norm(), 0.0f);
  EXPECT_LT((d - w).norm() / w.norm(), 0.05f);
}

}  // namespace
}  // namespace dsv3::fp8

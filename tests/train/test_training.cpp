// Training runs end to end: the tiny model memorises a repeating text, loss-free balancing
// bounds MaxVio where no balancing does not, resume equals an uninterrupted run, the same seed
// gives the same losses, fixed-batch files, and the trainer's refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "reference/train/trainer.h"
#include "tests/support/sanitizer.h"
#include "tests/support/temp_dir.h"

namespace dsv3::train {
namespace {
namespace fs = std::filesystem;
using test_support::full_or_sanitized;
using test_support::kUnderSanitizer;

fs::path temp_dir(const std::string& name) {
  return test_support::fresh_temp_dir("dsv3_train_", name);
}

// A 'tokens' stream file from text, byte tokenizer (as `dsv3 tokenize` writes it).
std::string tokens_file(const fs::path& dir, const std::string& text) {
  std::vector<int32_t> ids = io::ByteTokenizer().encode(text);
  io::SafetensorsWriter w;
  w.add("tokens", io::DType::kI32, {static_cast<int64_t>(ids.size())}, ids.data(), ids.size() * 4);
  const std::string path = (dir / "tokens.safetensors").string();
  w.write(path);
  return path;
}

std::string word_salad(int words, uint32_t seed) {
  const char* vocab[] = {"the",  "of",  "and", "to", "in", "is",   "that", "for",  "it", "as",
                         "with", "was", "on",  "be", "by", "this", "are",  "from", "or", "an"};
  std::mt19937 g(seed);
  std::string s;
  for (int i = 0; i < words; ++i) s += std::string(vocab[g() % 20]) + " ";
  return s;
}

TrainOptions base(const fs::path& dir, const std::string& data) {
  TrainOptions o;
  o.model = "tiny-random";
  o.data = data;
  o.save = (dir / "run").string();
  o.batch = 4;
  o.seq_len = 64;
  o.lr = 3e-3;
  o.schedule = Schedule::kConstant;
  o.eval_batches = 1;
  return o;
}

std::vector<StepRecord> train(Trainer& t, int64_t steps) {
  std::vector<StepRecord> out;
  for (int64_t i = 0; i < steps && !t.done(); ++i) out.push_back(t.train_step());
  return out;
}

TEST(Training, TinyModelMemorisesARepeatingText) {
  fs::path dir = temp_dir("memorise");
  std::string text;
  for (int i = 0; i < 40; ++i) text += "DeepSeek-V3 routes each token to 8 of 256 experts. ";
  TrainOptions o = base(dir, tokens_file(dir, text));
  o.steps = full_or_sanitized(80, 12);  // sanitizers: every code path, not the memorisation
  Trainer t(o);
  auto r = train(t, o.steps);
  ASSERT_EQ(r.size(), static_cast<size_t>(o.steps));
  EXPECT_GT(r.front().loss.main, 4.0);  // ~ln(320) at the start
  ASSERT_TRUE(t.validate().has_value());
  if (kUnderSanitizer) {
    EXPECT_LT(r.back().loss.main, r.front().loss.main - 1.0);  // 12 steps: learning has begun
  } else {
    EXPECT_LT(r.back().loss.main, 0.2);    // memorised
    EXPECT_LT(r.back().loss.mtp[0], 0.5);  // the MTP module learns the text two tokens ahead
    EXPECT_LT(*t.validate(), 0.3);         // the held-out 5% is the same sentence
  }
  fs::remove_all(dir);
}

double mean_max_vio(const std::vector<StepRecord>& r, size_t last) {
  double s = 0;
  for (size_t i = r.size() - last; i < r.size(); ++i)
    s += std::accumulate(r[i].max_vio.begin(), r[i].max_vio.end(), 0.0) / r[i].max_vio.size();
  return s / static_cast<double>(last);
}

TEST(Training, LossFreeBalancingBoundsMaxVioWhereNoBalancingDoesNot) {
  fs::path dir = temp_dir("maxvio");
  TrainOptions o = base(dir, tokens_file(dir, word_salad(20000, 3)));
  o.steps = full_or_sanitized(150, 12);  // sanitizers: every code path, not the bound
  o.batch = 8;
  o.bias_gamma = 0.01;  // fast enough to balance within a short run
  o.objective.balance = BalanceMode::kNone;
  Trainer none(o);
  auto rn = train(none, o.steps);
  o.objective.balance = BalanceMode::kLossFree;
  o.save = (dir / "run2").string();
  Trainer lf(o);
  auto rl = train(lf, o.steps);
  // The bias moved only in loss-free mode.
  EXPECT_EQ(none.weights().layers[1].moe->e_score_correction_bias.norm(), 0.0f);
  EXPECT_GT(lf.weights().layers[1].moe->e_score_correction_bias.norm(), 0.0f);
  if (!kUnderSanitizer) {
    const double vio_none = mean_max_vio(rn, 50), vio_lf = mean_max_vio(rl, 50);
    EXPECT_GT(vio_none, 1.0);
    EXPECT_LT(vio_lf, 0.6 * vio_none);
    // Balancing costs nothing in loss here (the paper's claim at scale).
    EXPECT_LT(rl.back().loss.main, rn.back().loss.main + 0.1);
  }
  fs::remove_all(dir);
}

TEST(Training, ResumeEqualsUninterruptedTraining) {
  fs::path dir = temp_dir("resume");
  TrainOptions o = base(dir, tokens_file(dir, word_salad(3000, 4)));
  o.steps = 6;
  o.schedule = Schedule::kCosine;
  Trainer whole(o);
  auto rw = train(whole, 6);

  o.save = (dir / "split").string();
  std::vector<StepRecord> rs;
  {
    Trainer first(o);
    rs = train(first, 3);
    first.save_checkpoint();
  }
  o.resume = true;
  Trainer second(o);
  EXPECT_EQ(second.step(), 3);
  auto more = train(second, 10);  // stops at --steps
  ASSERT_EQ(more.size(), 3u);
  rs.insert(rs.end(), more.begin(), more.end());
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(rs[i].loss.total, rw[i].loss.total) << "step " << i + 1;
    EXPECT_EQ(rs[i].lr, rw[i].lr);
  }
  bool same = true;
  std::vector<const float*> a;
  model::visit_model(whole.config(), whole.weights(),
                     [&](const std::string&, const auto& t) { a.push_back(t.data()); });
  size_t i = 0;
  model::visit_model(second.config(), second.weights(), [&](const std::string&, const auto& t) {
    same = same && std::equal(t.data(), t.data() + t.size(), a[i++]);
  });
  EXPECT_TRUE(same) << "weights (biases included) differ after resuming";
  fs::remove_all(dir);
}

TEST(Training, SameSeedSameLosses) {
  fs::path dir = temp_dir("seed");
  TrainOptions o = base(dir, tokens_file(dir, word_salad(3000, 5)));
  o.steps = 4;
  Trainer a(o), b(o);
  auto ra = train(a, 4), rb = train(b, 4);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(ra[i].loss.total, rb[i].loss.total);
  o.seed = 1;  // another seed: another initialisation and other windows
  Trainer c(o);
  EXPECT_NE(train(c, 1)[0].loss.total, ra[0].loss.total);
  fs::remove_all(dir);
}

TEST(Training, FixedBatchFilesTrainOnExactlyThoseBatches) {
  fs::path dir = temp_dir("fixed");
  io::SafetensorsWriter w;
  std::vector<int64_t> ids(2 * 10);
  for (int k = 0; k < 2; ++k) {
    std::iota(ids.begin(), ids.end(), 3 + k);
    w.add_i64("ids.step" + std::to_string(k), {2, 10}, ids);
  }
  const std::string path = (dir / "batches.safetensors").string();
  w.write(path);
  BatchSource src(path, 320);
  EXPECT_TRUE(src.fixed());
  Batch b1 = src.train_batch(1, 99, 99, 0);  // B and T come from the file
  EXPECT_EQ(b1.B, 2);
  EXPECT_EQ(b1.T, 10);
  EXPECT_EQ(b1.ids[0], 4);
  EXPECT_FALSE(src.val_batch(0, 2, 10).has_value());
  try {
    src.train_batch(2, 2, 10, 0);
    FAIL() << "step 2 has no batch";
  } catch (const TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("ids.step2"), std::string::npos) << e.what();
  }
  TrainOptions o = base(dir, path);
  o.steps = 3;  // one more step than the file has
  Trainer t(o);
  train(t, 2);
  EXPECT_THROW(t.train_step(), TrainError);
  fs::remove_all(dir);
}

TEST(Training, RefusesBadData) {
  fs::path dir = temp_dir("bad");
  io::SafetensorsWriter w;
  std::vector<int64_t> ids = {1, 2, 400};
  w.add_i64("tokens", {3}, ids);
  const std::string path = (dir / "t.safetensors").string();
  w.write(path);
  try {
    BatchSource src(path, 320);
    FAIL();
  } catch (const TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("token id 400"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BatchSource((dir / "missing.safetensors").string(), 320), TrainError);
  TrainOptions o = base(dir, path);
  o.resume = true;
  o.save = (dir / "nothing-here").string();
  EXPECT_THROW(Trainer{o}, TrainError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train

namespace dsv3::train {
namespace {

// A stream of D domains; domain d holds `sizes[d]` copies of token 10 + d.
std::string domain_file(const fs::path& path, const std::vector<int64_t>& sizes,
                        const std::string& names) {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets{0};
  for (size_t d = 0; d < sizes.size(); ++d) {
    ids.insert(ids.end(), sizes[d], static_cast<int32_t>(10 + d));
    offsets.push_back(static_cast<int64_t>(ids.size()));
  }
  io::SafetensorsWriter w;
  w.add("tokens", io::DType::kI32, {static_cast<int64_t>(ids.size())}, ids.data(), ids.size() * 4);
  w.add_i64("domain_offsets", {static_cast<int64_t>(offsets.size())}, offsets);
  if (!names.empty()) w.set_metadata("domains", names);
  w.write(path.string());
  return path.string();
}

// The domain of a window whose tokens all agree; -1 when it mixes domains.
int window_domain(const Batch& b, int64_t s) {
  const int32_t first = b.ids[s * b.T];
  for (int64_t t = 0; t < b.T; ++t)
    if (b.ids[s * b.T + t] != first) return -1;
  return first - 10;
}

TEST(BatchSourceDomains, WindowsNeverCrossADomainAndDomainsAreSampledBySize) {
  const fs::path dir = temp_dir("domains");
  // Sizes 300 and 900 tokens, T = 50: after holding out 5% of each, 285 - 49 = 236 and
  // 855 - 49 = 806 valid starts, so domain 1 should get 806 / 1042 = 77% of the windows.
  BatchSource src(domain_file(dir / "d.safetensors", {300, 900}, "prose,code"), 320);
  ASSERT_EQ(src.domains(), (std::vector<std::string>{"prose", "code"}));
  EXPECT_EQ(src.train_tokens(), 285 + 855);
  EXPECT_EQ(src.val_tokens(), 15 + 45);
  int count[2] = {0, 0};
  for (int64_t step = 0; step < 200; ++step) {
    Batch b = src.train_batch(step, 8, 50, 7);
    for (int64_t s = 0; s < 8; ++s) {
      const int d = window_domain(b, s);
      ASSERT_GE(d, 0) << "step " << step << " row " << s << " crosses a domain boundary";
      ++count[d];
    }
  }
  EXPECT_NEAR(count[1] / 1600.0, 806.0 / 1042.0, 0.04);
  // Validation windows of T = 15 cover both held-out parts, each window inside one domain.
  std::optional<Batch> v = src.val_batch(0, 4, 15);
  ASSERT_TRUE(v);
  std::set<int> seen;
  for (int64_t s = 0; s < 4; ++s) seen.insert(window_domain(*v, s));
  EXPECT_EQ(seen, (std::set<int>{0, 1}));
  std::optional<Batch> v1 = src.val_batch_of(1, 0, 2, 15);
  ASSERT_TRUE(v1);
  EXPECT_EQ(window_domain(*v1, 0), 1);
  EXPECT_FALSE(src.val_batch_of(0, 0, 2, 16));  // the held-out prose has only 15 tokens
}

TEST(BatchSourceDomains, AHeldOutFileReplacesTheFivePercentSplit) {
  const fs::path dir = temp_dir("domains_val");
  BatchSource src(domain_file(dir / "train.safetensors", {100, 100}, "a,b"), 320,
                  domain_file(dir / "val.safetensors", {40, 60}, "a,b"));
  EXPECT_EQ(src.train_tokens(), 200);
  EXPECT_EQ(src.val_tokens(), 100);
  std::optional<Batch> v = src.val_batch_of(1, 0, 1, 60);
  ASSERT_TRUE(v);
  EXPECT_EQ(window_domain(*v, 0), 1);
}

TEST(BatchSourceDomains, RefusesInconsistentDomainTables) {
  const fs::path dir = temp_dir("domains_bad");
  auto write = [&](const std::vector<int64_t>& offsets, const std::string& names) {
    std::vector<int32_t> ids(100, 5);
    io::SafetensorsWriter w;
    w.add("tokens", io::DType::kI32, {100}, ids.data(), 400);
    w.add_i64("domain_offsets", {static_cast<int64_t>(offsets.size())}, offsets);
    if (!names.empty()) w.set_metadata("domains", names);
    const std::string p = (dir / "bad.safetensors").string();
    w.write(p);
    return p;
  };
  auto message = [&](const std::string& path) -> std::string {
    try {
      BatchSource s(path, 320);
    } catch (const TrainError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message(write({0, 50, 90}, "")).find("end at 100"), std::string::npos);
  EXPECT_NE(message(write({0, 60, 50, 100}, "")).find("decreases"), std::string::npos);
  EXPECT_NE(message(write({0, 50, 100}, "a,b,c")).find("names 3 domains"), std::string::npos);
  // Windows longer than every domain: one line naming the longest domain.
  BatchSource ok(write({0, 50, 100}, "a,b"), 320);
  try {
    ok.train_batch(0, 1, 60, 0);
    FAIL() << "expected TrainError";
  } catch (const TrainError& e) {
    EXPECT_NE(std::string(e.what()).find("the longest has 48"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3::train

namespace dsv3::train {
namespace {

TEST(TrainOptions, V3PhasesSwitchLambdaAndGammaAtThePapersFractions) {
  TrainOptions o;
  o.steps = 1000;
  o.objective.mtp_lambda = 0.3;
  o.objective.balance = BalanceMode::kLossFree;
  o.bias_gamma = 1e-3;
  // Off: constant.
  EXPECT_EQ(o.mtp_lambda_at(999), 0.3);
  EXPECT_EQ(o.bias_gamma_at(999), 1e-3);
  o.v3_phases = true;
  EXPECT_EQ(o.mtp_lambda_at(675), 0.3);  // 10T of 14.8T tokens = 67.6%
  EXPECT_DOUBLE_EQ(o.mtp_lambda_at(676), 0.1);
  EXPECT_EQ(o.bias_gamma_at(965), 1e-3);  // 14.3T of 14.8T = 96.6%
  EXPECT_EQ(o.bias_gamma_at(966), 0.0);
  o.objective.balance = BalanceMode::kAux;  // no bias updates outside loss-free mode
  EXPECT_EQ(o.bias_gamma_at(0), 0.0);
}

}  // namespace
}  // namespace dsv3::train

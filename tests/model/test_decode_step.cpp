// The decode step's fast forms give the bits of their plain forms: the attention softmax with
// its max and divisions in vector lanes, and a decode step split over two threads (attention
// heads, experts, the head's rows) against the same step on one.
#include <gtest/gtest.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "reference/model/compact_linear.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"

namespace dsv3::model {
namespace {

// The plain form: the loops mla ran before softmax_row, one element at a time.
void softmax_row_plain(float* z, int64_t n, float c) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t s = 0; s < n; ++s) m = std::max(m, z[s] * c);
  float sum = 0;
  for (int64_t s = 0; s < n; ++s) sum += z[s] = std::exp(z[s] * c - m);
  for (int64_t s = 0; s < n; ++s) z[s] /= sum;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
}

// Lengths around the vector width, ties for the max, zeros of both signs (the max's sign of zero
// must not show), large and tiny scores.
TEST(DecodeStep, SoftmaxRowIsThePlainLoops) {
  Rng rng(3);
  for (int64_t n : {1, 2, 7, 8, 9, 16, 17, 31, 64, 257, 1000})
    for (int kind = 0; kind < 4; ++kind) {
      std::vector<float> z(n);
      for (int64_t s = 0; s < n; ++s) {
        const float u = static_cast<float>(rng.uniform()) * 2 - 1;
        switch (kind) {
          case 0:
            z[s] = 40 * u;
            break;
          case 1:  // a few distinct values: the max is tied
            z[s] = std::round(3 * u);
            break;
          case 2:  // zeros of both signs and nothing above them
            z[s] = u < 0 ? -0.0f : (u < 0.5f ? 0.0f : -u);
            break;
          default:
            z[s] = std::ldexp(u, -100 + static_cast<int>(rng.next() % 200));
        }
      }
      std::vector<float> fast = z, plain = z;
      softmax_row(fast.data(), n, 0.125f);
      softmax_row_plain(plain.data(), n, 0.125f);
      EXPECT_TRUE(same_bits(fast, plain)) << "n=" << n << " kind=" << kind;
    }
}

// The float32 decode product (matmul_wt for one input row, through matvec_f32) gives the bits of
// Eigen's dot of the rows, w.row(o).dot(x.row(0)) as the few-row path sums them: widths with and
// without a tail of n % 8, fewer than 8 columns, and a matrix large enough for matmul_wt's
// threaded path.
TEST(DecodeStep, Float32MatvecIsEigensDot) {
  Rng rng(11);
  for (int64_t in : {1, 5, 8, 15, 16, 64, 130, 1031})
    for (int64_t out : {1, 3, 130, 2051}) {
      Mat w(out, in), x(1, in), y(1, out), plain(1, out);
      for (Eigen::Index i = 0; i < w.size(); ++i) w.data()[i] = float(rng.uniform()) - 0.5f;
      for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = float(rng.uniform()) - 0.5f;
      matvec_f32(w.data(), out, in, x.data(), y.data());
      for (int64_t o = 0; o < out; ++o) plain(0, o) = w.row(o).dot(x.row(0));
      EXPECT_EQ(std::memcmp(y.data(), plain.data(), 4 * out), 0) << out << "x" << in;
      const Mat mm = matmul_wt(x, w);
      EXPECT_EQ(std::memcmp(mm.data(), plain.data(), 4 * out), 0) << out << "x" << in;
    }
}

// A decode step gives the same bits on any team: its products are one-row dot products and
// Eigen GEMVs, each output summed by one thread in a fixed order. The tiny model at 240 tokens of
// context splits its attention heads, its MoE layers' experts and its head's rows over the team.
TEST(DecodeStep, TwoThreadsGiveTheBitsOfOne) {
  const Model m = Model::load("tiny");
  std::vector<int32_t> prompt(240);
  Rng rng(9);
  for (auto& id : prompt) id = static_cast<int32_t>(rng.next() % m.config().vocab_size);
  const int saved = omp_get_max_threads();
  for (AttnImpl impl : {AttnImpl::kAbsorbed, AttnImpl::kNaive}) {
    omp_set_num_threads(1);
    KVCache prefilled = m.new_cache(impl);
    m.forward(prompt, prefilled);
    std::vector<Mat> logits[2];
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      KVCache cache = prefilled;
      for (int32_t id : {5, 17, 300, 2047}) {
        const int32_t one[1] = {id};
        logits[threads - 1].push_back(m.forward(one, cache));
      }
    }
    for (size_t step = 0; step < logits[0].size(); ++step) {
      const Mat& a = logits[0][step];
      const Mat& b = logits[1][step];
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), 4 * a.size()), 0)
          << to_string(impl) << " step " << step;
    }
  }
  omp_set_num_threads(saved);
}

// ForwardOptions::linear is called on the calling thread, in the model's order, even where a
// decode step would split the experts between threads: hooks record what they see without a
// lock (the explorer's FP8 panel; the fuzzer found its vector grown from two threads at once).
TEST(DecodeStep, LinearHookRunsOnTheCallingThreadInModelOrder) {
  const Model m = Model::load("tiny");
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  KVCache cache = m.new_cache(AttnImpl::kNaive);
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  m.forward(prompt, cache);
  std::vector<std::string> names;
  std::vector<std::thread::id> threads;
  ForwardOptions opt;
  opt.linear = [&](const Mat& x, const Mat& w, const std::string& name) {
    names.push_back(name);  // no lock: must not be called from two threads at once
    threads.push_back(std::this_thread::get_id());
    return matmul_wt(x, w);
  };
  const int32_t one[1] = {7};
  m.forward(one, cache, opt);
  omp_set_num_threads(saved);
  ASSERT_FALSE(names.empty());
  for (const std::thread::id& id : threads) EXPECT_EQ(id, std::this_thread::get_id());
  // Within a layer the routed experts come in ascending order.
  int last_layer = -1, last_expert = -1;
  for (const std::string& n : names) {
    int layer = -1, expert = -1;
    if (std::sscanf(n.c_str(), "model.layers.%d.mlp.experts.%d.", &layer, &expert) != 2) continue;
    if (layer == last_layer) {
      EXPECT_GE(expert, last_expert) << n;
    }
    last_layer = layer;
    last_expert = expert;
  }
}

}  // namespace
}  // namespace dsv3::model

#include "reference/model/speculative.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "reference/model/mtp.h"

namespace dsv3::model {

namespace {

std::span<const float> row_span(const Mat& m, Eigen::Index r) {
  return {m.row(r).data(), static_cast<size_t>(m.cols())};
}

// Plain softmax at temperature 1 (what "the model's probability of a token" means in reports).
std::vector<double> softmax(std::span<const float> logits) {
  std::vector<double> p(logits.size());
  const double mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp(logits[i] - mx);
  for (double& v : p) v /= z;
  return p;
}

// Inverse-CDF draw from a distribution that sums to 1 (up to rounding).
int32_t draw(const std::vector<double>& p, Rng& rng) {
  const double u = rng.uniform();
  double acc = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    acc += p[i];
    if (u < acc) return static_cast<int32_t>(i);
  }
  for (size_t i = p.size(); i-- > 0;)
    if (p[i] > 0) return static_cast<int32_t>(i);
  return 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Drafting with the MTP chain.

MtpDrafter::MtpDrafter(const Model& m, AttnImpl impl) : m_(m), impl_(impl) {
  if (mtp_modules(m) == 0)
    throw std::invalid_argument(fmt::format(
        "model {} has no MTP module (num_nextn_predict_layers = 0 or none in the checkpoint)",
        m.config().name));
}

std::vector<DraftToken> MtpDrafter::propose(std::span<const int32_t> committed,
                                            const Eigen::Ref<const Mat>& main_hidden, int depth) {
  const int64_t n = static_cast<int64_t>(committed.size()) - 1;  // committed = x_0..x_n
  const int64_t d = m_.config().hidden_size;
  if (n < 1 || main_hidden.rows() != n || main_hidden.cols() != d)
    throw std::invalid_argument(fmt::format(
        "MtpDrafter::propose: {} committed tokens need [{}, {}] hidden states, got [{}, {}]", n + 1,
        n, d, main_hidden.rows(), main_hidden.cols()));
  while (static_cast<int>(depths_.size()) < depth)
    depths_.push_back(Depth{KVCache(m_.config(), impl_, /*num_layers=*/1), {}, Mat(0, d), 0});

  std::vector<DraftToken> drafts;
  int64_t below_valid = n;  // h^0_j (main model) is final for every j < n
  for (int k = 1; k <= depth; ++k) {
    Depth& s = depths_[k - 1];
    // Keep the prefix of positions fed committed tokens whose h^{k-1} is itself still valid.
    int64_t L = std::min(s.cache.length(), below_valid);
    int64_t j = std::min(s.confirmed, L);
    while (j < L && j + k <= n && s.fed[j] == committed[j + k]) ++j;
    L = j;
    s.confirmed = L;
    s.cache.truncate(L);  // rollback: rows past L are overwritten below
    s.fed.resize(L);
    below_valid = L;  // depth k+1 may keep only what was computed from unchanged h^k rows

    // Run depth k at positions L .. n-1; position j is fed t_{j+k}: committed while j+k <= n,
    // otherwise the draft of depth j+k-n, which is shallower than k and already chosen.
    const int64_t r = n - L;
    if (r > 0) {
      std::vector<int32_t> tok(r);
      for (int64_t i = 0; i < r; ++i) {
        const int64_t idx = L + i + k;
        tok[i] = idx <= n ? committed[idx] : drafts[idx - n - 1].token;
      }
      Mat prev =
          k == 1 ? Mat(main_hidden.middleRows(L, r)) : Mat(depths_[k - 2].hidden.middleRows(L, r));
      Mat x = mtp_project(m_, k, tok, prev);  // eq. (21)
      s.cache.reserve_more(r);
      Mat h = m_.block(mtp_weights(m_, k).block, mtp_layer_index(m_, k), x, s.cache, 0, {},
                       0);  // eq. (22)
      s.cache.advance(r);
      if (s.hidden.rows() < n)
        s.hidden.conservativeResize(std::max<int64_t>(n, 2 * s.hidden.rows()), d);
      s.hidden.middleRows(L, r) = h;
      s.fed.insert(s.fed.end(), tok.begin(), tok.end());
      positions_computed_ += r;
    }
    // eq. (23) at the last position n-1: P^k of x_{n+k}. The draft is its argmax.
    Mat logits = mtp_head(m_, k, s.hidden.middleRows(n - 1, 1));
    std::vector<double> p = softmax(row_span(logits, 0));
    DraftToken t;
    t.token = argmax(row_span(logits, 0));
    if (override_token) {
      t.token = override_token(k, n + k, t.token);
      if (t.token < 0 || t.token >= m_.config().vocab_size)
        throw std::out_of_range(
            fmt::format("override_token returned {} outside the vocabulary", t.token));
    }
    t.draft_prob = p[t.token];
    drafts.push_back(t);
  }
  return drafts;
}

// ---------------------------------------------------------------------------------------------
// Verification.

VerifyOutcome verify_drafts(std::span<const int32_t> drafts, const Mat& target_logits,
                            const SamplingParams& sampling, Rng& rng) {
  const int D = static_cast<int>(drafts.size());
  if (target_logits.rows() != D + 1)
    throw std::invalid_argument(fmt::format("verify_drafts: {} drafts need {} target rows, got {}",
                                            D, D + 1, target_logits.rows()));
  const bool greedy = sampling.temperature <= 0;
  VerifyOutcome v;
  for (int i = 0; i < D; ++i) {
    const int32_t draft = drafts[i];
    std::span<const float> row = row_span(target_logits, i);
    if (greedy) {
      // Accept while the draft is what plain greedy decoding would have chosen.
      const int32_t best = argmax(row);
      v.target_prob.push_back(softmax(row)[draft]);
      if (draft != best) {
        v.emitted.push_back(best);
        return v;
      }
    } else {
      // Point-mass draft: accept with probability min(1, p(d) / 1) = p(d) ...
      std::vector<double> p = sampling_distribution(row, sampling);
      v.target_prob.push_back(p[draft]);
      if (!(rng.uniform() < p[draft])) {
        // ... else draw from the residual norm(max(p - delta_d, 0)) = p without d, renormalised.
        const double rest = 1.0 - p[draft];
        p[draft] = 0;
        for (double& x : p) x /= rest;
        v.emitted.push_back(draw(p, rng));
        return v;
      }
    }
    v.emitted.push_back(draft);
    ++v.accepted;
  }
  // Every draft accepted: the last row is a free sample of the token after them (the bonus).
  v.emitted.push_back(sample(row_span(target_logits, D), sampling, rng));
  return v;
}

// ---------------------------------------------------------------------------------------------
// Statistics.

int64_t SpecStats::proposed_total() const {
  int64_t s = 0;
  for (int64_t v : proposed) s += v;
  return s;
}

int64_t SpecStats::accepted_total() const {
  int64_t s = 0;
  for (int64_t v : accepted) s += v;
  return s;
}

double SpecStats::acceptance_rate() const {
  const int64_t p = proposed_total();
  return p ? static_cast<double>(accepted_total()) / static_cast<double>(p) : 0.0;
}

double SpecStats::acceptance_rate(int k) const {
  if (k < 1 || k > static_cast<int>(proposed.size()) || proposed[k - 1] == 0) return 0.0;
  return static_cast<double>(accepted[k - 1]) / static_cast<double>(proposed[k - 1]);
}

double SpecStats::tokens_per_step() const {
  return steps ? static_cast<double>(step_tokens) / static_cast<double>(steps) : 0.0;
}

// ---------------------------------------------------------------------------------------------
// The decoding loop.

SpeculativeDecoder::SpeculativeDecoder(const Model& m, std::vector<int32_t> prompt,
                                       SpeculativeOptions opt, Drafter* drafter)
    : m_(m),
      opt_(opt),
      drafter_(drafter),
      cache_(m.new_cache(opt.attn)),
      rng_(opt.sampling.seed),
      prompt_(std::move(prompt)) {
  if (prompt_.empty())
    throw std::invalid_argument("speculative decoding needs at least one prompt token");
  if (opt_.draft_depth < 0) throw std::invalid_argument("the draft depth must not be negative");
  if (opt_.max_new_tokens < 0) throw std::invalid_argument("max_new_tokens must not be negative");
  if (!drafter_ && opt_.draft_depth > 0) {
    own_drafter_ = std::make_unique<MtpDrafter>(m_, opt_.attn);
    drafter_ = own_drafter_.get();
  }
  committed_ = prompt_;
  hidden_ = Mat(0, m_.config().hidden_size);
  done_ = opt_.max_new_tokens == 0;
}

void SpeculativeDecoder::append_hidden(const Mat& rows) {
  const int64_t need = hidden_rows_ + rows.rows();
  if (hidden_.rows() < need)
    hidden_.conservativeResize(std::max<int64_t>(need, 2 * hidden_.rows()),
                               m_.config().hidden_size);
  hidden_.middleRows(hidden_rows_, rows.rows()) = rows;
  hidden_rows_ = need;
}

void SpeculativeDecoder::emit(SpecStep& s, std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    output_.push_back(t);
    committed_.push_back(t);
    s.emitted.push_back(t);
    if (t == opt_.stop_token || static_cast<int>(output_.size()) >= opt_.max_new_tokens) {
      done_ = true;
      return;
    }
  }
}

int32_t stand_in_draft(int k, int64_t index, int32_t drafted, std::span<const int32_t> truth,
                       double p) {
  // splitmix64's finaliser over (index, k): a uniform u in [0, 1) per position and depth.
  uint64_t h = static_cast<uint64_t>(index) * 0x9e3779b97f4a7c15ull +
               static_cast<uint64_t>(k) * 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 29;
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  if (u < p && index >= 0 && index < static_cast<int64_t>(truth.size()))
    return truth[static_cast<size_t>(index)];
  return drafted;
}

const SpecStep& SpeculativeDecoder::step() {
  if (done_) throw std::logic_error("SpeculativeDecoder::step after the last token");
  const auto t0 = std::chrono::steady_clock::now();
  SpecStep s;
  std::vector<Mat> hid;
  ForwardOptions fo;
  fo.hidden = &hid;
  if (!started_) {
    started_ = true;
    s.prefill = true;
    s.position = static_cast<int64_t>(prompt_.size()) - 1;
    s.last_token = prompt_.back();
    Mat logits = m_.forward(prompt_, cache_, fo);
    append_hidden(hid.back());
    const int32_t x = sample(row_span(logits, logits.rows() - 1), opt_.sampling, rng_);
    emit(s, std::span<const int32_t>(&x, 1));
  } else {
    const int64_t n = static_cast<int64_t>(committed_.size()) - 1;
    s.position = n;
    s.last_token = committed_.back();
    // Never draft past the token budget or the position limit: a step emits at most D + 1.
    const int64_t remaining = opt_.max_new_tokens - static_cast<int64_t>(output_.size());
    int64_t D = std::min<int64_t>(
        {opt_.draft_depth, remaining - 1, m_.config().max_position_embeddings - 1 - n});
    D = std::max<int64_t>(D, 0);
    if (D > 0) {
      s.drafts = drafter_->propose(committed_, hidden_.topRows(n), static_cast<int>(D));
      if (static_cast<int64_t>(s.drafts.size()) != D)
        throw std::logic_error(
            fmt::format("drafter returned {} drafts, asked for {}", s.drafts.size(), D));
    }
    std::vector<int32_t> ids{committed_.back()};
    for (const DraftToken& t : s.drafts) ids.push_back(t.token);
    Mat logits = m_.forward(ids, cache_, fo);  // all D+1 positions in one pass
    VerifyOutcome v =
        verify_drafts(std::span<const int32_t>(ids).subspan(1), logits, opt_.sampling, rng_);
    for (size_t i = 0; i < s.drafts.size(); ++i) {
      s.drafts[i].accepted = static_cast<int>(i) < v.accepted;
      s.drafts[i].target_prob = i < v.target_prob.size() ? v.target_prob[i] : 0.0;
    }
    s.accepted = v.accepted;
    s.bonus = D > 0 && v.accepted == D;
    // Roll back: keep x_n and the accepted drafts, forget the rejected tail's keys and values.
    cache_.truncate(n + v.accepted + 1);
    append_hidden(hid.back().topRows(v.accepted + 1));
    ++stats_.steps;
    stats_.step_tokens += v.accepted + 1;
    if (static_cast<int64_t>(stats_.proposed.size()) < D) {
      stats_.proposed.resize(D, 0);
      stats_.accepted.resize(D, 0);
    }
    for (int64_t k = 0; k < D; ++k) {
      ++stats_.proposed[k];
      if (k < v.accepted) ++stats_.accepted[k];
    }
    emit(s, v.emitted);
  }
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  history_.push_back(std::move(s));
  return history_.back();
}

SpeculativeResult speculative_generate(const Model& m, const std::vector<int32_t>& prompt,
                                       const SpeculativeOptions& opt, Drafter* drafter) {
  SpeculativeDecoder dec(m, prompt, opt, drafter);
  while (!dec.done()) dec.step();
  return {dec.output(), dec.stats(), dec.history()};
}

}  // namespace dsv3::model

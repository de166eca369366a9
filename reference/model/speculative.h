// Lossless speculative decoding with the MTP modules as the draft model (V3 §5.4.3).
//
// One step, with committed tokens x_0..x_n (the main model has cached x_0..x_{n-1} and its
// final-normed hidden states h_0..h_{n-1}; x_n was just chosen):
//   1. draft   the MTP chain at position n-1 proposes d_1..d_D (depth k predicts x_{n+k});
//   2. verify  the main model runs [x_n, d_1, .., d_D] at positions n..n+D in ONE forward pass,
//              giving target distributions p_0..p_D (p_i is the distribution of x_{n+i+1}
//              assuming d_1..d_i were right);
//   3. accept  greedy: d_i is accepted while it equals argmax p_{i-1};
//              sampled: d_i is accepted with probability p_{i-1}(d_i); on the first rejection the
//              step emits a token drawn from p_{i-1} with d_i removed (renormalised). The draft is
//              a point mass (q = delta_d), so min(1, p/q) = p(d) and the residual max(p - q, 0)
//              is p without d: P(emit x) = p(x) exactly (Leviathan et al. 2023; vLLM and SGLang
//              verify MTP drafts this way);
//   4. bonus   if all D drafts were accepted, p_D gives one more token for free;
//   5. rollback the main cache keeps positions n..n+a (x_n and the a accepted drafts) and
//              drops the rest (KVCache::truncate, both attention forms); the MTP caches drop
//              every entry whose input token turned out not to be the committed one.
// A step therefore emits a + 1 tokens for one main-model forward.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "reference/model/model.h"
#include "reference/model/sampling.h"

namespace dsv3::model {

struct DraftToken {
  int32_t token = 0;
  double draft_prob = 0;   // the drafter's own probability of the token (MTP softmax)
  double target_prob = 0;  // the main model's probability of it (filled by verification)
  bool accepted = false;
};

// Proposes the tokens that follow the committed ones.
class Drafter {
 public:
  virtual ~Drafter() = default;
  // committed = x_0..x_n (prompt and generated so far), main_hidden = h_0..h_{n-1} [n, d]
  // (final-normed). Returns `depth` drafts: element k-1 predicts x_{n+k}.
  virtual std::vector<DraftToken> propose(std::span<const int32_t> committed,
                                          const Eigen::Ref<const Mat>& main_hidden, int depth) = 0;
};

// The MTP chain as drafter (moe_mtp §6.1): depth k at position j takes h^{k-1}_j and the token
// t_{j+k}, which for j + k > n is the draft of a shallower depth. Each depth keeps its own KV
// cache, the tokens it was fed and its outputs h^k; an entry stays valid exactly as long as
// its input token is the committed one (and the depth below it is valid), so after a
// verification step each depth recomputes only its unconfirmed tail.
class MtpDrafter : public Drafter {
 public:
  MtpDrafter(const Model& m, AttnImpl impl);
  std::vector<DraftToken> propose(std::span<const int32_t> committed,
                                  const Eigen::Ref<const Mat>& main_hidden, int depth) override;

  // Optional: replaces each drafted token, (depth k, index n+k of the token it predicts, the
  // MTP module's argmax) -> token. The MTP modules still run, so the cost is real; benchmarks
  // and tests use it to dial in an acceptance rate.
  std::function<int32_t(int k, int64_t index, int32_t drafted)> override_token;

  int64_t positions_computed() const { return positions_computed_; }  // MTP block rows run

 private:
  struct Depth {
    KVCache cache;
    std::vector<int32_t> fed;  // the token t_{j+k} fed at each cached position j
    Mat hidden;                // h^k rows [capacity, d]; rows < cache.length() are live
    int64_t confirmed = 0;     // positions known to have been fed committed tokens
  };
  const Model& m_;
  AttnImpl impl_;
  std::vector<Depth> depths_;
  int64_t positions_computed_ = 0;
};

// A stand-in for a trained MTP module, for MtpDrafter::override_token: the draft at depth k
// that predicts token `index` becomes truth[index] (the main model's own token there) with
// probability p, else the module's draft stays. A hash of (index, k) decides, so a run is
// reproducible and the same position gets the same verdict however often it is drafted.
int32_t stand_in_draft(int k, int64_t index, int32_t drafted, std::span<const int32_t> truth,
                       double p);

// Verifies drafts d_1..d_D against target_logits [D+1, V] (row i: the main model after x_n and
// d_1..d_i). Greedy when sampling.temperature == 0; sampled otherwise (temperature, top-p).
struct VerifyOutcome {
  int accepted = 0;                 // a: the accepted prefix length
  std::vector<int32_t> emitted;     // d_1..d_a, then the correction or bonus token (a + 1 tokens)
  std::vector<double> target_prob;  // p_{i-1}(d_i) for each draft examined (at most a + 1)
};
VerifyOutcome verify_drafts(std::span<const int32_t> drafts, const Mat& target_logits,
                            const SamplingParams& sampling, Rng& rng);

struct SpeculativeOptions {
  int max_new_tokens = 16;
  int draft_depth = 1;  // D: drafts per step (depths beyond the trained modules reuse them)
  SamplingParams sampling;
  AttnImpl attn = AttnImpl::kAbsorbed;
  int64_t stop_token = -1;  // e.g. EOS; -1 never stops early
};

// One call of SpeculativeDecoder::step: the prefill (first token) or one verification.
struct SpecStep {
  bool prefill = false;
  int64_t position = 0;            // n: the position x_n is verified at
  int32_t last_token = 0;          // x_n
  std::vector<DraftToken> drafts;  // d_1..d_D with their fate
  int accepted = 0;                // a
  bool bonus = false;              // all drafts accepted: the last emitted token is the bonus
  std::vector<int32_t> emitted;    // tokens appended to the output by this step
};

struct SpecStats {
  int64_t steps = 0;              // verification forwards (prefill excluded)
  int64_t step_tokens = 0;        // tokens those steps emitted
  std::vector<int64_t> proposed;  // [D] drafts proposed at depth k
  std::vector<int64_t> accepted;  // [D] drafts accepted at depth k
  double seconds = 0;             // wall time of prefill and steps
  int64_t proposed_total() const;
  int64_t accepted_total() const;
  double acceptance_rate() const;       // accepted / proposed over all depths
  double acceptance_rate(int k) const;  // depth k (1-based): accepted_k / proposed_k
  double tokens_per_step() const;       // (a + 1) averaged over verification steps
};

// Step-by-step speculative decoding (the explorer drives this; speculative_generate loops it).
class SpeculativeDecoder {
 public:
  // drafter == nullptr uses the model's MTP modules (MtpDrafter); the decoder keeps a pointer.
  SpeculativeDecoder(const Model& m, std::vector<int32_t> prompt, SpeculativeOptions opt,
                     Drafter* drafter = nullptr);

  bool done() const { return done_; }
  // Runs the prefill (first call) or one draft-verify step; returns its record.
  const SpecStep& step();

  const std::vector<int32_t>& output() const { return output_; }        // generated ids
  const std::vector<int32_t>& committed() const { return committed_; }  // prompt + output
  const std::vector<SpecStep>& history() const { return history_; }
  const SpecStats& stats() const { return stats_; }
  const SpeculativeOptions& options() const { return opt_; }
  const KVCache& cache() const { return cache_; }

 private:
  void emit(SpecStep& s, std::span<const int32_t> tokens);
  void append_hidden(const Mat& rows);

  const Model& m_;
  SpeculativeOptions opt_;
  std::unique_ptr<MtpDrafter> own_drafter_;
  Drafter* drafter_;
  KVCache cache_;
  Rng rng_;
  std::vector<int32_t> prompt_, committed_, output_;
  Mat hidden_;  // h_0..h_{n-1} in rows [0, hidden_rows_), capacity grows
  int64_t hidden_rows_ = 0;
  std::vector<SpecStep> history_;
  SpecStats stats_;
  bool started_ = false;
  bool done_ = false;
};

struct SpeculativeResult {
  std::vector<int32_t> ids;  // generated ids (prompt excluded), as generate() returns
  SpecStats stats;
  std::vector<SpecStep> steps;
};
SpeculativeResult speculative_generate(const Model& m, const std::vector<int32_t>& prompt,
                                       const SpeculativeOptions& opt, Drafter* drafter = nullptr);

}  // namespace dsv3::model

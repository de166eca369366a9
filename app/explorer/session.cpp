#include "app/explorer/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "reference/model/generate.h"
#include "reference/model/mtp.h"
#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "visualizers/explorer_style.h"
#include "visualizers/fp8_panel.h"
#include "visualizers/mtp_panel.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::app {

Session::Session(SessionOptions opt) : attn_(opt.attn), seed_(opt.seed), weights_(opt.weights) {
  prompt_ = opt.prompt;
  load(opt.model);
}

Session::~Session() = default;

void Session::load(const std::string& name_or_dir) {
  adopt(std::make_unique<model::Model>(model::Model::load(name_or_dir, seed_, weights_)),
        name_or_dir);
  trained_step_ = -1;
}

void Session::adopt(std::unique_ptr<model::Model> m, const std::string& name) {
  if (m->tokenizer().vocab_size() > m->config().vocab_size)
    throw std::invalid_argument(
        fmt::format("{}: its tokenizer ({}) has more tokens than the config's vocab_size {}", name,
                    m->tokenizer().describe(), m->config().vocab_size));
  mtp_reset();  // the decoder points at the old model
  model_ = std::move(m);
  tokenizer_ = model_->shared_tokenizer();
  model_name_ = name;
  // Balancing starts off; γ = 0.01 moves a random-weight model's biases visibly within tens of
  // tokens (the paper's 0.001 is for batches of millions of tokens).
  balancer_ = std::make_unique<balance::ModelBalancer>(config(), 1e-2f);
  balancer_->set_enabled(false);
  bias_updates_ = 0;
  loaded_bias_.clear();
  for (int l = 0; l < config().num_hidden_layers; ++l) loaded_bias_.push_back(bias(l));
  layer_ =
      static_cast<int>(std::min(config().first_k_dense_replace, config().num_hidden_layers - 1));
  expert_ = -1;
  set_prompt(prompt_);
}

void Session::set_prompt(const std::string& text) {
  auto ids = tokenizer_->encode(text);
  reset_tokens(ids, static_cast<int>(ids.size()));
  prompt_ = text;
}

void Session::set_ids(std::vector<int32_t> ids) {
  if (ids.empty()) throw std::invalid_argument("ids: the list is empty");
  for (int32_t id : ids)
    if (id < 0 || id >= config().vocab_size)
      throw std::out_of_range(
          fmt::format("ids: {} is outside the vocabulary [0, {})", id, config().vocab_size));
  int n = static_cast<int>(ids.size());
  reset_tokens(std::move(ids), n);
  prompt_ = text();
}

void Session::reset_tokens(std::vector<int32_t> ids, int prompt_len) {
  if (static_cast<int64_t>(ids.size()) > config().max_position_embeddings)
    throw std::out_of_range(fmt::format("the prompt has {} tokens; the model takes at most {}",
                                        ids.size(), config().max_position_embeddings));
  tokens_ = std::move(ids);
  prompt_len_ = prompt_len;
  cache_ = std::make_unique<model::KVCache>(model_->new_cache(attn_));
  trace_ = model::Trace{};
  trace_.top_k = top_k_;
  rng_ = model::Rng(sampling_.seed);
  last_logits_.clear();
  cursor_ = -1;
  if (tokens_.empty()) return;
  // Prefill: the whole prompt in one forward pass, one trace per position.
  model::ForwardOptions fo;
  fo.trace = &trace_;
  Mat logits = model_->forward(tokens_, *cache_, fo);  // [T, V]
  auto last = logits.row(logits.rows() - 1);
  last_logits_.assign(last.data(), last.data() + last.size());
  cursor_ = computed() - 1;
  ++generation_;
  after_tokens(0);  // the prefill is one batch for the bias update
}

void Session::after_tokens(size_t first) {
  ++generation_;
  if (replaying_ || !balancing() || first >= trace_.tokens.size()) return;
  balancer_->observe(trace_, first);
  balancer_->step(*model_);
  ++bias_updates_;
}

void Session::compute_next() {
  int pos = computed();
  if (pos >= config().max_position_embeddings)
    throw std::out_of_range(fmt::format("position {} is past max_position_embeddings", pos));
  if (pos >= static_cast<int>(tokens_.size())) {
    tokens_.push_back(sampling_.temperature > 0 ? model::sample(last_logits_, sampling_, rng_)
                                                : model::argmax(last_logits_));
  }
  model::ForwardOptions fo;
  fo.trace = &trace_;
  int32_t id = tokens_[pos];
  Mat logits = model_->forward(std::span<const int32_t>(&id, 1), *cache_, fo);  // [1, V]
  last_logits_.assign(logits.data(), logits.data() + logits.cols());
  after_tokens(trace_.tokens.size() - 1);
}

int Session::step(int n, const Progress& given) {
  const Progress& progress = given ? given : progress_hook_;
  int moved = 0;
  for (int i = 0; i < n; ++i) {
    if (cursor_ + 1 >= computed()) compute_next();
    ++cursor_;
    ++moved;
    if (progress && moved < n && !progress(moved, n)) break;
  }
  return moved;
}

int Session::back(int n) {
  int moved = std::min(n, std::max(0, cursor_));
  cursor_ -= moved;
  return moved;
}

void Session::go_to(int position) {
  if (position < 0 || position >= computed())
    throw std::out_of_range(
        fmt::format("position {} is not computed yet (computed: 0..{}); `step` computes more",
                    position, computed() - 1));
  cursor_ = position;
}

int Session::generate(int n, const Progress& given) {
  const Progress& progress = given ? given : progress_hook_;
  cursor_ = computed() - 1;
  int done = 0;
  for (int i = 0; i < n; ++i) {
    compute_next();
    ++cursor_;
    ++done;
    if (progress && done < n && !progress(done, n)) break;
  }
  return done;
}

void Session::set_attn(model::AttnImpl a) {
  if (a == attn_) return;
  attn_ = a;
  int keep = computed(), cur = cursor_;
  std::vector<int32_t> known = tokens_;
  int plen = prompt_len_;
  // Recompute the computed positions in the new form; later known tokens stay pending. The
  // biases are not updated again for tokens they have already seen.
  replaying_ = true;
  try {
    reset_tokens(std::vector<int32_t>(known.begin(), known.begin() + keep), plen);
  } catch (...) {
    replaying_ = false;
    throw;
  }
  replaying_ = false;
  tokens_ = known;
  cursor_ = cur;
}

void Session::set_top_k(int k) {
  if (k < 1 || k > config().vocab_size)
    throw std::out_of_range(fmt::format("top-k must be in 1..{}", config().vocab_size));
  top_k_ = k;
  trace_.top_k = k;
}

void Session::set_layer(int l) {
  if (l < 0 || l >= config().num_hidden_layers)
    throw std::out_of_range(
        fmt::format("layer {} is out of range 0..{}", l, config().num_hidden_layers - 1));
  layer_ = l;
}

void Session::set_expert(int e) {
  if (e < -1 || e >= config().n_routed_experts)
    throw std::out_of_range(
        fmt::format("expert {} is out of range 0..{}", e, config().n_routed_experts - 1));
  expert_ = e;
}

std::vector<float> Session::bias(int layer) const {
  if (layer < 0 || layer >= static_cast<int>(model_->weights().layers.size())) return {};
  const auto& moe = model_->weights().layers[layer].moe;
  if (!moe || moe->e_score_correction_bias.size() == 0) return {};
  const Vec& b = moe->e_score_correction_bias;
  return std::vector<float>(b.data(), b.data() + b.size());
}

const model::Config* Session::real_config() const {
  if (!real_) {
    try {
      real_ = std::make_unique<model::Config>(model::resolve_config("v3-671b"));
      real_->name = "DeepSeek-V3 671B";
    } catch (const std::exception&) {
      return nullptr;  // the shipped configs are missing: the panel leaves the section out
    }
  }
  return real_.get();
}

namespace {

// Every schedule valid for (ranks, micro): its simulation with the figure's unit costs.
std::vector<pipeline::SimResult> simulate_all(int ranks, int micro) {
  std::vector<pipeline::SimResult> out;
  for (pipeline::ScheduleKind k : pipeline::kAllSchedules) {
    if (!pipeline::check_constraints(k, ranks, micro).empty()) continue;
    out.push_back(pipeline::simulate(pipeline::build_schedule(k, ranks, micro), pipeline::Costs{}));
  }
  return out;
}

}  // namespace

viz::Canvas Session::pipeline_canvas(int w, int h) const {
  namespace st = viz::style;
  std::string key = fmt::format("{}/{}/{}/{}/{}/{}/{}", settings_.schedule, settings_.ranks,
                                settings_.micro_batches, w, settings_.pipeline_time,
                                settings_.pipeline_zoom, keys_shown_);
  if (key != pipeline_key_) {
    auto sched =
        pipeline::build_schedule(settings_.schedule, settings_.ranks, settings_.micro_batches);
    pipeline::SimResult r = pipeline::simulate(sched, pipeline::Costs{});
    // One scale for the bubble and memory bars of every schedule on these ranks and
    // micro-batches, so switching schedules (s) shows the difference at a glance.
    std::string scale_key = fmt::format("{}/{}", settings_.ranks, settings_.micro_batches);
    if (scale_key != pipeline_scale_key_) {
      pipeline_bubble_scale_ = 0;
      pipeline_memory_scale_ = 0;
      for (const auto& x : simulate_all(settings_.ranks, settings_.micro_batches)) {
        pipeline_bubble_scale_ = std::max(pipeline_bubble_scale_, x.makespan);
        pipeline_memory_scale_ = std::max(pipeline_memory_scale_, x.max_peak_activations());
      }
      pipeline_scale_key_ = scale_key;
    }
    viz::PipelineTimelineOptions o;
    o.width = std::max(40, w);
    o.bubble_scale = pipeline_bubble_scale_;
    o.memory_scale = pipeline_memory_scale_;
    if (settings_.pipeline_time >= 0) o.cursor = std::min(settings_.pipeline_time, r.makespan);
    o.columns_per_unit = settings_.pipeline_zoom;  // + - on the panel; the window follows o.cursor
    viz::Canvas t = viz::draw_pipeline_timeline(r, o);
    viz::Canvas c(t.width(), t.height() + 3);
    c.blit(t, 0, 0);
    int y = t.height() + 1;
    std::string where =
        o.cursor ? fmt::format("time {:g} of {:g}", *o.cursor, r.makespan) : "no time cursor";
    st::text_clip(
        c, 0, y++,
        keys_shown_
            ? fmt::format(
                  "{} · , . ±1  < > ±10 · + - zoom · s: next schedule (bars share one scale)",
                  where)
            : fmt::format("{} · bars share one scale across schedules", where),
        c.width(), st::kLabel);
    st::text_clip(c, 0, y,
                  "`pipeline SCHED RANKS MICRO --time T` · `dsv3 pipeline compare` (Table 2)",
                  c.width(), st::kDim);
    pipeline_cached_ = std::move(c);
    pipeline_makespan_ = r.makespan;
    pipeline_key_ = key;
  }
  if (h <= 0) return pipeline_cached_;
  viz::Canvas out(pipeline_cached_.width(), h);
  out.blit(pipeline_cached_, 0, 0);
  return out;
}

double Session::pipeline_makespan() const {
  pipeline_canvas(80, 0);
  return pipeline_makespan_;
}

void Session::move_pipeline_time(double dt) {
  double end = pipeline_makespan();
  double t = settings_.pipeline_time < 0 ? 0 : settings_.pipeline_time + dt;
  settings_.pipeline_time = std::clamp(t, 0.0, end);
}

std::string Session::cycle_schedule(int dir) {
  constexpr int n = static_cast<int>(std::size(pipeline::kAllSchedules));
  int at = 0;
  for (int i = 0; i < n; ++i)
    if (pipeline::schedule_id(pipeline::kAllSchedules[i]) == settings_.schedule) at = i;
  for (int k = 1; k <= n; ++k) {
    pipeline::ScheduleKind next = pipeline::kAllSchedules[((at + dir * k) % n + n) % n];
    if (pipeline::check_constraints(next, settings_.ranks, settings_.micro_batches).empty()) {
      settings_.schedule = std::string(pipeline::schedule_id(next));
      return settings_.schedule;
    }
  }
  return settings_.schedule;
}

// ---- live balancing -------------------------------------------------------------------------

void Session::set_balancing(bool on) {
  if (!balancer_ || balancer_->moe_layers().empty())
    throw std::runtime_error(fmt::format("{} has no MoE layer to balance", model_name_));
  balancer_->set_enabled(on);
}

void Session::set_gamma(double g) {
  if (!(g > 0 && g <= 1)) throw std::out_of_range(fmt::format("γ must be in (0, 1]; got {}", g));
  if (balancer_) balancer_->set_gamma(static_cast<float>(g));
}

void Session::reset_biases() {
  auto& layers = model_->mutable_weights().layers;
  for (size_t l = 0; l < layers.size() && l < loaded_bias_.size(); ++l) {
    auto& moe = layers[l].moe;
    if (!moe || loaded_bias_[l].empty()) continue;
    moe->e_score_correction_bias = Eigen::Map<const Vec>(
        loaded_bias_[l].data(), static_cast<Eigen::Index>(loaded_bias_[l].size()));
  }
  bool on = balancing();
  float g = static_cast<float>(gamma());
  balancer_ = std::make_unique<balance::ModelBalancer>(config(), g);
  balancer_->set_enabled(on);
  bias_updates_ = 0;
  ++generation_;
}

std::vector<double> Session::balance_history() const {
  return balancer_ ? balancer_->mean_maxvio_history() : std::vector<double>{};
}

// ---- speculative decoding with the MTP modules ----------------------------------------------

int Session::mtp_modules() const {
  return model::mtp_modules(*model_);
}

int Session::mtp_step() {
  if (mtp_modules() == 0)
    throw std::runtime_error(
        fmt::format("{} has no MTP module (num_nextn_predict_layers = 0): load tiny or tiny-yarn",
                    model_name_));
  if (computed() == 0) throw std::runtime_error("no prompt: set one with `prompt TEXT`");
  const int n = computed();
  if (n + 1 >= config().max_position_embeddings)
    throw std::runtime_error(fmt::format("the context is full ({} positions)", n));
  // Known but uncomputed tokens (after `a`) are dropped: the drafts continue the computed text.
  tokens_.resize(n);
  std::vector<int32_t> committed(tokens_.begin(), tokens_.end());
  const double agree = sampling_.temperature > 0 ? -1 : settings_.mtp_agree;
  bool in_sync = spec_ && !spec_->done() && spec_depth_ == settings_.mtp_depth &&
                 spec_->committed() == committed && spec_agree_ == agree &&
                 spec_->options().sampling.temperature == sampling_.temperature &&
                 spec_->options().attn == attn_;
  if (!in_sync) {
    model::SpeculativeOptions o;
    o.draft_depth = settings_.mtp_depth;
    o.sampling = sampling_;
    o.attn = attn_;
    o.max_new_tokens = static_cast<int>(config().max_position_embeddings) - n - 1;
    drafter_ = std::make_unique<model::MtpDrafter>(*model_, attn_);
    if (agree >= 0) {
      // The draft predicting token `index` becomes the main model's greedy token there with
      // probability `agree`, decided by a hash of (index, depth) so that it is reproducible.
      drafter_->override_token = [this, agree](int k, int64_t index, int32_t drafted) {
        return model::stand_in_draft(k, index, drafted, mtp_truth_, agree);
      };
    }
    spec_ = std::make_unique<model::SpeculativeDecoder>(*model_, committed, o, drafter_.get());
    spec_depth_ = settings_.mtp_depth;
    spec_agree_ = agree;
    spec_start_ = n;
  }
  if (agree >= 0) {
    // The greedy continuation the stand-in drafts from: D + 2 tokens past the committed ones
    // covers the prefill and one verification.
    model::GenerateOptions go;
    go.max_new_tokens = settings_.mtp_depth + 2;
    go.attn = attn_;
    mtp_truth_ = committed;
    auto more = model::generate(*model_, committed, go);
    mtp_truth_.insert(mtp_truth_.end(), more.begin(), more.end());
  }
  std::vector<int32_t> emitted;
  // The decoder's first call is its own prefill (one token); a step shows drafts, so go on.
  do {
    const model::SpecStep& st = spec_->step();
    emitted.insert(emitted.end(), st.emitted.begin(), st.emitted.end());
    if (!st.prefill) break;
  } while (!spec_->done());
  for (int32_t t : emitted) {
    tokens_.push_back(t);
    compute_next();  // the session's own trace of every accepted token
  }
  cursor_ = computed() - 1;
  return static_cast<int>(emitted.size());
}

int Session::mtp_steps(int n, int* tokens, const Progress& given) {
  const Progress& progress = given ? given : progress_hook_;
  int done = 0;
  while (done < n) {
    *tokens += mtp_step();
    ++done;
    if (progress && done < n && !progress(done, n)) break;
  }
  return done;
}

viz::Canvas Session::mtp_canvas(int w, int h) const {
  namespace st = viz::style;
  viz::Canvas c(w, h > 0 ? h : 24);
  int y = 0;
  bool greedy = sampling_.temperature <= 0;
  if (mtp_modules() == 0) {
    st::text_clip(c, 0, 0,
                  fmt::format("{} has no MTP module (num_nextn_predict_layers = 0).", model_name_),
                  w, st::kBold);
    st::text_clip(c, 0, 1, "`load tiny` or `load tiny-yarn` for a model with one.", w, st::kDim);
    return h > 0 ? c : st::crop_rows(c, 2);
  }
  st::text_clip(c, 0, y++,
                fmt::format("Drafts from {} MTP module{} (§5.4.3) · D = {} · {}", mtp_modules(),
                            mtp_modules() > 1 ? "s" : "", settings_.mtp_depth,
                            greedy ? "greedy: accept d = argmax p" : "sampled: accept d w.p. p(d)"),
                w, st::kBold);
  st::text_clip(
      c, 0, y++,
      spec_agree_ >= 0 && spec_
          ? fmt::format("{} · stand-in: a draft is the main model's token w.p. {:g}",
                        keys_shown_ ? "m step · + - D" : "`mtp step` · `mtp depth D`", spec_agree_)
      : keys_shown_ ? "m: draft D tokens, verify them in ONE main-model pass, keep the accepted "
                      "ones · + - change D"
                    : "`mtp step`: draft D tokens, verify in ONE main-model pass, keep the "
                      "accepted · `mtp depth D`",
      w, st::kLabel);
  if (!spec_ || spec_->history().empty()) {
    ++y;
    st::text_clip(c, 0, y++,
                  "No speculative step yet. Press m (or `mtp step`): depth k of the MTP chain "
                  "predicts token n+k from",
                  w, st::kPlain);
    st::text_clip(c, 0, y++,
                  "h^{k-1} and the embedding of token n+k-1 (eq. 21-23); the main model then "
                  "checks every draft at once.",
                  w, st::kPlain);
    st::text_clip(c, 0, y++,
                  "Greedy decoding gives exactly the tokens of plain stepping: only the number of "
                  "main-model passes changes.",
                  w, st::kDim);
    st::text_clip(c, 0, y++,
                  "Random weights draft almost nothing right: `mtp agree 0.8` stands in for a "
                  "trained module.",
                  w, st::kDim);
    return h > 0 ? c : st::crop_rows(c, y);
  }
  st::text_clip(c, 0, y++,
                fmt::format("since position {}: {} verification step{} and the prefill, {} tokens",
                            spec_start_, spec_->stats().steps, spec_->stats().steps == 1 ? "" : "s",
                            spec_->output().size()),
                w, st::kDim);
  viz::MtpPanelOptions o;
  o.draft_depth = spec_depth_;
  o.greedy = spec_->options().sampling.temperature <= 0;
  o.token_text = [this](int32_t id) { return tokenizer_->piece(id); };
  int rest = (h > 0 ? h : 24) - y;
  viz::Canvas p = viz::mtp_panel(spec_->history(), spec_->stats(), o, w, std::max(rest, 4));
  c.blit(p, 0, y);
  return h > 0 ? c : st::crop_rows(c, st::used_rows(c));
}

// ---- FP8: one token through one layer's linears ---------------------------------------------

const std::vector<LinearInput>& Session::fp8_linears() const {
  std::string key = fmt::format("{}/{}/{}", generation_, cursor_, layer_);
  if (key == fp8_key_) return fp8_linears_;
  fp8_linears_.clear();
  fp8_key_ = key;
  if (cursor_ < 0) return fp8_linears_;
  // Recompute: the positions before the cursor as one prefill, then the cursor's token alone,
  // so that every linear layer sees exactly one row, this token's. The naive attention form
  // runs kv_b_proj as a GEMM too (the absorbed form folds it into the attention products).
  model::KVCache cache = model_->new_cache(model::AttnImpl::kNaive);
  if (cursor_ > 0)
    model_->forward(std::span<const int32_t>(tokens_.data(), static_cast<size_t>(cursor_)), cache);
  const std::string prefix = fmt::format("model.layers.{}.", layer_);
  model::ForwardOptions fo;
  fo.linear = [&](const Mat& x, const Mat& w, const std::string& name) {
    if (name.rfind(prefix, 0) == 0 && x.rows() == 1)
      fp8_linears_.push_back(LinearInput{name, x.row(0), w});
    return model::matmul_wt(x, w);
  };
  model_->forward(std::span<const int32_t>(&tokens_[cursor_], 1), cache, fo);
  return fp8_linears_;
}

fp8::LayerFp8View Session::fp8_view() const {
  const auto& lin = fp8_linears();
  if (lin.empty()) throw std::runtime_error("no token computed yet: step first");
  int i = std::clamp(settings_.fp8_linear, 0, static_cast<int>(lin.size()) - 1);
  std::string key = fmt::format("{}/{}", fp8_key_, i);
  if (key != fp8_view_key_) {  // the TUI redraws often; the emulated GEMMs run once
    fp8_view_ = fp8::analyze_layer(lin[i].x, lin[i].w, lin[i].name);
    fp8_view_key_ = key;
  }
  return fp8_view_;
}

viz::Canvas Session::fp8_canvas(int w, int h) const {
  namespace st = viz::style;
  viz::Canvas c(w, h > 0 ? h : 40);
  const auto& lin = fp8_linears();
  if (lin.empty()) {
    st::text_clip(c, 0, 0, "No token computed yet: press → or type `step`.", w, st::kDim);
    return h > 0 ? c : st::crop_rows(c, 1);
  }
  int i = std::clamp(settings_.fp8_linear, 0, static_cast<int>(lin.size()) - 1);
  st::text_clip(
      c, 0, 0,
      fmt::format(
          "Token {} · layer {} · linear {} of {} ({})", cursor_, layer_, i + 1, lin.size(),
          keys_shown_ ? ", . choose · ↑↓ layer · ←→ token" : "`fp8 N` chooses · `goto T` token"),
      w, st::kLabel);
  viz::Canvas p = viz::draw_fp8_panel(fp8_view(), w, std::max((h > 0 ? h : 40) - 1, 12));
  c.blit(p, 0, 1);
  return h > 0 ? c : st::crop_rows(c, st::used_rows(c));
}

std::string Session::weights_note() const {
  return model_->random_weights() ? fmt::format("random weights, seed {}", seed_) : "";
}

viz::ExplorerView Session::view() const {
  viz::ExplorerView v;
  v.config = &config();
  v.model_name = model_name_;
  v.weights_note = weights_note();
  v.attn_impl = model::to_string(attn_);
  v.precision = "fp32";
  for (int32_t id : tokens_) v.token_text.push_back(tokenizer_->piece(id));
  v.token_ids = tokens_;
  v.prompt_len = prompt_len_;
  v.traces = &trace_.tokens;
  v.cursor = cursor_;
  v.layer = layer_;
  v.expert = expert_;
  for (int l = 0; l < config().num_hidden_layers; ++l) v.bias.push_back(bias(l));
  v.describe_token = [this](int32_t id) { return tokenizer_->piece(id); };
  v.balancing = balancing();
  v.keys_shown = keys_shown_;
  v.gamma = gamma();
  v.bias_updates = bias_updates_;
  v.pipeline_panel = [this](int w, int h) { return pipeline_canvas(w, h); };
  v.mtp_panel = [this](int w, int h) { return mtp_canvas(w, h); };
  v.fp8_panel = [this](int w, int h) { return fp8_canvas(w, h); };
  v.train_panel = [this](int w, int h) { return train_canvas(w, h); };
  return v;
}

}  // namespace dsv3::app

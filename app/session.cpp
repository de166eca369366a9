#include "app/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "visualizers/explorer_style.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::app {

Session::Session(SessionOptions opt) : attn_(opt.attn), seed_(opt.seed) {
  prompt_ = opt.prompt;
  load(opt.model);
}

Session::~Session() = default;

void Session::load(const std::string& name_or_dir) {
  auto m = std::make_unique<model::Model>(model::Model::load(name_or_dir, seed_));
  if (m->config().vocab_size < io::ByteTokenizer::kMinVocab)
    throw std::invalid_argument(
        fmt::format("{}: vocab_size {} is below the {} the byte tokenizer needs", name_or_dir,
                    m->config().vocab_size, io::ByteTokenizer::kMinVocab));
  model_ = std::move(m);
  model_name_ = name_or_dir;
  layer_ =
      static_cast<int>(std::min(config().first_k_dense_replace, config().num_hidden_layers - 1));
  expert_ = -1;
  set_prompt(prompt_);
}

void Session::set_prompt(const std::string& text) {
  auto ids = tokenizer_.encode(text);
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
}

int Session::step(int n, const Progress& given) {
  const Progress& progress = given ? given : progress_hook_;
  int moved = 0;
  for (int i = 0; i < n; ++i) {
    if (cursor_ + 1 >= computed()) compute_next();
    ++cursor_;
    ++moved;
    if (n > 1 && progress && !progress(moved, n)) break;
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
    if (n > 1 && progress && !progress(done, n)) break;
  }
  return done;
}

void Session::set_attn(model::AttnImpl a) {
  if (a == attn_) return;
  attn_ = a;
  int keep = computed(), cur = cursor_;
  std::vector<int32_t> known = tokens_;
  int plen = prompt_len_;
  // Recompute the computed positions in the new form; later known tokens stay pending.
  reset_tokens(std::vector<int32_t>(known.begin(), known.begin() + keep), plen);
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

viz::Canvas Session::pipeline_canvas(int w, int h) const {
  std::string key =
      fmt::format("{}/{}/{}/{}", settings_.schedule, settings_.ranks, settings_.micro_batches, w);
  if (key != pipeline_key_) {
    auto sched =
        pipeline::build_schedule(settings_.schedule, settings_.ranks, settings_.micro_batches);
    pipeline::SimResult r = pipeline::simulate(sched, pipeline::Costs{});
    viz::PipelineTimelineOptions o;
    o.width = std::max(40, w);
    viz::Canvas t = viz::draw_pipeline_timeline(r, o);
    viz::Canvas c(t.width(), t.height() + 2);
    c.blit(t, 0, 0);
    viz::style::text_clip(
        c, 0, t.height() + 1,
        "`pipeline SCHEDULE RANKS MICRO` changes it (gpipe, 1f1b, zb1p, dualpipe, dualpipev); "
        "`dsv3 pipeline` for more",
        c.width(), viz::style::kDim);
    pipeline_cached_ = std::move(c);
    pipeline_key_ = key;
  }
  if (h <= 0) return pipeline_cached_;
  viz::Canvas out(pipeline_cached_.width(), h);
  out.blit(pipeline_cached_, 0, 0);
  return out;
}

viz::ExplorerView Session::view() const {
  viz::ExplorerView v;
  v.config = &config();
  v.model_name = model_name_;
  v.attn_impl = model::to_string(attn_);
  v.precision = "fp32";
  for (int32_t id : tokens_) v.token_text.push_back(tokenizer_.piece(id));
  v.token_ids = tokens_;
  v.prompt_len = prompt_len_;
  v.traces = &trace_.tokens;
  v.cursor = cursor_;
  v.layer = layer_;
  v.expert = expert_;
  for (int l = 0; l < config().num_hidden_layers; ++l) v.bias.push_back(bias(l));
  v.describe_token = [this](int32_t id) { return tokenizer_.piece(id); };
  v.pipeline_panel = [this](int w, int h) { return pipeline_canvas(w, h); };
  return v;
}

}  // namespace dsv3::app

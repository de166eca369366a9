#include "reference/train/trainer.h"

#include <fmt/format.h>
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reference/io/safetensors.h"

namespace dsv3::train {
namespace fs = std::filesystem;

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A 1-D or 2-D integer tensor as int32 ids, each checked against the vocabulary.
std::vector<int32_t> read_ids(const io::TensorView& t, int64_t vocab) {
  const int64_t n = t.numel();
  std::vector<int32_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = 0;
    switch (t.dtype) {
      case io::DType::kI64: {
        int64_t x;
        std::memcpy(&x, t.data + 8 * i, 8);
        v = x;
        break;
      }
      case io::DType::kI32: {
        int32_t x;
        std::memcpy(&x, t.data + 4 * i, 4);
        v = x;
        break;
      }
      case io::DType::kU16: {
        uint16_t x;
        std::memcpy(&x, t.data + 2 * i, 2);
        v = x;
        break;
      }
      default:
        throw TrainError(fmt::format("{}: tensor '{}' is {}; token ids must be I64, I32 or U16",
                                     t.file, t.name, io::to_string(t.dtype)));
    }
    if (v < 0 || v >= vocab)
      throw TrainError(
          fmt::format("{}: tensor '{}' holds token id {} at index {}, outside the "
                      "model's vocabulary [0, {})",
                      t.file, t.name, v, i, vocab));
    out[i] = static_cast<int32_t>(v);
  }
  return out;
}

std::string num(double v) {
  return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string("nan");
}

}  // namespace

namespace {

// Reads `tokens` (+ `domain_offsets` and the "domains" metadata) of a stream file.
BatchSource::Stream read_stream(const io::SafetensorsFile& f, int64_t vocab_size) {
  const std::string& path = f.path();
  const io::TensorView* t = f.find("tokens");
  if (!t)
    throw TrainError(fmt::format(
        "{}: no training data: expected ids.step0, ids.step1, ... [B, T] or a 1-D 'tokens'", path));
  if (t->shape.size() != 1)
    throw TrainError(
        fmt::format("{}: 'tokens' must be 1-D, got {} dimensions", path, t->shape.size()));
  BatchSource::Stream s;
  s.tokens = read_ids(*t, vocab_size);
  const int64_t n = static_cast<int64_t>(s.tokens.size());
  s.offsets = {0, n};
  const io::TensorView* o = f.find("domain_offsets");
  if (!o) return s;
  if (o->dtype != io::DType::kI64 || o->shape.size() != 1 || o->shape[0] < 2)
    throw TrainError(fmt::format("{}: 'domain_offsets' must be I64 [D+1] with D >= 1", path));
  s.offsets.assign(o->shape[0], 0);
  std::memcpy(s.offsets.data(), o->data, 8 * s.offsets.size());
  if (s.offsets.front() != 0 || s.offsets.back() != n)
    throw TrainError(
        fmt::format("{}: 'domain_offsets' must start at 0 and end at {} (tokens)", path, n));
  for (size_t d = 0; d + 1 < s.offsets.size(); ++d)
    if (s.offsets[d + 1] < s.offsets[d])
      throw TrainError(fmt::format("{}: 'domain_offsets' decreases at entry {}", path, d + 1));
  const size_t D = s.offsets.size() - 1;
  s.names.clear();
  auto it = f.metadata().find("domains");
  if (it != f.metadata().end()) {
    std::string names = it->second;
    for (size_t a = 0; a <= names.size();) {
      size_t b = names.find(',', a);
      if (b == std::string::npos) b = names.size();
      s.names.push_back(names.substr(a, b - a));
      a = b + 1;
    }
    if (s.names.size() != D)
      throw TrainError(fmt::format("{}: metadata 'domains' names {} domains, domain_offsets has {}",
                                   path, s.names.size(), D));
  } else {
    for (size_t d = 0; d < D; ++d) s.names.push_back(fmt::format("domain{}", d));
  }
  return s;
}

// The window starts of a stream that stay inside one domain: domain d has size - T + 1.
int64_t valid_starts(const BatchSource::Stream& s, size_t d, int64_t T) {
  return std::max<int64_t>(0, s.size(d) - T + 1);
}

// Fixed validation windows: w-th window of domain d is tokens[off_d + w*T, off_d + (w+1)*T);
// listed round-robin over the domains so that every batch mixes them evenly.
std::vector<int64_t> val_window_starts(const BatchSource::Stream& s, int64_t T) {
  std::vector<int64_t> starts;
  int64_t most = 0;
  for (size_t d = 0; d < s.count(); ++d) most = std::max(most, s.size(d) / T);
  for (int64_t w = 0; w < most; ++w)
    for (size_t d = 0; d < s.count(); ++d)
      if (w < s.size(d) / T) starts.push_back(s.offsets[d] + w * T);
  return starts;
}

}  // namespace

BatchSource::BatchSource(const std::string& path, int64_t vocab_size, const std::string& val_path)
    : path_(path) {
  std::unique_ptr<io::SafetensorsFile> f, v;
  try {
    f = std::make_unique<io::SafetensorsFile>(path);
    if (!val_path.empty()) v = std::make_unique<io::SafetensorsFile>(val_path);
  } catch (const std::exception& e) {
    throw TrainError(e.what());
  }
  if (f->find("ids.step0")) {
    fixed_ = true;
    for (int64_t k = 0;; ++k) {
      const io::TensorView* t = f->find(fmt::format("ids.step{}", k));
      if (!t) break;
      if (t->shape.size() != 2 || t->shape[0] < 1 || t->shape[1] < 2)
        throw TrainError(fmt::format("{}: '{}' must be [B, T] with T >= 2", path, t->name));
      steps_.push_back({t->shape[0], t->shape[1], read_ids(*t, vocab_size)});
    }
    return;
  }
  Stream all = read_stream(*f, vocab_size);
  if (v) {
    train_ = std::move(all);
    val_ = read_stream(*v, vocab_size);
    return;
  }
  // No held-out file: the last 5% of every domain is held out.
  train_.names = val_.names = all.names;
  train_.offsets = val_.offsets = {0};
  for (size_t d = 0; d < all.count(); ++d) {
    const int64_t n = all.size(d), n_val = n / 20;
    const auto first = all.tokens.begin() + all.offsets[d];
    train_.tokens.insert(train_.tokens.end(), first, first + (n - n_val));
    val_.tokens.insert(val_.tokens.end(), first + (n - n_val), first + n);
    train_.offsets.push_back(static_cast<int64_t>(train_.tokens.size()));
    val_.offsets.push_back(static_cast<int64_t>(val_.tokens.size()));
  }
}

Batch BatchSource::train_batch(int64_t step, int64_t B, int64_t T, uint64_t seed) const {
  if (fixed_) {
    if (step >= static_cast<int64_t>(steps_.size()))
      throw TrainError(
          fmt::format("{}: has batches for {} steps (ids.step0 .. ids.step{}), "
                      "step {} needs ids.step{}",
                      path_, steps_.size(), steps_.size() - 1, step, step));
    return steps_[step];
  }
  int64_t total = 0;
  for (size_t d = 0; d < train_.count(); ++d) total += valid_starts(train_, d, T);
  if (total == 0)
    throw TrainError(fmt::format(
        "{}: no domain of the training split has --seq-len {} tokens (the longest has {})", path_,
        T, [&] {
          int64_t m = 0;
          for (size_t d = 0; d < train_.count(); ++d) m = std::max(m, train_.size(d));
          return m;
        }()));
  Batch b{B, T, std::vector<int32_t>(B * T)};
  for (int64_t s = 0; s < B; ++s) {
    // Counter-based: the window of (seed, step, row) never depends on earlier steps, so a
    // resumed run reads exactly the batches the uninterrupted run would have read.
    const uint64_t r = splitmix(splitmix(seed ^ 0x7261696eull) ^ splitmix(step * 1024 + s));
    int64_t k = static_cast<int64_t>(r % static_cast<uint64_t>(total));
    size_t d = 0;
    while (k >= valid_starts(train_, d, T)) k -= valid_starts(train_, d++, T);
    const int64_t start = train_.offsets[d] + k;
    std::copy(train_.tokens.begin() + start, train_.tokens.begin() + start + T,
              b.ids.begin() + s * T);
  }
  return b;
}

std::optional<Batch> BatchSource::val_batch(int64_t i, int64_t B, int64_t T) const {
  if (fixed_) return std::nullopt;
  const std::vector<int64_t> starts = val_window_starts(val_, T);
  if (starts.empty()) return std::nullopt;
  Batch b{B, T, std::vector<int32_t>(B * T)};
  const int64_t windows = static_cast<int64_t>(starts.size());
  for (int64_t s = 0; s < B; ++s) {
    const int64_t w = starts[(i * B + s) % windows];  // evenly spread, the same every time
    std::copy(val_.tokens.begin() + w, val_.tokens.begin() + w + T, b.ids.begin() + s * T);
  }
  return b;
}

std::optional<Batch> BatchSource::val_batch_of(int64_t domain, int64_t i, int64_t B,
                                               int64_t T) const {
  if (fixed_ || domain < 0 || domain >= static_cast<int64_t>(val_.count())) return std::nullopt;
  const int64_t windows = val_.size(domain) / T;
  if (windows == 0) return std::nullopt;
  Batch b{B, T, std::vector<int32_t>(B * T)};
  for (int64_t s = 0; s < B; ++s) {
    const int64_t w = val_.offsets[domain] + ((i * B + s) % windows) * T;
    std::copy(val_.tokens.begin() + w, val_.tokens.begin() + w + T, b.ids.begin() + s * T);
  }
  return b;
}

double default_init_std(int64_t hidden_size) {
  return 0.006 * std::sqrt(7168.0 / static_cast<double>(hidden_size));
}

Trainer::Trainer(TrainOptions opt) : opt_(std::move(opt)) {
  // Every step allocates the same large activations: keep freed blocks in the heap for the
  // next step instead of returning them to the kernel (fresh pages cost a fault and a clear
  // each; on the small config that was a fifth of a step).
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (opt_.steps < 1) throw TrainError("--steps must be at least 1");
  if (opt_.lr <= 0 || !std::isfinite(opt_.lr)) throw TrainError("--lr must be a positive number");
  if (opt_.save.empty()) throw TrainError("--save OUTDIR is required");
  const fs::path out(opt_.save);
  std::string source = opt_.model;
  if (opt_.resume) {
    if (!fs::exists(out / "trainer_state.json"))
      throw TrainError(
          fmt::format("--resume: {} has no trainer_state.json to resume from", opt_.save));
    source = opt_.save;
  }
  try {
    config_ = model::resolve_config(source);
    config_.validate();
    rope_ = model::make_rope_table(config_);
    const fs::path dir = model::resolve_model_path(source);
    if (fs::is_directory(dir) && (fs::exists(dir / "model.safetensors") ||
                                  fs::exists(dir / "model.safetensors.index.json"))) {
      weights_ = model::load_weights(config_, dir.string());
    } else {
      const double sd = opt_.init_std > 0 ? opt_.init_std : default_init_std(config_.hidden_size);
      weights_ = model::init_weights(config_, opt_.seed, sd);
    }
  } catch (const TrainError&) {
    throw;
  } catch (const std::exception& e) {
    throw TrainError(e.what());
  }
  if (opt_.data.empty()) throw TrainError("--data FILE is required");
  data_ = std::make_unique<BatchSource>(opt_.data, config_.vocab_size, opt_.val_data);
  opt_state_ = adamw_init(config_, weights_);
  if (opt_.resume) {
    try {
      io::SafetensorsFile f((out / "optimizer.safetensors").string());
      auto load = [&](const char* prefix, model::ModelWeights& into) {
        model::visit_model(config_, into, [&](const std::string& name, auto& t) {
          if (name.find("e_score_correction_bias") != std::string::npos) return;
          const io::TensorView* v = f.find(prefix + name);
          if (!v || v->dtype != io::DType::kF32 || v->numel() != t.size())
            throw TrainError(
                fmt::format("{}: missing or wrong-shaped '{}{}'", f.path(), prefix, name));
          std::memcpy(t.data(), v->data, sizeof(float) * t.size());
        });
      };
      load("m.", opt_state_.m);
      load("v.", opt_state_.v);
      std::ifstream in(out / "trainer_state.json");
      nlohmann::json st = nlohmann::json::parse(in);
      opt_state_.step = st.at("step").get<int64_t>();
    } catch (const TrainError&) {
      throw;
    } catch (const std::exception& e) {
      throw TrainError(fmt::format("--resume {}: {}", opt_.save, e.what()));
    }
    // Drop log lines of steps after the checkpoint (they will be run again).
    const fs::path log = out / "log.jsonl";
    if (fs::exists(log)) {
      std::ifstream in(log);
      std::string line, kept;
      while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= opt_state_.step)
          kept += line + "\n";
      }
      in.close();
      std::ofstream(log, std::ios::trunc) << kept;
    }
  } else {
    fs::create_directories(out);
    std::ofstream(out / "log.jsonl", std::ios::trunc);  // a fresh run starts a fresh log
  }
}

StepRecord Trainer::train_step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepRecord r;
  const int64_t k = opt_state_.step;
  Batch batch = data_->train_batch(k, opt_.batch, opt_.seq_len, opt_.seed);
  if (grad_.layers.empty()) grad_ = zeros_like(config_, weights_);
  model::ModelWeights& grad = grad_;
  zero_grad(config_, grad);
  Objective obj = opt_.objective;
  obj.mtp_lambda = r.mtp_lambda = opt_.mtp_lambda_at(k);
  r.bias_gamma = opt_.bias_gamma_at(k);
  try {
    r.loss = loss_and_grad(config_, rope_, weights_, batch, obj, &grad, &opt_.precision);
  } catch (const std::exception& e) {
    throw TrainError(fmt::format("step {}: {}", k + 1, e.what()));
  }
  r.grad_norm = grad_norm(config_, grad);  // clipping is folded into the AdamW pass
  if (!std::isfinite(r.loss.total) || !std::isfinite(r.grad_norm))
    throw TrainError(
        fmt::format("step {}: the loss is {} (gradient norm {}); stopping before "
                    "the update",
                    k + 1, num(r.loss.total), num(r.grad_norm)));
  r.clipped = opt_.clip > 0 && r.grad_norm > opt_.clip;
  r.lr = learning_rate(opt_.schedule, opt_.lr, k, opt_.steps, opt_.warmup_steps());
  AdamWOptions adamw = opt_.adamw;
  adamw.bf16_moments = adamw.bf16_moments || opt_.precision.fp8();
  adamw_step(config_, weights_, grad, opt_state_, r.lr, adamw, clip_scale(r.grad_norm, opt_.clip));
  update_biases(config_, weights_, r.loss, r.bias_gamma);
  r.step = opt_state_.step;
  r.max_vio = step_max_vio(r.loss);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_per_s = static_cast<double>(batch.B * batch.T) / std::max(r.seconds, 1e-9);
  return r;
}

std::optional<double> Trainer::validate() const {
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < opt_.eval_batches; ++i) {
    std::optional<Batch> b = data_->val_batch(i, opt_.batch, opt_.seq_len);
    if (!b) return std::nullopt;
    const LowPrecision* p = opt_.val_fp32 ? nullptr : &opt_.precision;  // fp32: the same path
    sum += loss_and_grad<float>(config_, rope_, weights_, *b, opt_.objective, nullptr, p).main;
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / static_cast<double>(n);
}

void Trainer::save_checkpoint() const {
  const fs::path out(opt_.save);
  fs::create_directories(out);
  // Write everything to temporary names first, then rename: a crash mid-save keeps the last
  // complete checkpoint.
  {
    std::ofstream f(out / "config.json.tmp");
    f << model::to_json(config_).dump(2) << "\n";
  }
  model::save_weights(config_, weights_, (out / "model.safetensors.tmp").string());
  io::SafetensorsWriter w;
  model::visit_model(config_, opt_state_.m, [&](const std::string& name, const auto& t) {
    if (name.find("e_score_correction_bias") == std::string::npos) w.add("m." + name, t);
  });
  model::visit_model(config_, opt_state_.v, [&](const std::string& name, const auto& t) {
    if (name.find("e_score_correction_bias") == std::string::npos) w.add("v." + name, t);
  });
  w.set_metadata("step", std::to_string(opt_state_.step));
  w.write((out / "optimizer.safetensors.tmp").string());
  nlohmann::json st = {
      {"step", opt_state_.step},
      {"steps", opt_.steps},
      {"model", opt_.model},
      {"data", opt_.data},
      {"val_data", opt_.val_data},
      {"batch", opt_.batch},
      {"seq_len", opt_.seq_len},
      {"lr", opt_.lr},
      {"schedule", to_string(opt_.schedule)},
      {"warmup", opt_.warmup_steps()},
      {"mtp_lambda", opt_.objective.mtp_lambda},
      {"v3_phases", opt_.v3_phases},
      {"balance", to_string(opt_.objective.balance)},
      {"balance_alpha", opt_.objective.balance_alpha},
      {"bias_gamma", opt_.bias_gamma},
      {"weight_decay", opt_.adamw.weight_decay},
      {"adam_betas", {opt_.adamw.beta1, opt_.adamw.beta2}},
      {"adam_eps", opt_.adamw.eps},
      {"precision", opt_.precision.describe()},
      {"val_precision", opt_.val_fp32 ? "fp32" : opt_.precision.describe()},
      {"clip", opt_.clip},
      {"seed", opt_.seed},
  };
  {
    std::ofstream f(out / "trainer_state.json.tmp");
    f << st.dump(2) << "\n";
  }
  for (const char* name :
       {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"})
    fs::rename(out / (std::string(name) + ".tmp"), out / name);
}

void Trainer::log(const StepRecord& r) const {
  nlohmann::json j = {{"step", r.step},
                      {"loss", r.loss.total},
                      {"loss_main", r.loss.main},
                      {"loss_mtp", r.loss.mtp},
                      {"loss_balance", r.loss.balance},
                      {"grad_norm", r.grad_norm},
                      {"clipped", r.clipped},
                      {"lr", r.lr},
                      {"mtp_lambda", r.mtp_lambda},
                      {"bias_gamma", r.bias_gamma},
                      {"max_vio", r.max_vio},
                      {"moe_layers", r.loss.moe_layers},
                      {"expert_counts", r.loss.expert_counts},
                      {"tokens_per_s", r.tokens_per_s}};
  if (r.val_loss) j["val_loss"] = *r.val_loss;
  std::ofstream f(fs::path(opt_.save) / "log.jsonl", std::ios::app);
  f << j.dump() << "\n";
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

namespace {

void progress(const StepRecord& r, int64_t steps, double rate, double eta) {
  const int width = 24;
  const int filled = static_cast<int>(width * r.step / std::max<int64_t>(steps, 1));
  std::string bar(filled, '=');
  if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
  std::fprintf(stderr, "\r step %lld/%lld [%s] loss %.4f · %.0f tok/s · ETA %s   ",
               static_cast<long long>(r.step), static_cast<long long>(steps), bar.c_str(),
               r.loss.total, rate, format_duration(eta).c_str());
  std::fflush(stderr);
}

}  // namespace

int run_training(const TrainOptions& opt, std::atomic<bool>& stop) {
  Trainer tr(opt);
  const bool tty = isatty(STDERR_FILENO);
  const int64_t eval_every =
      opt.eval_every > 0 ? opt.eval_every : std::max<int64_t>(1, opt.steps / 10);
  double rate = 0;
  int64_t last_saved = tr.step();
  if (tr.step() == 0) tr.save_checkpoint();  // step 0: a good checkpoint exists from the start
  // --replay: changes before a resumed step were made in the earlier part of the run.
  for (const OptionChange& c : opt.changes)
    if (c.step < tr.step()) apply_change(tr.mutable_options(), c);
  while (!tr.done()) {
    for (const OptionChange& c : opt.changes)
      if (c.step == tr.step()) {
        apply_change(tr.mutable_options(), c);
        log_change(opt.save, c);
      }
    StepRecord r;
    try {
      r = tr.train_step();
    } catch (const TrainError& e) {
      if (tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr, "dsv3 train: %s. The last good checkpoint (step %lld) is in %s\n",
                   e.what(), static_cast<long long>(last_saved), opt.save.c_str());
      return 1;
    }
    if (r.step % eval_every == 0 || r.step == opt.steps) r.val_loss = tr.validate();
    tr.log(r);
    rate = rate == 0 ? r.tokens_per_s : 0.9 * rate + 0.1 * r.tokens_per_s;
    const double eta = static_cast<double>((opt.steps - r.step) * opt.batch * opt.seq_len) / rate;
    if (tty) progress(r, opt.steps, rate, eta);
    if (r.step % opt.save_every == 0 || r.step == opt.steps) {
      tr.save_checkpoint();
      last_saved = r.step;
    }
    if (stop.load()) {
      if (last_saved != r.step) tr.save_checkpoint();
      if (tty) std::fprintf(stderr, "\n");
      std::fprintf(stderr,
                   "dsv3 train: interrupted after step %lld; checkpoint saved to %s "
                   "(continue with --resume)\n",
                   static_cast<long long>(r.step), opt.save.c_str());
      return 130;
    }
    if (!tty && (r.step % eval_every == 0 || r.step == opt.steps))
      std::fprintf(stderr, "step %lld/%lld loss %.4f main %.4f%s · %.0f tok/s\n",
                   static_cast<long long>(r.step), static_cast<long long>(opt.steps), r.loss.total,
                   r.loss.main, r.val_loss ? fmt::format(" val {:.4f}", *r.val_loss).c_str() : "",
                   r.tokens_per_s);
  }
  if (tty) std::fprintf(stderr, "\n");
  std::printf("trained %lld steps; checkpoint in %s (log: %s/log.jsonl)\n",
              static_cast<long long>(tr.step()), opt.save.c_str(), opt.save.c_str());
  return 0;
}

}  // namespace dsv3::train

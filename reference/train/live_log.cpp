// snapshot_from_log: a finished (or stopped) run's folder read back into the TrainSnapshot the
// live run had at its end, so panel 9 can show a recorded run (and its snapshot tests need no
// training).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "reference/io/safetensors.h"
#include "reference/train/live_run.h"

namespace dsv3::train {
namespace fs = std::filesystem;

namespace {

TrainOptions options_of(const nlohmann::json& st) {
  TrainOptions o;
  o.steps = st.at("steps").get<int64_t>();
  o.model = st.value("model", "");
  o.data = st.value("data", "");
  o.batch = st.value("batch", o.batch);
  o.seq_len = st.value("seq_len", o.seq_len);
  o.lr = st.value("lr", o.lr);
  o.schedule = parse_schedule(st.value("schedule", "cosine"));
  o.warmup = st.value("warmup", int64_t{-1});
  o.objective.mtp_lambda = st.value("mtp_lambda", o.objective.mtp_lambda);
  o.objective.balance = parse_balance_mode(st.value("balance", "loss-free"));
  o.objective.balance_alpha = st.value("balance_alpha", o.objective.balance_alpha);
  o.bias_gamma = st.value("bias_gamma", o.bias_gamma);
  o.clip = st.value("clip", o.clip);
  o.seed = st.value("seed", o.seed);
  // "fp8 g=128 N_C=128 E4M3": the first word is the precision (compare mode labels by it).
  const std::string p = st.value("precision", "fp32");
  o.precision.precision = parse_precision(p.substr(0, p.find(' ')));
  return o;
}

}  // namespace

TrainSnapshot snapshot_from_log(const std::string& run_dir) {
  const fs::path dir(run_dir);
  std::ifstream st_in(dir / "trainer_state.json"), log_in(dir / "log.jsonl");
  if (!st_in || !log_in)
    throw TrainError(
        fmt::format("{}: not a training run (needs trainer_state.json and log.jsonl)", run_dir));
  TrainSnapshot s;
  try {
    s.options = options_of(nlohmann::json::parse(st_in));
  } catch (const std::exception& e) {
    throw TrainError(fmt::format("{}/trainer_state.json: {}", run_dir, e.what()));
  }
  s.save = run_dir;
  s.steps = s.options.steps;
  s.tokens_per_step = s.options.batch * s.options.seq_len;
  s.state = RunState::kStopped;
  std::string line;
  int64_t n = 0;
  while (std::getline(log_in, line)) {
    ++n;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    try {
      if (j.contains("set")) {
        OptionChange c{j.at("step").get<int64_t>(), j.at("set").get<std::string>(),
                       j.at("value").get<std::string>()};
        apply_change(s.options, c);
        s.changes.push_back(c);
      } else if (j.contains("domain_load")) {
        s.domains = j.at("domains").get<std::vector<std::string>>();
        s.domain_load = j.at("domain_load").get<std::vector<std::vector<std::vector<int64_t>>>>();
        s.domain_step = j.at("step").get<int64_t>();
      } else if (j.contains("loss_main")) {
        LiveStep r;
        r.step = j.at("step").get<int64_t>();
        r.loss = j.at("loss").get<double>();
        r.loss_main = j.at("loss_main").get<double>();
        const auto mtp = j.value("loss_mtp", std::vector<double>{});
        for (double m : mtp) r.loss_mtp += m / static_cast<double>(mtp.size());
        r.loss_balance = j.value("loss_balance", 0.0);
        if (j.contains("val_loss")) r.val_loss = j.at("val_loss").get<double>();
        r.lr = j.value("lr", 0.0);
        r.grad_norm = j.value("grad_norm", 0.0);
        r.bias_gamma = j.value("bias_gamma", 0.0);
        r.tokens_per_s = j.value("tokens_per_s", 0.0);
        r.clipped = j.value("clipped", false);
        r.max_vio = j.value("max_vio", std::vector<double>{});
        r.expert_load = j.value("expert_counts", std::vector<std::vector<int64_t>>{});
        if (s.moe_layers.empty()) s.moe_layers = j.value("moe_layers", std::vector<int>{});
        // The bias update of the step (optimizer.h, update_biases): b_i += γ sign(mean c − c_i).
        s.bias.resize(r.expert_load.size());
        for (size_t l = 0; l < r.expert_load.size(); ++l) {
          const auto& c = r.expert_load[l];
          s.bias[l].resize(c.size(), 0.0f);
          double mean = 0;
          for (int64_t x : c) mean += static_cast<double>(x) / static_cast<double>(c.size());
          for (size_t i = 0; i < c.size(); ++i) {
            const double gap = mean - static_cast<double>(c[i]);
            s.bias[l][i] += static_cast<float>(r.bias_gamma) * (gap > 0   ? 1.0f
                                                                : gap < 0 ? -1.0f
                                                                          : 0.0f);
          }
          s.experts = static_cast<int64_t>(c.size());
        }
        s.tokens_per_s =
            s.tokens_per_s == 0 ? r.tokens_per_s : 0.9 * s.tokens_per_s + 0.1 * r.tokens_per_s;
        s.history.push_back(std::move(r));
      }
    } catch (const std::exception& e) {
      throw TrainError(fmt::format("{}/log.jsonl:{}: {}", run_dir, n, e.what()));
    }
  }
  s.step = s.history.empty() ? 0 : s.history.back().step;
  s.last_saved = s.step;
  if (s.step >= s.steps) s.state = RunState::kDone;
  s.eta_s =
      static_cast<double>((s.steps - s.step) * s.tokens_per_step) / std::max(s.tokens_per_s, 1e-9);
  return s;
}

void write_demo_stream(const std::string& path, int64_t n) {
  std::vector<int64_t> tokens, offsets{0};
  uint64_t x = 20240101;
  auto rnd = [&](int m) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((x >> 33) % static_cast<uint64_t>(m));
  };
  auto put = [&](const std::string& s) {
    for (unsigned char ch : s) tokens.push_back(ch + 3);  // the byte tokenizer's ids
  };
  static const char* kNames[] = {"n", "i", "sum", "acc", "x"};
  static const char* kWords[] = {"the",    "experts", "share", "tokens", "of",  "a",   "batch",
                                 "router", "sends",   "each",  "to",     "few", "and", "bias"};
  for (int d = 0; d < 3; ++d) {
    const size_t start = tokens.size();
    while (static_cast<int64_t>(tokens.size() - start) < n) {
      if (d == 0)
        put(fmt::format("for (int {0} = 0; {0} < {1}; ++{0}) {2} += a[{0}];\n", kNames[rnd(5)],
                        rnd(100), kNames[rnd(5)]));
      else if (d == 1)
        put(fmt::format("{} {} {} {}. ", kWords[rnd(14)], kWords[rnd(14)], kWords[rnd(14)],
                        kWords[rnd(14)]));
      else {
        const int a = rnd(90) + 10, b = rnd(90) + 10;
        put(fmt::format("{} + {} = {}\n", a, b, a + b));
      }
    }
    tokens.resize(start + n);
    offsets.push_back(static_cast<int64_t>(tokens.size()));
  }
  try {
    io::SafetensorsWriter w;
    w.add_i64("tokens", {static_cast<int64_t>(tokens.size())}, tokens);
    w.add_i64("domain_offsets", {static_cast<int64_t>(offsets.size())}, offsets);
    w.set_metadata("domains", "code,prose,math");
    w.write(path);
  } catch (const std::exception& e) {
    throw TrainError(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace dsv3::train

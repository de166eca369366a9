#include "reference/train/changes.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "reference/train/trainer.h"

namespace dsv3::train {
namespace {

std::string canonical(const std::string& key) {
  if (key == "gamma" || key == "γ") return "bias_gamma";
  if (key == "lambda" || key == "λ") return "mtp_lambda";
  if (key == "alpha" || key == "α") return "balance_alpha";
  return key;
}

double number(const OptionChange& c) {
  try {
    size_t used = 0;
    const double v = std::stod(c.value, &used);
    if (used == c.value.size() && std::isfinite(v) && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw TrainError(fmt::format("set {}: '{}' is not a non-negative number", c.key, c.value));
}

}  // namespace

const std::vector<std::string>& change_keys() {
  static const std::vector<std::string> keys{"bias_gamma", "mtp_lambda", "balance_alpha", "lr",
                                             "balance"};
  return keys;
}

OptionChange normalise_change(const OptionChange& c) {
  OptionChange out = c;
  out.key = canonical(c.key);
  TrainOptions probe;
  apply_change(probe, out);  // throws on a bad key or value
  return out;
}

void apply_change(TrainOptions& opt, const OptionChange& c) {
  const std::string key = canonical(c.key);
  if (key == "balance") {
    try {
      opt.objective.balance = parse_balance_mode(c.value);
    } catch (const std::exception&) {
      throw TrainError(
          fmt::format("set balance: '{}' is not one of none, loss-free, aux", c.value));
    }
    return;
  }
  if (key != "bias_gamma" && key != "mtp_lambda" && key != "balance_alpha" && key != "lr")
    throw TrainError(fmt::format(
        "set: unknown option '{}' (bias_gamma|gamma, mtp_lambda|lambda, balance_alpha|alpha, lr, "
        "balance)",
        c.key));
  const double v = number(c);
  if (key == "lr" && v <= 0) throw TrainError("set lr: the learning rate must be positive");
  if (key == "bias_gamma") opt.bias_gamma = v;
  if (key == "mtp_lambda") opt.objective.mtp_lambda = v;
  if (key == "balance_alpha") opt.objective.balance_alpha = v;
  if (key == "lr") opt.lr = v;
}

void log_change(const std::string& save_dir, const OptionChange& c) {
  nlohmann::json j = {{"step", c.step}, {"set", canonical(c.key)}, {"value", c.value}};
  std::ofstream f(std::filesystem::path(save_dir) / "log.jsonl", std::ios::app);
  f << j.dump() << "\n";
}

TrainOptions compare_options(const TrainOptions& opt, const std::string& what) {
  TrainOptions o = opt;
  if (what == "none" || what == "loss-free" || what == "aux") {
    o.objective.balance = parse_balance_mode(what);
    if (o.objective.balance == opt.objective.balance)
      throw TrainError(
          fmt::format("compare {}: the first run already balances with {}", what, what));
  } else if (what == "fp32" || what == "bf16" || what == "fp8") {
    o.precision.precision = parse_precision(what);
    if (o.precision.precision == opt.precision.precision)
      throw TrainError(fmt::format("compare {}: the first run already trains in {}", what, what));
  } else {
    throw TrainError(fmt::format(
        "compare: '{}' is not one of none, loss-free, aux (balancing) or fp32, bf16, fp8", what));
  }
  o.save = opt.save + "-" + what;
  return o;
}

std::vector<OptionChange> read_changes(const std::string& log_path) {
  std::ifstream in(log_path);
  if (!in) throw TrainError(fmt::format("{}: cannot read the log to replay", log_path));
  std::vector<OptionChange> out;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("set")) continue;
    try {
      out.push_back(normalise_change({j.at("step").get<int64_t>(), j.at("set").get<std::string>(),
                                      j.at("value").get<std::string>()}));
    } catch (const TrainError& e) {
      throw TrainError(fmt::format("{}:{}: {}", log_path, n, e.what()));
    } catch (const std::exception&) {
      throw TrainError(fmt::format("{}:{}: a change needs step (integer), set and value (strings)",
                                   log_path, n));
    }
  }
  return out;
}

}  // namespace dsv3::train

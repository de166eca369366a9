#include "reference/train/fp8_compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dsv3::train {

namespace fs = std::filesystem;

CompareMode parse_compare_mode(const std::string& name) {
  CompareMode m{name, {}};
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t colon = name.find(':', start);
    parts.push_back(name.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  m.precision.precision = parse_precision(parts[0]);
  if (parts.size() > 1 && !m.precision.fp8())
    throw std::invalid_argument(
        fmt::format("mode '{}': only fp8 takes options (fp8:t32, fp8:tensor, ...)", name));
  auto number = [&](const std::string& opt, size_t skip) {
    const std::string digits = opt.substr(skip);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
        digits.size() > 6)
      throw std::invalid_argument(fmt::format("mode '{}': '{}' needs a number", name, opt));
    return std::stoi(digits);
  };
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& o = parts[i];
    if (o == "tensor")
      m.precision.per_tensor = true;
    else if (o == "no-promote")
      m.precision.promote = 0;
    else if (o == "e5m2")
      m.precision.grad_format = fp8::Format::kE5M2;
    else if (o == "block-dgrad")
      m.precision.dgrad_blocks = true;
    else if (o.rfind("nc", 0) == 0)
      m.precision.promote = number(o, 2);
    else if (o.rfind("t", 0) == 0)
      m.precision.tile = number(o, 1);
    else
      throw std::invalid_argument(fmt::format(
          "mode '{}': unknown option '{}' (expected t<G>, tensor, no-promote, nc<N>, e5m2 or "
          "block-dgrad)",
          name, o));
  }
  try {
    m.precision.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("mode '{}': {}", name, e.what()));
  }
  return m;
}

std::vector<CompareMode> parse_compare_modes(const std::string& list) {
  std::vector<CompareMode> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    const std::string item = list.substr(start, comma - start);
    if (item.empty()) throw std::invalid_argument(fmt::format("--modes '{}': empty mode", list));
    for (const CompareMode& m : out)
      if (m.name == item)
        throw std::invalid_argument(fmt::format("--modes: '{}' is listed twice", item));
    out.push_back(parse_compare_mode(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  auto base =
      std::find_if(out.begin(), out.end(), [](const CompareMode& m) { return m.name == "bf16"; });
  if (base == out.end())
    out.insert(out.begin(), parse_compare_mode("bf16"));
  else
    std::rotate(out.begin(), base, base + 1);
  return out;
}

int64_t last_window(int64_t n) {
  return std::max<int64_t>(1, (n + 9) / 10);
}

std::vector<double> relative_gaps(const std::vector<double>& loss,
                                  const std::vector<double>& base) {
  std::vector<double> g(std::min(loss.size(), base.size()));
  for (size_t k = 0; k < g.size(); ++k) g[k] = (loss[k] - base[k]) / base[k];
  return g;
}

double window_mean(const std::vector<double>& v, int64_t window) {
  if (v.empty()) return 0;
  const size_t n = std::min(v.size(), static_cast<size_t>(std::max<int64_t>(1, window)));
  double s = 0;
  for (size_t k = v.size() - n; k < v.size(); ++k) s += v[k];
  return s / static_cast<double>(n);
}

std::vector<double> ema(const std::vector<double>& v, double beta) {
  std::vector<double> out(v.size());
  double m = 0, w = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    m = beta * m + (1 - beta) * v[k];
    w = beta * w + (1 - beta);
    out[k] = m / w;
  }
  return out;
}

namespace {

std::string folder_name(const std::string& mode) {
  std::string s = mode;
  std::replace(s.begin(), s.end(), ':', '-');
  return s;
}

// L_main and seconds per step from a run's log.jsonl (the Trainer keeps it in step with the
// last checkpoint when it resumes).
void read_log(const fs::path& log, int64_t tokens, std::vector<double>& loss, double& seconds) {
  loss.clear();
  seconds = 0;
  std::ifstream in(log);
  std::string line;
  int64_t timed = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("loss_main")) continue;
    loss.push_back(j["loss_main"].get<double>());
    const double tps = j.value("tokens_per_s", 0.0);
    if (tps > 0) {
      seconds += static_cast<double>(tokens) / tps;
      ++timed;
    }
  }
  seconds = timed ? seconds / static_cast<double>(timed) : 0;
}

}  // namespace

CompareResult train_compare(
    const CompareOptions& opt, std::atomic<bool>& stop,
    const std::function<void(const std::string&, const StepRecord&)>& progress) {
  if (opt.modes.empty()) throw TrainError("train-compare: no modes");
  if (opt.train.save.empty()) throw TrainError("train-compare: an output folder is required");
  const auto t0 = std::chrono::steady_clock::now();
  auto out_of_time = [&] {
    return opt.max_seconds > 0 &&
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >=
               opt.max_seconds;
  };
  CompareResult res;
  res.steps = opt.train.steps;
  res.window = last_window(opt.train.steps);
  std::vector<CompareRun> runs;
  for (const CompareMode& mode : opt.modes) {
    TrainOptions o = opt.train;
    o.precision = mode.precision;
    o.save = (fs::path(opt.train.save) / folder_name(mode.name)).string();
    o.resume = fs::exists(fs::path(o.save) / "trainer_state.json");
    o.save_every = opt.save_every;
    const fs::path log = fs::path(o.save) / "log.jsonl";
    bool finished = false;
    if (o.resume) {
      std::vector<double> done;
      double sec = 0;
      read_log(log, o.batch * o.seq_len, done, sec);
      finished = static_cast<int64_t>(done.size()) >= o.steps;
    }
    if (!finished && !stop.load() && !out_of_time()) {
      Trainer tr(o);
      if (tr.step() == 0) tr.save_checkpoint();
      // Validation as `dsv3 train` runs it (ten times per run, in the training precision).
      const int64_t every = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, o.steps / 10);
      while (!tr.done()) {
        StepRecord r = tr.train_step();
        if (r.step % every == 0 || tr.done()) r.val_loss = tr.validate();
        tr.log(r);
        if (progress) progress(mode.name, r);
        const bool halt = stop.load() || out_of_time();
        if (tr.done() || halt || r.step % std::max<int64_t>(1, o.save_every) == 0)
          tr.save_checkpoint();
        if (halt) break;
      }
    }
    CompareRun run;
    run.mode = mode.name;
    run.describe = mode.precision.describe();
    read_log(log, o.batch * o.seq_len, run.loss, run.seconds_per_step);
    if (static_cast<int64_t>(run.loss.size()) < o.steps) res.complete = false;
    runs.push_back(std::move(run));
  }
  res.baseline = std::move(runs.front());
  const CompareRun& b = res.baseline;
  res.baseline.final_loss = window_mean(res.baseline.loss, res.window);
  for (size_t i = 1; i < runs.size(); ++i) {
    CompareRun& r = runs[i];
    r.gap = relative_gaps(r.loss, b.loss);
    r.final_loss = window_mean(r.loss, res.window);
    r.relative_gap = window_mean(r.gap, res.window);
    res.runs.push_back(std::move(r));
  }
  return res;
}

std::string compare_json(const CompareResult& r) {
  nlohmann::json j;
  j["baseline"] = {{"mode", r.baseline.mode}, {"final_loss", r.baseline.final_loss}};
  j["runs"] = nlohmann::json::array();
  for (const CompareRun& run : r.runs)
    j["runs"].push_back(
        {{"mode", run.mode}, {"final_loss", run.final_loss}, {"relative_gap", run.relative_gap}});
  return j.dump();
}

namespace {
// The EMA-smoothed gap at a fraction of the run (NaN when the run is shorter).
double running_at(const std::vector<double>& gap, double frac) {
  if (gap.empty()) return std::nan("");
  const std::vector<double> s = ema(gap);
  const size_t k = static_cast<size_t>(std::max(0.0, std::ceil(frac * s.size()) - 1));
  return s[std::min(k, s.size() - 1)];
}
std::string pct(double v) {
  return std::isnan(v) ? "-" : fmt::format("{:+.3f}%", 100 * v);
}
}  // namespace

std::string compare_table(const CompareResult& r) {
  std::string s = fmt::format(
      "| mode | precision | final loss (last {} steps) | relative gap (last {} steps) | running "
      "gap at 25% / 50% / 75% / 100% | s/step |\n|---|---|---|---|---|---|\n",
      r.window, r.window);
  s += fmt::format("| {} | {} | {:.4f} | baseline | | {:.2f} |\n", r.baseline.mode,
                   r.baseline.describe, r.baseline.final_loss, r.baseline.seconds_per_step);
  for (const CompareRun& run : r.runs)
    s += fmt::format("| {} | {} | {:.4f} | {} | {} / {} / {} / {} | {:.2f} |\n", run.mode,
                     run.describe, run.final_loss, pct(run.relative_gap),
                     pct(running_at(run.gap, 0.25)), pct(running_at(run.gap, 0.5)),
                     pct(running_at(run.gap, 0.75)), pct(running_at(run.gap, 1.0)),
                     run.seconds_per_step);
  return s;
}

std::string compare_svg(const CompareResult& r) {
  constexpr int W = 760, H = 300, L = 70, R = 190, T = 30, B = 40;
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                  "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n",
      W, 2 * H);
  auto panel = [&](int y0, const std::string& title, const std::vector<std::vector<double>>& ys,
                   const std::vector<std::string>& labels, bool gap) {
    double lo = 1e300, hi = -1e300;
    size_t n = 1;
    for (const auto& y : ys) {
      n = std::max(n, y.size());
      for (double v : y)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    if (gap) lo = std::min(lo, -0.0025), hi = std::max(hi, 0.0025);
    if (!(lo < hi)) lo -= 1, hi += 1;
    const double pw = W - L - R, ph = H - T - B;
    auto X = [&](double k) { return L + pw * k / std::max<double>(1, static_cast<double>(n - 1)); };
    auto Y = [&](double v) { return y0 + T + ph * (hi - v) / (hi - lo); };
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n", L, y0 + 18, title);
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", L,
        y0 + T, pw, ph);
    for (int t = 0; t <= 4; ++t) {
      const double v = lo + (hi - lo) * t / 4.0;
      s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", L - 4,
                       Y(v) + 4, gap ? fmt::format("{:+.2f}%", 100 * v) : fmt::format("{:.3f}", v));
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step (of {})</text>\n",
                     L + pw / 2, y0 + H - 8, n);
    if (gap)
      for (double v : {0.0025, -0.0025, 0.0})
        s += fmt::format(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#aaa\" "
            "stroke-dasharray=\"{}\"/>\n",
            L, L + pw, Y(v), Y(v), v == 0 ? "2,2" : "6,3");
    for (size_t i = 0; i < ys.size(); ++i) {
      std::string pts;
      for (size_t k = 0; k < ys[i].size(); ++k)
        if (std::isfinite(ys[i][k]))
          pts += fmt::format("{:.1f},{:.1f} ", X(static_cast<double>(k)), Y(ys[i][k]));
      const char* c = kColors[i % 8];
      s += fmt::format(
          "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", c, pts);
      s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>\n", L + pw + 10,
                       y0 + T + 14 + 16 * static_cast<int>(i), c, labels[i]);
    }
  };
  std::vector<std::vector<double>> losses{ema(r.baseline.loss)}, gaps;
  std::vector<std::string> names{r.baseline.mode}, gap_names;
  for (const CompareRun& run : r.runs) {
    losses.push_back(ema(run.loss));
    names.push_back(run.mode);
    gaps.push_back(ema(run.gap));
    gap_names.push_back(run.mode);
  }
  panel(0, "training loss L_main (EMA 0.9)", losses, names, false);
  panel(H,
        fmt::format("relative loss gap to {} (EMA 0.9); dashed: the paper's +-0.25%",
                    r.baseline.mode),
        gaps, gap_names, true);
  s += "</svg>\n";
  return s;
}

}  // namespace dsv3::train

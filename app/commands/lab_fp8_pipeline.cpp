// Lab commands about FP8 (one number bit by bit, tile scaling against an outlier, tensor-core
// accumulation) and DualPipe (schedules, Table 2, the Figure 4 overlap).
#include <curses.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "app/commands/lab.h"
#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "app/lesson/player.h"
#include "reference/accounting/accounting.h"
#include "reference/balance/metrics.h"
#include "reference/balance/toy_a.h"
#include "reference/balance/toy_c.h"
#include "reference/fp8/analysis.h"
#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/model/generate.h"
#include "reference/model/mtp.h"
#include "reference/model/rope.h"
#include "reference/model/speculative.h"
#include "reference/pipeline/export.h"
#include "reference/pipeline/overlap.h"
#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "reference/pipeline/table.h"
#include "visualizers/balance_plot.h"
#include "visualizers/explorer_style.h"
#include "visualizers/mtp_panel.h"
#include "visualizers/pipeline_overlap.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::app::lab {

// ---- FP8 ----------------------------------------------------------------------------------

Output fp8_bits(Session&, const Args& a, const Context&) {
  double x = a.real("VALUE");
  fp8::Format f = a.has("format") ? fp8::parse_format(a.str("format")) : fp8::Format::kE4M3;
  const fp8::FormatInfo& fi = fp8::info(f);
  uint8_t code = fp8::encode(static_cast<float>(x), f);
  float back = fp8::decode(code, f);
  int m = fi.mantissa_bits, e = fi.exponent_bits;
  std::string bits = std::to_string(code >> 7) + " ";
  for (int b = 6; b >= m; --b) bits += ((code >> b) & 1) ? '1' : '0';
  bits += ' ';
  for (int b = m - 1; b >= 0; --b) bits += ((code >> b) & 1) ? '1' : '0';
  int exp_field = (code >> m) & ((1 << e) - 1);
  int man_field = code & ((1 << m) - 1);
  bool finite = !fp8::is_nan(code, f) && !fp8::is_inf(code, f);
  fp8::Parts p = finite ? fp8::parts(code, f) : fp8::Parts{1, 0, 0};
  double err = static_cast<double>(back) - x;
  json j = {{"value", x},
            {"format", fi.name},
            {"code", code},
            {"bits", bits},
            {"exponent_field", exp_field},
            {"mantissa_field", man_field},
            {"exponent", p.exponent},
            {"significand", p.significand},
            {"subnormal", exp_field == 0},
            {"decoded", back},
            {"error", err},
            {"rel_error", x != 0 ? std::fabs(err / x) : 0.0},
            {"max", fi.max},
            {"min_normal", fi.min_normal},
            {"min_subnormal", fi.min_subnormal},
            {"exponent_bits", e},
            {"mantissa_bits", m},
            {"bias", fi.bias}};
  if (a.flag("json")) return json_out(j);
  std::string t = fmt::format("{} in {} (1 sign, {} exponent, {} mantissa bits, bias {}):\n", x,
                              fi.name, e, m, fi.bias);
  t += fmt::format("  bits  {}   code 0x{:02x}\n", bits, code);
  if (finite)
    t += fmt::format("  value = {}{} × 2^({} − {}) = {}{}\n", p.sign < 0 ? "−" : "", p.significand,
                     p.exponent, m, fp8::format_value(back),
                     exp_field == 0 ? "   (subnormal: no hidden 1)" : "");
  else
    t += fmt::format("  value = {}\n", fp8::format_value(back));
  t += fmt::format("  rounding error {:+.4g} ({:.2f}% of the value)\n", err,
                   100 * j["rel_error"].get<double>());
  t += fmt::format("  range: max {}, smallest normal {}, smallest subnormal {}\n",
                   fp8::format_value(fi.max), fp8::format_value(fi.min_normal),
                   fp8::format_value(fi.min_subnormal));
  return text(t);
}

namespace {

struct QuantError {
  double rel = 0;     // ||x̂ − x|| / ||x|| over the tiles without the outlier
  int64_t zeros = 0;  // non-zero inputs that became 0
};

QuantError quant_error(const Mat& x, const fp8::QMatrix& q, int64_t skip_tile) {
  Mat d = q.dequantize();
  double num = 0, den = 0;
  QuantError r;
  for (int64_t c = 0; c < x.cols(); ++c) {
    if (x(0, c) != 0 && d(0, c) == 0) ++r.zeros;
    if (c / fp8::kTile == skip_tile) continue;
    num += std::pow(d(0, c) - x(0, c), 2);
    den += std::pow(x(0, c), 2);
  }
  r.rel = std::sqrt(num / den);
  return r;
}

}  // namespace

Output fp8_scaling(Session&, const Args& a, const Context&) {
  double outlier = real_flag(a, "outlier", 1000, 0, 1e30);
  Mat x = fp8::random_matrix(1, 4 * fp8::kTile, fp8::Dist::kRandn, 7) * 0.01f;  // small activations
  x(0, 5) = static_cast<float>(outlier);
  fp8::QMatrix pt = fp8::quantize_per_tensor(x);
  fp8::QMatrix tile = fp8::quantize_activations(x);
  QuantError e_pt = quant_error(x, pt, 0), e_tile = quant_error(x, tile, 0);
  json j = {
      {"outlier", outlier},
      {"elements", x.cols()},
      {"per_tensor", {{"scale", pt.scales[0]}, {"rel_error", e_pt.rel}, {"zeros", e_pt.zeros}}},
      {"per_tile", {{"scales", tile.scales}, {"rel_error", e_tile.rel}, {"zeros", e_tile.zeros}}}};
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("{} activations ~ N(0, 0.01²), one outlier of {}, in E4M3:\n", x.cols(), outlier);
  t += fmt::format("  {:<22} {:>12} {:>22} {:>10}\n", "scaling", "scale", "error, other tiles",
                   "→ zero");
  t += fmt::format("  {:<22} {:>12.4g} {:>21.2f}% {:>10}\n", "per tensor (1 scale)", pt.scales[0],
                   100 * e_pt.rel, e_pt.zeros);
  t += fmt::format("  {:<22} {:>12} {:>21.2f}% {:>10}\n", "1×128 tiles (4 scales)", "per tile",
                   100 * e_tile.rel, e_tile.zeros);
  t += "  tile scales:";
  for (float s : tile.scales) t += fmt::format(" {:.3g}", s);
  t += "\n";
  return text(t);
}

Output fp8_accum(Session&, const Args& a, const Context&) {
  int64_t k = int_flag(a, "k", 4096, 128, 16384);
  if (k % fp8::kTile) throw CommandError("fp8-accum: --k must be a multiple of 128");
  json rows = json::array();
  std::string t =
      fmt::format("GEMM error of 16×{} · {}×16 FP8 (E4M3) against the exact sum:\n", k, k);
  t += fmt::format("  {:<44} {:>12} {:>12}\n", "accumulation", "max rel err", "mean signed");
  struct Mode {
    const char* name;
    const char* label;
    fp8::Accum accum;
    int promote;
  };
  for (const Mode& m :
       {Mode{"tensor_core_only", "tensor core chain over all K (no promotion)", fp8::Accum::kH100,
             0},
        Mode{"promote_128", "promote to FP32 every 128 (DeepSeek-V3)", fp8::Accum::kH100, 128},
        Mode{"fp32", "plain FP32 accumulation", fp8::Accum::kFp32, 128}}) {
    fp8::GemmErrorConfig c;
    c.m = c.n = 16;
    c.k = k;
    c.tile_scaling = false;  // one scale per tensor: a tensor-core chain may then run over all of K
    c.gemm.accum = m.accum;
    c.gemm.promote = m.promote;
    c.dist = fp8::Dist::kUniform;
    fp8::ErrorStats s = fp8::gemm_error(c);
    rows.push_back({{"mode", m.name},
                    {"max_rel", s.max_rel},
                    {"rel_fro", s.rel_fro},
                    {"mean_signed_rel", s.mean_signed_rel}});
    t += fmt::format("  {:<44} {:>11.4f}% {:>+11.4f}%\n", m.label, 100 * s.max_rel,
                     100 * s.mean_signed_rel);
  }
  json j = {{"k", k}, {"modes", rows}};
  j["by_mode"] = json::object();
  for (const auto& r : rows) j["by_mode"][r["mode"].get<std::string>()] = r;
  if (a.flag("json")) return json_out(j);
  return text(t);
}

// ---- DualPipe -----------------------------------------------------------------------------

namespace {

pipeline::Costs costs_of(const Args& a) {
  try {
    return a.has("costs") ? pipeline::parse_costs(a.str("costs")) : pipeline::Costs{};
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("--costs: {}", e.what()));
  }
}

}  // namespace

Output pp_sim(Session&, const Args& a, const Context& ctx) {
  pipeline::Costs costs = costs_of(a);
  int P = static_cast<int>(a.integer("P")), N = static_cast<int>(a.integer("N"));
  pipeline::SimResult r;
  try {
    r = pipeline::simulate(pipeline::build_schedule(a.str("SCHEDULE"), P, N), costs);
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("pp-sim: {}", e.what()));
  }
  if (a.flag("json")) return json_out(pipeline::to_json(r));
  Output o;
  viz::PipelineTimelineOptions po;
  po.width = std::max(40, std::min(ctx.width, 100));
  o.canvas = viz::draw_pipeline_timeline(r, po);
  pipeline::TableFormula f = pipeline::table_formula(r.kind, P, N, costs);
  o.text = fmt::format(
      "bubble per rank: max {:.3g}, formula {} = {:.3g}\nparameters {}, peak activations {}\n",
      r.max_bubble(), f.bubble, f.bubble_value, f.params, r.max_peak_activations());
  return o;
}

Output pp_table(Session&, const Args& a, const Context&) {
  pipeline::Costs costs = costs_of(a);
  int P = static_cast<int>(a.integer("P")), N = static_cast<int>(a.integer("N"));
  std::vector<std::string> skipped;
  auto rows = pipeline::compare_schedules(P, N, costs, pipeline::SimMode::kIdeal, &skipped);
  json j = json::object();
  json list = json::array();
  for (const auto& r : rows) {
    json row = pipeline::to_json(r);
    list.push_back(row);
    std::string key(pipeline::schedule_id(r.kind));
    if (r.ranks != P) key += "_half";  // DualPipeV at the same stages: P/2 ranks
    j[key] = row;
  }
  j["rows"] = list;
  if (a.flag("json")) return json_out(j);
  std::string t =
      fmt::format("Table 2 at PP = {}, {} micro-batches, {}:\n", P, N, pipeline::to_string(costs));
  t += fmt::format("  {:<10} {:>5} {:<22} {:>7} {:>7} {:>6} {:>7}\n", "schedule", "ranks",
                   "bubble formula", "= value", "sim", "params", "activ.");
  for (const auto& r : rows)
    t += fmt::format("  {:<10} {:>5} {:<22} {:>7.3g} {:>7.3g} {:>6} {:>7}\n",
                     pipeline::schedule_label(r.kind), r.ranks, r.formula.bubble.substr(0, 22),
                     r.formula.bubble_value, r.sim_bubble_max, r.formula.params,
                     r.sim_peak_activations);
  for (const auto& s : skipped) t += "  skipped: " + s + "\n";
  return text(t);
}

Output pp_overlap(Session&, const Args& a, const Context& ctx) {
  model::Config c = config_of(a);
  pipeline::BlockCosts bc = pipeline::derive_block_costs(c, pipeline::HardwareModel{});
  pipeline::OverlapResult r = pipeline::simulate_overlap(bc);
  json j = {{"config", c.name},
            {"serial_time", r.serial_time},
            {"overlapped_time", r.overlapped_time},
            {"compute_time", r.compute_time},
            {"comm_time", r.comm_time},
            {"exposed_comm", r.exposed_comm},
            {"hidden_fraction", r.hidden_fraction},
            {"speedup", r.serial_time / r.overlapped_time}};
  if (a.flag("json")) return json_out(j);
  Output o;
  o.canvas = viz::draw_pipeline_overlap(r, std::max(60, std::min(ctx.width, 100)));
  return o;
}

}  // namespace dsv3::app::lab

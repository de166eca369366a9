// `dsv3 pipeline ...` subcommands: the DualPipe timeline model (DeepSeek-V3 §3.2.1).
//   ops       the per-rank op order of a schedule
//   simulate  timeline, busy/bubble/peak activations per rank, Table 2's formula beside it
//   compare   every schedule side by side (the reproduced Table 2)
//   overlap   Figure 4: a forward and a backward chunk overlapped, communication hidden
#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "app/cli/cli.h"
#include "reference/pipeline/export.h"
#include "reference/pipeline/overlap.h"
#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "reference/pipeline/table.h"
#include "visualizers/canvas.h"
#include "visualizers/pipeline_overlap.h"
#include "visualizers/pipeline_svg.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::app {

namespace {

struct PipelineArgs {
  std::string schedule = "dualpipe";
  int pp = 8;
  int micro_batches = 20;
  std::string cost;
  double comm = 0;
  std::string mode = "ideal";
  bool json = false;
  bool no_color = false;
  bool timeline_json = false;
  bool timelines = false;
  int width = 0;
  double cursor = -1;  // < 0: no cursor
  double zoom = 0;     // columns per time unit; 0: as many as fit, at least one
  std::string chrome_trace;
  std::string svg;
  // overlap
  std::string config;
  std::string block_costs;
  double tokens = 4096, seq_len = 4096, tflops = 400, bandwidth = 50;
  int blocks = 1, sms = 132, comm_sms = 20;
};

// Wraps library errors (bad schedule parameters, bad costs) as usage errors.
template <class F>
auto usage(F&& f) {
  try {
    return f();
  } catch (const pipeline::ScheduleError& e) {
    throw UsageError(e.what());
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

int output_width(const PipelineArgs& a) {
  if (a.width > 0) return a.width;
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
    return ws.ws_col;
  if (const char* cols = std::getenv("COLUMNS")) {
    int n = std::atoi(cols);
    if (n >= 40) return n;
  }
  return 120;
}

void print_canvas(const viz::Canvas& c, const PipelineArgs& a) {
  bool colour = !a.no_color && !viz::colour_disabled(STDOUT_FILENO);
  std::fputs((colour ? viz::render_ansi(c) : viz::render_plain(c)).c_str(), stdout);
}

// A timeline wider than the terminal: one column per time unit (or --zoom) in consecutive bands
// of the makespan, each with its range row, rather than squeezed into unreadable runs. With a
// cursor, the one window around it.
void print_timeline(const pipeline::SimResult& r, viz::PipelineTimelineOptions o,
                    const PipelineArgs& a) {
  viz::PipelineTimelineWindow w = viz::pipeline_timeline_window(r, o);
  if (!w.windowed || o.cursor) {
    print_canvas(viz::draw_pipeline_timeline(r, o), a);
    return;
  }
  const double band = std::max(1.0, std::floor(w.units));
  const bool title = o.title, legend = o.legend;
  for (double t = 0; t < r.makespan - 1e-9; t += band) {
    o.view_start = t;
    o.title = title && t == 0;
    o.legend = legend && t + band >= r.makespan - 1e-9;
    print_canvas(viz::draw_pipeline_timeline(r, o), a);
  }
}

pipeline::Costs costs_of(const PipelineArgs& a) {
  pipeline::Costs c = usage([&] { return pipeline::parse_costs(a.cost); });
  if (a.comm != 0) {
    c.comm = a.comm;
    usage([&] {
      c.validate();
      return 0;
    });
  }
  return c;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw UsageError(fmt::format("cannot write '{}'", path));
  out << text;
  if (!out) throw UsageError(fmt::format("error while writing '{}'", path));
}

void add_shape_options(CLI::App* sub, PipelineArgs& a, bool with_schedule) {
  if (with_schedule)
    sub->add_option("--schedule,-s", a.schedule, "gpipe | 1f1b | zb1p | dualpipe | dualpipev")
        ->capture_default_str();
  sub->add_option("--pp,-p", a.pp, "Pipeline ranks (devices)")->capture_default_str();
  sub->add_option("--micro-batches,-n", a.micro_batches,
                  "Micro-batches in the iteration (all directions)")
      ->capture_default_str();
}

void add_cost_options(CLI::App* sub, PipelineArgs& a) {
  sub->add_option("--cost", a.cost,
                  "Op costs, e.g. F=1,B=2,W=1,FB=3 (Bi = B - W; defaults are the figure's)");
  sub->add_option("--comm", a.comm, "Point-to-point latency of one message (time units)");
  sub->add_option("--mode", a.mode,
                  "ideal (data dependencies only) | eager | rendezvous (the official code's "
                  "blocking commits)")
      ->capture_default_str();
}

void run_ops(const PipelineArgs& a) {
  pipeline::Schedule s =
      usage([&] { return pipeline::build_schedule(a.schedule, a.pp, a.micro_batches); });
  if (!a.json) {
    std::fputs(s.to_text().c_str(), stdout);
    return;
  }
  nlohmann::json ranks = nlohmann::json::array();
  for (const auto& ops : s.ops) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& op : ops) list.push_back(pipeline::to_token(op));
    ranks.push_back(list);
  }
  nlohmann::json j = {{"schedule", std::string(pipeline::schedule_id(s.kind))},
                      {"ranks", s.ranks},
                      {"micro_batches", s.micro_batches},
                      {"ops", ranks}};
  std::cout << j.dump(2) << '\n';
}

std::string num(double v) {
  return fmt::format("{:g}", v);
}

void run_simulate(const PipelineArgs& a) {
  pipeline::Schedule s =
      usage([&] { return pipeline::build_schedule(a.schedule, a.pp, a.micro_batches); });
  pipeline::Costs c = costs_of(a);
  pipeline::SimMode mode = usage([&] { return pipeline::parse_sim_mode(a.mode); });
  pipeline::SimResult r = usage([&] { return pipeline::simulate(s, c, mode); });
  if (!a.chrome_trace.empty())
    write_file(a.chrome_trace, pipeline::to_chrome_trace(r).dump() + "\n");
  if (!a.svg.empty()) write_file(a.svg, viz::draw_pipeline_svg(r));
  if (a.json) {
    std::cout << pipeline::to_json(r, a.timeline_json).dump(2) << '\n';
    return;
  }
  viz::PipelineTimelineOptions o;
  o.width = output_width(a);
  if (a.cursor >= 0) o.cursor = a.cursor;
  o.columns_per_unit = a.zoom;
  print_timeline(r, o, a);
  std::printf("\n%-6s %10s %10s %8s %7s\n", "rank", "busy", "bubble", "peak act", "params");
  for (int k = 0; k < r.ranks; ++k) {
    const auto& rr = r.ranks_result[k];
    std::printf("%-6d %10s %10s %8d %6dx\n", k, num(rr.busy).c_str(), num(rr.bubble).c_str(),
                rr.peak_activations, rr.param_copies);
  }
  pipeline::TableFormula f = pipeline::table_formula(r.kind, r.ranks, r.micro_batches, c);
  pipeline::Exactness e = pipeline::formula_exactness(r.kind, c, mode);
  std::printf("makespan %s · largest bubble %s · peak activations %d\n", num(r.makespan).c_str(),
              num(r.max_bubble()).c_str(), r.max_peak_activations());
  std::printf("Table 2 (PP=%d stages): bubble %s = %s, activations %s = %d, parameters %s — %s\n",
              f.pp, f.bubble.c_str(), num(f.bubble_value).c_str(), f.activation.c_str(),
              f.activation_value, f.params.c_str(), e.why.c_str());
  if (!a.chrome_trace.empty())
    std::printf("wrote %s (open in Perfetto or chrome://tracing)\n", a.chrome_trace.c_str());
  if (!a.svg.empty()) std::printf("wrote %s\n", a.svg.c_str());
}

void run_compare(const PipelineArgs& a) {
  pipeline::Costs c = costs_of(a);
  pipeline::SimMode mode = usage([&] { return pipeline::parse_sim_mode(a.mode); });
  std::vector<std::string> skipped;
  std::vector<pipeline::TableRow> rows =
      usage([&] { return pipeline::compare_schedules(a.pp, a.micro_batches, c, mode, &skipped); });
  if (a.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& row : rows) list.push_back(pipeline::to_json(row));
    nlohmann::json j = {{"ranks", a.pp},
                        {"micro_batches", a.micro_batches},
                        {"mode", a.mode},
                        {"rows", list},
                        {"skipped", skipped}};
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::printf("%d ranks, %d micro-batches, %s, %s mode\n\n", a.pp, a.micro_batches,
              pipeline::to_string(c).c_str(), a.mode.c_str());
  std::printf("%-10s %5s %4s %6s %9s %9s %-20s %8s %7s %6s %6s  %s\n", "schedule", "ranks", "N",
              "stages", "makespan", "bubble", "Table 2 bubble", "= value", "act.", "(tbl)",
              "params", "formula");
  for (const auto& row : rows) {
    std::string bubble = row.sim_bubble_min == row.sim_bubble_max
                             ? num(row.sim_bubble_max)
                             : num(row.sim_bubble_min) + ".." + num(row.sim_bubble_max);
    std::printf("%-10s %5d %4d %6d %9s %9s %-20s %8s %7d %6s %6s  %s\n",
                std::string(pipeline::schedule_label(row.kind)).c_str(), row.ranks,
                row.micro_batches, row.formula.pp, num(row.makespan).c_str(), bubble.c_str(),
                row.formula.bubble.c_str(), num(row.formula.bubble_value).c_str(),
                row.sim_peak_activations, row.formula.activation.c_str(),
                row.formula.params.c_str(), row.exactness.exact ? "exact" : "estimate");
  }
  for (const auto& s : skipped) std::printf("skipped %s\n", s.c_str());
  std::printf(
      "\nbubble: makespan minus a rank's busy time (a range when ranks differ; Table 2 is the "
      "largest).\nact.: peak activations per rank in micro-batch-stage units. DualPipeV is shown "
      "on the same ranks (2P stages) and, when P is even, as the table compares it: on P/2 ranks "
      "with N/2 micro-batches, the same PP stages and work per device.\n");
  if (a.timelines) {
    // Every schedule on one time scale, so the bubbles compare at a glance.
    double longest = 0;
    int peak = 1;
    for (const auto& row : rows) {
      longest = std::max(longest, row.makespan);
      peak = std::max(peak, row.sim_peak_activations);
    }
    double largest_bubble = 0;
    for (const auto& row : rows) largest_bubble = std::max(largest_bubble, row.sim_bubble_max);
    viz::PipelineTimelineOptions o;
    o.width = output_width(a);
    o.bubble_scale = longest;
    o.bubble_max = largest_bubble;
    o.memory_scale = peak;
    // Whole columns per time unit (at least one; a longer makespan is drawn in bands).
    o.columns_per_unit =
        a.zoom > 0 ? a.zoom : std::max(1.0, std::floor((o.width - 35) / std::max(longest, 1e-9)));
    for (const auto& row : rows) {
      pipeline::Schedule s = pipeline::build_schedule(row.kind, row.ranks, row.micro_batches);
      o.legend = &row == &rows.back();
      std::printf("\n");
      print_timeline(pipeline::simulate(s, c, mode), o, a);
    }
  }
}

void run_overlap(const PipelineArgs& a) {
  pipeline::BlockCosts bc;
  std::string source;
  if (!a.config.empty()) {
    model::Config cfg;
    try {
      cfg = model::resolve_config(a.config);
    } catch (const std::exception& e) {
      throw UsageError(e.what());
    }
    pipeline::HardwareModel hw;
    hw.tokens = a.tokens;
    hw.seq_len = a.seq_len;
    hw.tflops = a.tflops;
    hw.bandwidth_gbs = hw.pp_bandwidth_gbs = a.bandwidth;
    if (!(hw.tokens > 0 && hw.seq_len > 0 && hw.tflops > 0 && hw.bandwidth_gbs > 0))
      throw UsageError("--tokens, --seq-len, --tflops and --bandwidth must be positive");
    bc = pipeline::derive_block_costs(cfg, hw);
    source = fmt::format("{} at {:g} tokens, {:g} TFLOP/s, {:g} GB/s (times in ms)", cfg.name,
                         hw.tokens, hw.tflops, hw.bandwidth_gbs);
  } else {
    // A block whose all-to-all costs about as much as its computation (the report's ratio for
    // cross-node expert parallelism, §3.2.1).
    bc = pipeline::BlockCosts{1, 1, 1, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 0.5};
    source = "default unit costs";
  }
  if (!a.block_costs.empty())
    bc = usage([&] { return pipeline::parse_block_costs(a.block_costs, bc); });
  pipeline::OverlapResult r =
      usage([&] { return pipeline::simulate_overlap(bc, a.blocks, a.sms, a.comm_sms); });
  if (a.json) {
    nlohmann::json segs = nlohmann::json::array();
    for (const auto& s : r.overlapped)
      segs.push_back({{"name", s.name},
                      {"stream", s.comm ? "comm" : "compute"},
                      {"start", s.start},
                      {"end", s.end}});
    nlohmann::json j = {{"source", source},
                        {"costs",
                         {{"attn_f", bc.attn_f},
                          {"attn_bi", bc.attn_bi},
                          {"attn_w", bc.attn_w},
                          {"mlp_f", bc.mlp_f},
                          {"mlp_bi", bc.mlp_bi},
                          {"mlp_w", bc.mlp_w},
                          {"dispatch_f", bc.dispatch_f},
                          {"combine_f", bc.combine_f},
                          {"dispatch_b", bc.dispatch_b},
                          {"combine_b", bc.combine_b},
                          {"pp", bc.pp}}},
                        {"blocks_per_chunk", a.blocks},
                        {"sms", a.sms},
                        {"comm_sms", a.comm_sms},
                        {"overlapped_time", r.overlapped_time},
                        {"serial_time", r.serial_time},
                        {"compute_time", r.compute_time},
                        {"comm_time", r.comm_time},
                        {"exposed_comm", r.exposed_comm},
                        {"hidden_fraction", r.hidden_fraction},
                        {"overlapped", segs}};
    std::cout << j.dump(2) << '\n';
    return;
  }
  std::printf("%s; %d block(s) per chunk; %d of %d SMs for communication\n", source.c_str(),
              a.blocks, a.comm_sms, a.sms);
  print_canvas(viz::draw_pipeline_overlap(r, output_width(a)), a);
}

}  // namespace

void add_pipeline_commands(CLI::App& app) {
  auto a = std::make_shared<PipelineArgs>();
  CLI::App* pipe = app.add_subcommand(
      "pipeline", "DualPipe timeline model: schedules, simulation, Table 2 and Figure 4");
  pipe->require_subcommand(1);

  CLI::App* ops = pipe->add_subcommand("ops", "Per-rank op order of a schedule, one line per rank");
  add_shape_options(ops, *a, true);
  ops->add_flag("--json", a->json, "JSON output");
  ops->callback([a] { run_ops(*a); });

  CLI::App* sim = pipe->add_subcommand("simulate", "Simulate a schedule: timeline, bubble, memory");
  add_shape_options(sim, *a, true);
  add_cost_options(sim, *a);
  sim->add_flag("--json", a->json, "JSON output (per rank busy, bubble, peak activations)");
  sim->add_flag("--timeline-json", a->timeline_json,
                "With --json: include every op's start and end");
  sim->add_option("--chrome-trace", a->chrome_trace, "Write Chrome trace-event JSON (Perfetto)");
  sim->add_option("--svg", a->svg, "Write the timeline as SVG, like Figure 5");
  sim->add_option("--width", a->width, "Columns for the text timeline (default: the terminal)");
  sim->add_option("--cursor", a->cursor,
                  "Mark this time on the timeline; memory bars show it (a timeline wider than "
                  "the terminal shows the window around it)");
  sim->add_option("--zoom", a->zoom,
                  "Columns per time unit (default: as many as fit, at least 1; a longer "
                  "timeline is printed in bands)")
      ->check(CLI::Range(1.0, 16.0));
  sim->add_flag("--no-color", a->no_color, "Plain text even on a terminal");
  sim->callback([a] { run_simulate(*a); });

  CLI::App* cmp =
      pipe->add_subcommand("compare", "All schedules side by side (Table 2, simulated)");
  add_shape_options(cmp, *a, false);
  add_cost_options(cmp, *a);
  cmp->add_flag("--json", a->json, "JSON output");
  cmp->add_flag("--timelines", a->timelines, "Also draw every schedule's timeline on one scale");
  cmp->add_option("--width", a->width, "Columns for the timelines (default: the terminal)");
  cmp->add_option("--zoom", a->zoom, "With --timelines: columns per time unit")
      ->check(CLI::Range(1.0, 16.0));
  cmp->add_flag("--no-color", a->no_color, "Plain text even on a terminal");
  cmp->callback([a] { run_compare(*a); });

  CLI::App* ov = pipe->add_subcommand(
      "overlap", "Figure 4: a forward and a backward chunk overlapped, communication hidden");
  ov->add_option("--config", a->config, "Derive costs from a model config (v3-671b, a path, ...)");
  ov->add_option("--costs", a->block_costs,
                 "Per-component costs, e.g. attn_f=1,mlp_f=2,dispatch_f=1.5,...,pp=0.5");
  ov->add_option("--tokens", a->tokens, "Tokens per micro-batch (with --config)")
      ->capture_default_str();
  ov->add_option("--seq-len", a->seq_len, "Sequence length (with --config)")->capture_default_str();
  ov->add_option("--tflops", a->tflops, "Sustained GPU throughput, TFLOP/s (with --config)")
      ->capture_default_str();
  ov->add_option("--bandwidth", a->bandwidth, "All-to-all bandwidth per GPU, GB/s (with --config)")
      ->capture_default_str();
  ov->add_option("--blocks", a->blocks, "Transformer blocks per chunk")->capture_default_str();
  ov->add_option("--sms", a->sms, "SMs per GPU")->capture_default_str();
  ov->add_option("--comm-sms", a->comm_sms, "SMs given to communication")->capture_default_str();
  ov->add_option("--width", a->width, "Columns (default: the terminal)");
  ov->add_flag("--json", a->json, "JSON output");
  ov->add_flag("--no-color", a->no_color, "Plain text even on a terminal");
  ov->callback([a] { run_overlap(*a); });
}

}  // namespace dsv3::app

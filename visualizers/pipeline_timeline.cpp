#include "visualizers/pipeline_timeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "reference/pipeline/schedule.h"

namespace dsv3::viz {

using pipeline::OpKind;

namespace {
constexpr Color kInk = 16;      // black text on coloured cells
constexpr Color kIdle = 240;    // grey dots for bubbles
constexpr Color kCursor = 231;  // white
}  // namespace

Style pipeline_op_style(OpKind kind, int chunk) {
  // The report's colours: orange forward, green backward, blue backward-for-weights.
  bool light = chunk != 0;
  Style s;
  s.fg = kInk;
  switch (kind) {
    case OpKind::kF:
      s.bg = light ? 222 : 208;
      break;
    case OpKind::kB:
      s.bg = light ? 120 : 34;
      break;
    case OpKind::kBi:
      s.bg = light ? 158 : 78;
      break;
    case OpKind::kW:
      s.bg = light ? 117 : 33;
      break;
    case OpKind::kFB:
      s.bg = light ? 222 : 208;
      break;
  }
  return s;
}

char32_t pipeline_op_glyph(OpKind kind, int chunk) {
  bool lower = chunk != 0;
  switch (kind) {
    case OpKind::kF:
    case OpKind::kFB:
      return lower ? U'f' : U'F';
    case OpKind::kB:
      return lower ? U'b' : U'B';
    case OpKind::kBi:
      return lower ? U'i' : U'I';
    case OpKind::kW:
      return lower ? U'w' : U'W';
  }
  return U'?';
}

std::string xterm_to_hex(Color c) {
  static const int kBase[16][3] = {{0, 0, 0},       {128, 0, 0},   {0, 128, 0},   {128, 128, 0},
                                   {0, 0, 128},     {128, 0, 128}, {0, 128, 128}, {192, 192, 192},
                                   {128, 128, 128}, {255, 0, 0},   {0, 255, 0},   {255, 255, 0},
                                   {0, 0, 255},     {255, 0, 255}, {0, 255, 255}, {255, 255, 255}};
  int r = 0, g = 0, b = 0;
  if (c < 0) {
    r = g = b = 255;
  } else if (c < 16) {
    r = kBase[c][0], g = kBase[c][1], b = kBase[c][2];
  } else if (c < 232) {
    int i = c - 16;
    auto level = [](int v) { return v == 0 ? 0 : 55 + 40 * v; };
    r = level(i / 36), g = level((i / 6) % 6), b = level(i % 6);
  } else {
    r = g = b = 8 + 10 * (c - 232);
  }
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

namespace {

// Fills columns [x0, x1) of row y with one op part: its kind glyph first (so F, B, I and W differ
// in mono and with 8 colours too), then the micro-batch number where it fits.
void draw_part(Canvas& c, int x0, int x1, int y, OpKind kind, int chunk, int mb, bool fb) {
  if (x1 <= x0) return;
  Style st = pipeline_op_style(kind, chunk);
  if (fb) st.attr |= kUnderline;  // the shared border of an overlapped pair
  char32_t g = pipeline_op_glyph(kind, chunk);
  c.fill(x0, y, x1 - x0, 1, U' ', st);
  std::string num = std::to_string(mb);
  const int w = x1 - x0, n = static_cast<int>(num.size());
  c.put(x0, y, g, st);
  if (w >= n + 1) c.text(x0 + 1, y, num, st);
}

std::string fmt_num(double v) {
  if (std::abs(v - std::round(v)) < 1e-9) return fmt::format("{:.0f}", v);
  return fmt::format("{:.2f}", v);
}

struct Layout {
  int label_w, bars_w, plot_w;
  double cpu;  // columns per time unit
  bool windowed;
  double units;  // time units visible
};

Layout layout_of(const pipeline::SimResult& r, const PipelineTimelineOptions& o) {
  Layout l{};
  const int width = std::max(40, o.width);
  l.label_w = r.ranks > 10 ? 4 : 3;
  l.bars_w = o.bars ? (width >= 100 ? 30 : 24) : 0;
  l.plot_w = std::max(10, width - l.label_w - l.bars_w - 1);
  const double span = std::max(r.makespan, 1e-9);
  // Whole columns per time unit, so that equal ops get equal cells (Fig. 5); never fewer than
  // one: squeezing merges ops into unreadable runs, so a wide makespan is windowed instead.
  double cpu =
      o.columns_per_unit > 0 ? o.columns_per_unit : std::max(1.0, std::floor(l.plot_w / span));
  l.cpu = cpu;
  l.windowed = span * cpu > l.plot_w + 1e-9;
  l.units = l.windowed ? l.plot_w / cpu : span;
  return l;
}

}  // namespace

PipelineTimelineWindow pipeline_timeline_window(const pipeline::SimResult& r,
                                                const PipelineTimelineOptions& o) {
  Layout l = layout_of(r, o);
  return {l.cpu, l.units, l.windowed};
}

double pipeline_largest_bubble(const pipeline::SimResult& r) {
  double m = r.max_bubble();
  for (pipeline::ScheduleKind k : pipeline::kAllSchedules) {
    if (k == r.kind || !pipeline::check_constraints(k, r.ranks, r.micro_batches).empty()) continue;
    try {
      m = std::max(m, pipeline::simulate(pipeline::build_schedule(k, r.ranks, r.micro_batches),
                                         r.costs, r.mode)
                          .max_bubble());
    } catch (const std::exception&) {
      // a schedule these costs cannot run: it has no bubble to compare
    }
  }
  return m;
}

Canvas draw_pipeline_timeline(const pipeline::SimResult& r, const PipelineTimelineOptions& o) {
  const int P = r.ranks;
  const int width = std::max(40, o.width);
  const std::string rank_fmt = P > 10 ? "r{:<2} " : "r{} ";
  const Layout lay = layout_of(r, o);
  const int label_w = lay.label_w, plot_w = lay.plot_w;
  const int title_h = o.title ? 1 : 0;
  const int range_h = lay.windowed ? 1 : 0;
  const int legend_h = o.legend ? 2 : 0;  // wraps onto its second line when narrow
  const int height = title_h + 1 + P + range_h + legend_h;
  Canvas c(width, height);

  const double cpu = lay.cpu;
  // The window: whole time units, centred on the cursor unless a start is given.
  double t0 = 0;
  if (lay.windowed) {
    double want = o.view_start ? *o.view_start : o.cursor ? *o.cursor - lay.units / 2 : 0;
    // With a cursor the window may run one unit past the end, so a cursor at the makespan shows.
    double last = std::max(0.0, std::ceil(r.makespan - lay.units + (o.cursor ? 1 / cpu : 0)));
    t0 = std::clamp(std::floor(want), 0.0, last);
  }
  const double t1 = std::min(r.makespan, t0 + lay.units);
  auto col = [&](double t) { return label_w + static_cast<int>(std::lround((t - t0) * cpu)); };
  const int plot_lo = label_w, plot_hi = label_w + plot_w;  // [lo, hi) columns of the plot
  auto clip = [&](int x) { return std::clamp(x, plot_lo, plot_hi); };
  const int plot_end = clip(col(r.makespan));
  // With a shared bubble scale (several schedules drawn together) the bars line up at its end.
  const int bars_x =
      lay.windowed
          ? plot_hi + 2
          : std::min(plot_hi, std::max(plot_end, o.bubble_scale > 0 ? col(o.bubble_scale) : 0)) + 2;

  Style bold;
  bold.attr = kBold;
  Style dim;
  dim.fg = kIdle;
  if (o.title) {
    // DualPipeV folds its 2P stages into a V on P ranks; say so rather than leave "P ranks".
    std::string shape = r.kind == pipeline::ScheduleKind::kDualPipeV
                            ? fmt::format("{} stages on {} rank{}", 2 * P, P, P == 1 ? "" : "s")
                            : fmt::format("{} rank{}", P, P == 1 ? "" : "s");
    std::string head = fmt::format("{} · {} · {} micro-batches · ",
                                   pipeline::schedule_label(r.kind), shape, r.micro_batches);
    std::string span = fmt::format("makespan {}", fmt_num(r.makespan));
    std::string costs = pipeline::to_string(r.costs), mode(pipeline::sim_mode_id(r.mode));
    // The costs and the mode give way before the makespan is cut.
    std::string title = head + costs + " · " + span + " · " + mode;
    if (display_width(title) > width) title = head + costs + " · " + span;
    if (display_width(title) > width) title = head + span;
    c.text(0, 0, title, bold);
  }

  // Time axis: a tick every `step` units, labelled when there is room.
  const int axis_y = title_h;
  double step = 1;
  for (double s : {1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0}) {
    step = s;
    if (s * cpu >= 6) break;
  }
  for (double t = std::max(0.0, std::ceil(t0 / step - 1e-9) * step) + 0.0; t <= t1 + 1e-9;
       t += step) {
    int x = col(t);
    if (x >= plot_end) break;
    c.put(x, axis_y, U'┬', dim);
    std::string lab = fmt_num(t);
    if (x + 1 + static_cast<int>(lab.size()) <= plot_end) c.text(x + 1, axis_y, lab, dim);
  }

  double bubble_max = o.bubble_max > 0 ? o.bubble_max : 0;
  if (o.bars && bubble_max <= 0) bubble_max = pipeline_largest_bubble(r);
  bubble_max = std::max(bubble_max, 1e-9);
  int mem_scale = o.memory_scale > 0 ? o.memory_scale : std::max(1, r.max_peak_activations());
  const int bw = width >= 100 ? 8 : 6;  // bubble bar cells
  const int mem_off = bw + (width >= 100 ? 7 : 5);
  for (int k = 0; k < P; ++k) {
    const int y = axis_y + 1 + k;
    c.text(0, y, fmt::format(fmt::runtime(rank_fmt), k), bold);
    for (int x = plot_lo; x < plot_end; ++x) c.put(x, y, U'·', dim);
    const auto& rr = r.ranks_result[k];
    for (const pipeline::OpTiming& t : rr.timeline) {
      if (t.end <= t0 || t.start >= t1) continue;
      int x0 = clip(col(t.start)), x1 = clip(col(t.end));
      if (t.op.kind == OpKind::kFB) {
        int xs = clip(col(t.fb_split()));
        draw_part(c, x0, xs, y, OpKind::kF, t.op.chunk, t.op.mb, true);
        draw_part(c, xs, x1, y, OpKind::kB, t.op.chunk_b, t.op.mb_b, true);
      } else {
        draw_part(c, x0, x1, y, t.op.kind, t.op.chunk, t.op.mb, false);
      }
    }
    if (o.bars) {
      // bubble: idle time against the largest bubble of any schedule here; mem: activations
      // held (at the cursor, or peak).
      int bx = bars_x;
      int fill = static_cast<int>(std::lround(bw * std::min(1.0, rr.bubble / bubble_max)));
      if (rr.bubble > 1e-9) fill = std::max(fill, 1);
      Style bar;
      bar.fg = 203;
      for (int i = 0; i < bw; ++i) c.put(bx + i, y, i < fill ? U'█' : U'░', i < fill ? bar : dim);
      c.text(bx + bw + 1, y, fmt_num(rr.bubble));
      int held = o.cursor ? r.activations_at(k, *o.cursor) : rr.peak_activations;
      int mx = bx + mem_off;
      Style mem;
      mem.fg = 141;
      int mw = std::max(0, std::min(16, width - mx - 4));
      int mfill = static_cast<int>(std::lround(mw * std::min(1.0, double(held) / mem_scale)));
      for (int i = 0; i < mw; ++i) c.put(mx + i, y, i < mfill ? U'▮' : U' ', mem);
      c.text(mx + mw + 1, y, fmt::format("{}", held));
    }
  }

  if (o.cursor) {
    int x = col(*o.cursor);
    if (x >= plot_lo && x < plot_hi) {
      Style cs;
      cs.fg = kCursor;
      cs.attr = kBold;
      c.put(x, axis_y, U'▼', cs);
      for (int k = 0; k < P; ++k) c.at(x, axis_y + 1 + k).style.attr |= kReverse;
    }
  }
  if (o.bars) {
    int bx = bars_x;
    c.text(bx, axis_y, "bubble", dim);
    c.text(bx + mem_off, axis_y, o.cursor ? "act. now" : "act. peak", dim);
  }

  if (lay.windowed) {
    // Which part of the makespan the window shows: the whole run as a thin line, the visible
    // part thick, arrows where more lies beyond the edges.
    const int y = axis_y + 1 + P;
    const double span = std::max(r.makespan, 1e-9);
    auto ov = [&](double t) {
      return plot_lo + static_cast<int>(std::lround(t / span * (plot_w - 1)));
    };
    Style on = bold;
    for (int x = plot_lo; x < plot_hi; ++x) c.put(x, y, U'─', dim);
    for (int x = ov(t0); x <= ov(t1) && x < plot_hi; ++x) c.put(x, y, U'━', on);
    if (t0 > 0) c.put(0, y, U'◀', on);
    if (t1 < r.makespan - 1e-9) c.put(plot_hi, y, U'▶', on);
    if (o.cursor) {
      Style cs;
      cs.fg = kCursor;
      cs.attr = kBold;
      c.put(ov(std::clamp(*o.cursor, 0.0, r.makespan)), y, U'┼', cs);
    }
    std::string shown =
        fmt::format("time {}–{} of {}", fmt_num(t0), fmt_num(t1), fmt_num(r.makespan));
    c.text(plot_hi + 2, y, shown, dim);
  }

  if (o.legend) {
    int y = axis_y + 1 + P + range_h;
    int x = 0;
    auto wrap = [&](int w) {
      if (x + w > width) {
        ++y;
        x = 0;
      }
    };
    auto key = [&](OpKind kind, int chunk, std::string_view text) {
      wrap(2 + display_width(text));
      Style st = pipeline_op_style(kind, chunk);
      c.put(x, y, pipeline_op_glyph(kind, chunk), st);
      x = c.text(x + 2, y, text) + 2;
    };
    bool two =
        r.kind == pipeline::ScheduleKind::kDualPipe || r.kind == pipeline::ScheduleKind::kDualPipeV;
    key(OpKind::kF, 0, "forward");
    if (two) key(OpKind::kF, 1, "forward, chunk 1");
    key(OpKind::kB, 0, "backward");
    if (two) key(OpKind::kB, 1, "backward, chunk 1");
    key(OpKind::kBi, 0, "input grad (Bi)");
    key(OpKind::kW, 0, "weight grad (W)");
    if (two) {
      wrap(17);
      Style u = pipeline_op_style(OpKind::kF, 0);
      u.attr |= kUnderline;
      c.put(x, y, U'F', u);
      Style ub = pipeline_op_style(OpKind::kB, 1);
      ub.attr |= kUnderline;
      c.put(x + 1, y, U'b', ub);
      x = c.text(x + 3, y, "overlapped F&B") + 2;
    }
    wrap(6);
    c.text(x, y, "· idle", dim);
  }
  return c;
}

}  // namespace dsv3::viz

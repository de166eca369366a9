#include "visualizers/mtp_panel.h"

#include <fmt/format.h>

#include <algorithm>

namespace dsv3::viz {

namespace {

// The explorer's palette (xterm-256 indices), kept local so this panel stands alone.
namespace style {
constexpr Style kPlain{};
constexpr Style kDim{kDefault, kDefault, viz::kDim};
constexpr Style kBold{kDefault, kDefault, viz::kBold};
constexpr Style kLabel{245, kDefault, viz::kNone};
constexpr Style kAccent{75, kDefault, viz::kBold};
constexpr Style kGood{114, kDefault, viz::kNone};
constexpr Style kBad{203, kDefault, viz::kBold};
constexpr Style kWarn{221, kDefault, viz::kNone};
constexpr Style kGenerated{80, kDefault, viz::kNone};
constexpr Style kFrame{240, kDefault, viz::kNone};

// Red (low) .. yellow .. green (high) acceptance.
Color rate_color(double v) {
  return v < 0.34 ? 203 : v < 0.67 ? 221 : 114;
}

// A bar of `width` cells filled to fraction v with eighth-blocks.
std::string hbar(double v, int width) {
  static const char* part[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  const int eighths = static_cast<int>(std::clamp(v, 0.0, 1.0) * width * 8 + 0.5);
  std::string out;
  for (int i = 0; i < eighths / 8; ++i) out += "█";
  return out + part[eighths % 8];
}

// Text clipped to max_width cells, ending with '…' when cut; returns the next column.
int text_clip(Canvas& c, int x, int y, const std::string& utf8, int max_width, Style s) {
  if (max_width <= 0) return x;
  std::u32string u = utf8_decode(utf8);
  if (static_cast<int>(u.size()) <= max_width) return c.text(x, y, utf8, s);
  for (int i = 0; i < max_width - 1; ++i) c.put(x + i, y, u[i], s);
  c.put(x + max_width - 1, y, U'…', s);
  return x + max_width;
}
}  // namespace style

std::string show(const MtpPanelOptions& opt, int32_t t) {
  return opt.token_text ? opt.token_text(t) : std::to_string(t);
}

// ".91" style probabilities in three cells.
std::string prob3(double p) {
  return p >= 0.995 ? "1.0" : fmt::format(".{:02d}", static_cast<int>(p * 100 + 0.5));
}

}  // namespace

Canvas mtp_panel(const std::vector<model::SpecStep>& steps, const model::SpecStats& stats,
                 const MtpPanelOptions& opt, int width, int height) {
  Canvas c(width, height);
  if (width < 20 || height < 3) return c;
  int y = 0;
  // Title and the headline numbers.
  int x = c.text(0, y, "MTP speculative decoding", style::kAccent);
  x = c.text(x + 2, y, fmt::format("D={} {}", opt.draft_depth, opt.greedy ? "greedy" : "sampled"),
             style::kLabel);
  std::string head =
      fmt::format("accept {:.0f}% · {:.2f} tok/step · {} steps", 100 * stats.acceptance_rate(),
                  stats.tokens_per_step(), stats.steps);
  if (x + 2 + display_width(head) <= width)
    c.text(width - display_width(head), y, head, style::kBold);
  ++y;

  // One bar per depth: acceptance so far (the paper reports 85-90% at depth 1 for V3).
  const int bar_w = std::clamp(width - 32, 4, 30);
  for (int k = 1; k <= opt.draft_depth && y < height - 2; ++k, ++y) {
    const int64_t prop = k <= static_cast<int>(stats.proposed.size()) ? stats.proposed[k - 1] : 0;
    const int64_t acc = k <= static_cast<int>(stats.accepted.size()) ? stats.accepted[k - 1] : 0;
    const double r = stats.acceptance_rate(k);
    int cx = c.text(1, y, fmt::format("depth {}", k), style::kLabel);
    c.fill(cx + 1, y, bar_w, 1, U'░', style::kDim);
    c.text(cx + 1, y, style::hbar(r, bar_w), Style{style::rate_color(r), kDefault, kNone});
    c.text(cx + 2 + bar_w, y, fmt::format("{:>3.0f}%  {}/{}", 100 * r, acc, prop));
  }
  if (y >= height) return c;
  c.fill(0, y, width, 1, U'─', style::kFrame);
  ++y;
  if (y >= height) return c;
  // Column header.
  const int drafts_x = 16;
  const int emitted_w = std::max(8, width / 5);
  const int emitted_x = std::max(drafts_x + 8, width - emitted_w - 6);
  c.text(0, y, " pos  x_n", style::kLabel);
  c.text(drafts_x, y,
         opt.greedy ? "drafts  (q draft · p target)" : "drafts  (q draft · p target = accept prob)",
         style::kLabel);
  c.text(emitted_x, y, "emitted", style::kLabel);
  c.text(width - 5, y, " run", style::kLabel);
  ++y;

  // Running acceptance rate after each step (prefill proposes nothing).
  std::vector<double> running(steps.size(), 0.0);
  int64_t prop = 0, acc = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    for (const model::DraftToken& d : steps[i].drafts) {
      ++prop;
      acc += d.accepted ? 1 : 0;
    }
    running[i] = prop ? static_cast<double>(acc) / static_cast<double>(prop) : 0.0;
  }

  const int rows = height - y;
  const size_t first = steps.size() > static_cast<size_t>(rows) ? steps.size() - rows : 0;
  for (size_t i = first; i < steps.size() && y < height; ++i, ++y) {
    const model::SpecStep& s = steps[i];
    c.text(0, y, fmt::format("{:>4}", s.position), style::kDim);
    style::text_clip(c, 5, y, show(opt, s.last_token), drafts_x - 6, style::kPlain);
    int cx = drafts_x;
    if (s.prefill) {
      c.text(cx, y, "prefill", style::kDim);
    } else if (s.drafts.empty()) {
      c.text(cx, y, "(no drafts: token budget)", style::kDim);
    }
    bool rejected_seen = false;
    for (const model::DraftToken& d : s.drafts) {
      if (cx >= emitted_x - 2) break;
      const bool verified = !rejected_seen;  // drafts after the first rejection are never examined
      const Style st = d.accepted ? style::kGood : verified ? style::kBad : style::kDim;
      cx = c.text(cx, y, d.accepted ? "✓" : verified ? "✗" : "·", st);
      cx = style::text_clip(c, cx, y, show(opt, d.token), 8, st);
      std::string probs = verified
                              ? fmt::format(" {}·{}", prob3(d.draft_prob), prob3(d.target_prob))
                              : fmt::format(" {}", prob3(d.draft_prob));
      if (cx + display_width(probs) < emitted_x - 1) cx = c.text(cx, y, probs, style::kLabel);
      cx += 2;
      if (!d.accepted) rejected_seen = true;
    }
    // Emitted tokens: accepted drafts, then the correction (or the bonus, underlined).
    int ex = emitted_x;
    for (size_t j = 0; j < s.emitted.size() && ex < width - 6; ++j) {
      const bool last = j + 1 == s.emitted.size() && !s.prefill;
      Style st = style::kGenerated;
      if (last && s.bonus) st.attr = kUnderline;
      if (last && !s.bonus && static_cast<int>(j) == s.accepted) st = style::kWarn;
      ex = style::text_clip(c, ex, y, show(opt, s.emitted[j]), width - 6 - ex, st) + 1;
    }
    if (!s.prefill) c.text(width - 4, y, fmt::format("{:>3.0f}%", 100 * running[i]), style::kDim);
  }
  return c;
}

}  // namespace dsv3::viz

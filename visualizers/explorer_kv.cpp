// KV-cache panel: MLA's compressed cache (DeepSeek-V2 §2.1, V3 eq. 1 and 3) against ordinary
// attention with the same head sizes, now and at real scale.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "reference/accounting/accounting.h"
#include "reference/model/kv_cache.h"
#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_style.h"

namespace dsv3::viz {

namespace {
namespace st = style;

using Form = KvForm;
}  // namespace

// The cache sizes come from reference/accounting (DeepSeek-V2 Table 1), with the one definition
// kv_elements_per_layer documents: MHA/GQA/MQA cache a key and a value of d_h = qk_nope_head_dim
// per KV head (2 n_h d_h, 2 n_g d_h, 2 d_h); MLA caches one latent c^KV (d_c) and one shared
// RoPE key k^R (d^R_h); "naive" is what the un-absorbed MLA holds: every head's decompressed key
// (d_h nope + d^R_h rope) and value (d_v). `dsv3 info` and the `kv` command show the same rows.
std::vector<KvForm> kv_forms(const model::Config& c) {
  const int64_t h = c.num_attention_heads, g = accounting::default_gqa_groups(c);
  const int64_t dh = c.qk_nope_head_dim;
  accounting::KvElements e = accounting::kv_elements_per_layer(c, g);
  return {
      {"MLA", fmt::format("c^KV {} + k^R {}", c.kv_lora_rank, c.qk_rope_head_dim), e.mla},
      {"MQA", fmt::format("K, V {} × 1", dh), e.mqa},
      {fmt::format("GQA-{}", g), fmt::format("K, V {} × {}", dh, g), e.gqa},
      {"MHA", fmt::format("K, V {} × {}", dh, h), e.mha},
      {"naive", fmt::format("K {}+{}, V {} × {}", dh, c.qk_rope_head_dim, c.v_head_dim, h),
       e.mla_naive},
  };
}

namespace {
auto forms(const model::Config& c) {
  return kv_forms(c);
}

// What the rows mean (shown when the panel has room, and always by the `kv` command's panel).
std::vector<std::string> form_notes(const model::Config& c, const model::Config* real) {
  std::string dims = fmt::format("{}", c.qk_nope_head_dim);
  if (real && real->qk_nope_head_dim != c.qk_nope_head_dim)
    dims += fmt::format(" ({} at real scale)", real->qk_nope_head_dim);
  return {fmt::format("MHA/GQA/MQA: each KV head caches K and V of d_h = {}", dims),
          "naive: un-absorbed MLA caches every head's K (nope + RoPE) and V"};
}
}  // namespace

Canvas kv_panel(const ExplorerView& v, const model::Config* real, int w, int h) {
  Canvas c(w, h > 0 ? h : 200);
  if (!v.config) return c;
  const model::Config& cfg = *v.config;
  auto fs = forms(cfg);
  int64_t tokens = v.has_trace() ? v.cursor + 1 : 0;
  int64_t layers = cfg.num_hidden_layers;
  int64_t bpe = v.kv_bytes_per_element;
  int y = 0;
  st::text_clip(
      c, 0, y++,
      fmt::format(
          "MLA caches c^KV (d_c = {}) + k^R (d^R_h = {}): {} values per token per layer (eq. 1, 3)",
          cfg.kv_lora_rank, cfg.qk_rope_head_dim, fs[0].per_token_layer),
      w, st::kBold);
  int64_t held_elems = v.has_trace() && !v.trace().layers.empty()
                           ? v.trace().layers[0].cache_elements_per_token
                           : fs[0].per_token_layer;
  int64_t held = 0;
  if (v.has_trace())
    for (const auto& lt : v.trace().layers) held += lt.cache_bytes;
  st::text_clip(
      c, 0, y++,
      fmt::format("held now ({} form): {} tokens × {} layers × {} values × {} B = {}", v.attn_impl,
                  tokens, layers, held_elems, bpe, st::human_bytes(static_cast<double>(held))),
      w, v.attn_impl == "naive" ? st::kWarn : st::kGood);
  if (v.attn_impl == "naive")
    st::text_clip(c, 0, y++,
                  "(the naive form caches every head's K and V; press a for the absorbed form)", w,
                  st::kDim);
  ++y;
  // This session's tokens under each form.
  int bar_w = std::max(4, w - 52);
  c.text(0, y, "form", st::kLabel);
  c.text(8, y, "cached per token", st::kLabel);
  c.text(26, y, "values", st::kLabel);
  c.text(34, y, fmt::format("{} tokens", tokens), st::kLabel);
  c.text(46 + bar_w, y, "× MLA", st::kLabel);
  ++y;
  int64_t biggest = fs.back().per_token_layer;
  for (const Form& f : fs) {
    double bytes = static_cast<double>(tokens * layers * f.per_token_layer * bpe);
    bool mla = f.name == "MLA";
    c.text(0, y, f.name, mla ? st::kAccent : st::kPlain);
    st::text_clip(c, 8, y, f.detail, 17, st::kLabel);
    c.text(26, y, fmt::format("{:>6}", f.per_token_layer));
    c.text(34, y, fmt::format("{:>10}", st::human_bytes(bytes)));
    c.text(46, y, st::hbar(static_cast<double>(f.per_token_layer) / biggest, bar_w),
           mla ? Style{114, kDefault, kNone} : Style{68, kDefault, kNone});
    c.text(46 + bar_w, y,
           fmt::format("{:>5.1f}", static_cast<double>(f.per_token_layer) / fs[0].per_token_layer));
    ++y;
  }
  if (v.has_trace() && y < c.height()) {
    std::string per = "per layer now:";
    for (const auto& lt : v.trace().layers)
      per +=
          fmt::format("  L{} {}", lt.layer, st::human_bytes(static_cast<double>(lt.cache_bytes)));
    st::text_clip(c, 0, y++, per, w, st::kDim);
  }
  if (real && y + 3 <= c.height()) {
    ++y;
    auto rf = forms(*real);
    st::text_clip(
        c, 0, y++,
        fmt::format("At real scale: {} ({} layers, BF16 cache = 2 B per value)",
                    real->name.empty() ? "DeepSeek-V3" : real->name, real->num_hidden_layers),
        w, st::kBold);
    int cw = std::max(10, (w - 9) / static_cast<int>(rf.size()));
    c.text(0, y, "context", st::kLabel);
    for (size_t i = 0; i < rf.size(); ++i)
      st::text_clip(c, 9 + static_cast<int>(i) * cw, y,
                    fmt::format("{} ({})", rf[i].name, rf[i].per_token_layer), cw - 1,
                    i == 0 ? st::kAccent : st::kLabel);
    ++y;
    for (int64_t ctx : std::array<int64_t, 3>{4096, 32768, 131072}) {
      if (y >= c.height()) break;
      c.text(0, y, st::human_count(static_cast<double>(ctx)));
      for (size_t i = 0; i < rf.size(); ++i) {
        double bytes =
            static_cast<double>(ctx) * real->num_hidden_layers * rf[i].per_token_layer * 2.0;
        c.text(9 + static_cast<int>(i) * cw, y, st::human_bytes(bytes),
               i == 0 ? st::kGood : st::kPlain);
      }
      ++y;
    }
  }
  // The definitions of the rows, when there is room for both lines.
  if (y + 3 <= c.height()) {
    ++y;
    for (const std::string& note : form_notes(cfg, real))
      st::text_clip(c, 0, y++, note, w, st::kDim);
  }
  return h > 0 ? c : st::crop_rows(c, st::used_rows(c));
}

}  // namespace dsv3::viz

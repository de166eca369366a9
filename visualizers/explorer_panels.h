// The explorer's panels: pure functions ExplorerView -> Canvas of the requested size. A height
// of 0 means "natural height" (the REPL and `dsv3 exec` print panels as they come out).
// Panels draw only their content; the screen (explorer_screen.h) adds frames and titles.
#pragma once

#include <string>
#include <vector>

#include "visualizers/canvas.h"
#include "visualizers/explorer_view.h"

namespace dsv3::viz {

// A clickable area of a drawn canvas, in that canvas' coordinates.
struct Hit {
  enum Kind { kTab, kToken, kLayer, kExpert };
  int x = 0, y = 0, w = 1, h = 1;
  Kind kind = kTab;
  int value = 0;
  int value2 = -1;  // kExpert: the layer of the clicked cell
  bool contains(int px, int py) const { return px >= x && px < x + w && py >= y && py < y + h; }
};

// 1. Routing: layers x experts grid for the current token, then the selected layer's gate
//    step by step (eq. 15 scores, eq. 16 biased selection within kept groups, eq. 13 weights).
Canvas routing_panel(const ExplorerView& v, int w, int h, std::vector<Hit>* hits = nullptr);
// 2. Expert load: tokens per expert so far, biases, MaxVio per layer and over time.
Canvas load_panel(const ExplorerView& v, int w, int h, std::vector<Hit>* hits = nullptr);
// 3. KV cache: bytes held now (MLA) beside MHA / GQA / MQA of the same head sizes, and at the
//    scale of `real` (the 671B config) for 4K, 32K and 128K tokens.
Canvas kv_panel(const ExplorerView& v, const model::Config* real, int w, int h);
// MLA's cache and the ordinary-attention baselines with the same head sizes, in that order:
// MLA, MQA, GQA-g, MHA.
struct KvForm {
  std::string name;         // "MLA", "GQA-8"
  std::string detail;       // "c^KV 512 + k^R 64"
  int64_t per_token_layer;  // cached values per token per layer
};
std::vector<KvForm> kv_forms(const model::Config& c);

// 4. Attention: each head's softmax weights over past positions for the selected layer.
Canvas attention_panel(const ExplorerView& v, int w, int h);
// 5. Pipeline, 7. MTP and 8. FP8 are drawn by the session (ExplorerView::pipeline_panel, ...);
// a view without them (a bare view in tests) gets this one-line note instead.
Canvas unavailable_panel(const std::string& what, int w, int h);
// 6. Logits: the most probable next tokens.
Canvas logits_panel(const ExplorerView& v, int w, int h);

// Display form of a token's text: printable ASCII as is, space as '␣', others escaped.
std::string token_label(const ExplorerView& v, int position);

}  // namespace dsv3::viz

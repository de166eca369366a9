// The explorer's whole screen as one Canvas: header, panel tabs, token strip, panels, status
// line, and the overlays (help, command output, too-small terminal). The TUI only blits it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "visualizers/canvas.h"
#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_view.h"

namespace dsv3::viz {

inline constexpr int kMinWidth = 80;
inline constexpr int kMinHeight = 24;

enum class Panel { kRouting, kLoad, kKv, kAttention, kPipeline, kLogits, kMtp, kFp8, kTrain };
inline constexpr int kPanelCount = 9;
const char* panel_title(Panel p);
const char* panel_short_title(Panel p);  // the tab bar's form on narrow terminals

struct Popup {
  std::string title;
  Canvas body;
  int scroll = 0;  // first body row shown
};

struct ScreenState {
  Panel active = Panel::kRouting;
  bool full = false;  // `z`: the active panel alone, full width, even where four would fit
  bool help = false;
  const std::vector<KeyHelp>* keys = nullptr;  // the help overlay's table
  std::string message;                         // last result or error, one line
  bool message_error = false;
  std::string input;       // ":route 1" or "/the" while typing; empty otherwise
  int input_cursor = 0;    // in code points of `input`
  std::string input_hint;  // completions of the word being typed, shown dim after the input
  std::string hints;       // the keys that matter now
  std::string progress;    // "computing 3/16 · position 9 · Esc stops"
  std::optional<Popup> popup;
  const model::Config* real = nullptr;  // the 671B config for the KV panel
};

struct Screen {
  Canvas canvas;
  std::vector<Hit> hits;  // in screen coordinates
  int cursor_x = -1;      // where the terminal cursor goes (typing), or -1
  int cursor_y = -1;
};

Screen compose_screen(const ExplorerView& v, const ScreenState& s, int w, int h);

// The single-panel form used by the REPL, `dsv3 exec` and snapshot tests.
Canvas panel_canvas(const ExplorerView& v, Panel p, const model::Config* real, int w, int h,
                    std::vector<Hit>* hits = nullptr);

// Pieces, exposed for tests.
Canvas header_bar(const ExplorerView& v, int w);
Canvas token_strip(const ExplorerView& v, int w, std::vector<Hit>* hits = nullptr);
Canvas help_overlay(const std::vector<KeyHelp>& keys, int w, int h);
Canvas size_message(int w, int h, int need_w, int need_h);

}  // namespace dsv3::viz

#define NCURSES_WIDECHAR 1
#include "app/explorer/tui.h"

#include <curses.h>
#include <fmt/format.h>
#include <langinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <clocale>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "app/commands/registry.h"
#include "app/explorer/curses_painter.h"
#include "app/explorer/session.h"
#include "app/explorer/tui_impl.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {

const std::vector<viz::KeyHelp>& key_table() {
  static const std::vector<viz::KeyHelp> keys = {
      {"→ l Space", "step forward: the next position (computed when new)"},
      {"← h  Home End", "step back (traces kept, nothing recomputed) · first / last position"},
      {"↑ ↓  k j", "select the layer shown in detail"},
      {"[ ]", "select the previous / next expert"},
      {"Tab S-Tab  z", "next / previous panel; z: active panel alone, full width"},
      {"1 … 9", "Routing, Load, KV, Attention, Pipeline, Logits, MTP, FP8, Train"},
      {"g", "generate 16 tokens (Esc stops; :generate N for more)"},
      {"a", "toggle attention: absorbed (caches c^KV, k^R) / naive (K, V)"},
      {"b  + -", "Load: balancing, γ up/down; MTP: + - draft depth; Pipeline: + - zoom"},
      {"m", "MTP: one speculative step (draft, verify in one pass, accept)"},
      {"p s  + -  b w x", "Train: pause/run, one step, γ ×2 ÷2, balancing mode, save, stop"},
      {", . < > s", "Pipeline: time cursor ±1 / ±10, next schedule; FP8: , . linear"},
      {":", "command prompt: Tab completes, ↑↓ history; :lesson N plays lesson N"},
      {"/  n", "find text in the tokens and jump there; n finds the next"},
      {"? F1  Esc", "this help; Esc closes help, output or prompt"},
      {"mouse", "click a tab, a token, a layer or an expert"},
      {"q Ctrl-C  Ctrl-Z", "quit · suspend to the shell (fg resumes)"},
  };
  return keys;
}

std::string pick_colour_mode(const std::string& setting, bool has_colors, int colors) {
  const char* no = std::getenv("NO_COLOR");
  if (setting == "mono" || (no && *no) || !has_colors) return "mono";
  if (setting == "8") return "8";
  if (setting == "256") return colors >= 256 ? "256" : "8";
  return colors >= 256 ? "256" : "8";
}

namespace tui_impl {

std::atomic<int> g_signal{0};

namespace {

void on_signal(int sig) {
  g_signal = sig;
}

// Restores the terminal whatever way the explorer ends.
struct CursesGuard {
  CursesGuard() {
    std::atexit([] {
      if (!isendwin()) endwin();
    });
  }
  ~CursesGuard() {
    if (!isendwin()) endwin();
  }
};

}  // namespace

void Tui::init_curses() {
  std::setlocale(LC_ALL, "");
  painter_.set_utf8(std::strcmp(nl_langinfo(CODESET), "UTF-8") == 0);
  initscr();
  raw();  // Ctrl-C arrives as a key: quitting goes through the normal, restoring path
  noecho();
  nonl();
  keypad(stdscr, TRUE);
  set_escdelay(25);
  curs_set(0);
  mousemask(BUTTON1_PRESSED | BUTTON4_PRESSED | BUTTON5_PRESSED, nullptr);
  mouseinterval(0);
  timeout(200);  // wake up to notice signals
}

std::string Tui::hints() const {
  if (st_.help) return "Esc close";
  if (st_.popup) return "↑↓ scroll · Esc close";
  switch (st_.active) {
    case viz::Panel::kLoad:
      return "b balancing  + - γ  → step  Tab panel  ? help  q quit";
    case viz::Panel::kPipeline:
      return ", . < > time  + - zoom  s schedule  Tab panel  ? help  q quit";
    case viz::Panel::kMtp:
      return "m spec step  + - depth  Tab panel  ? help  q quit";
    case viz::Panel::kFp8:
      return ", . linear  ↑↓ layer  ←→ token  ? help  q quit";
    case viz::Panel::kTrain:
      return "p pause/run  s step  + - γ  b balance  w save  o weights  x stop  q quit";
    default:
      return "→ step  ← back  ↑↓ layer  Tab panel  : cmd  ? help  q quit";
  }
}

void Tui::draw() {
  // `set colour ...` may have changed the setting since the last frame.
  if (applied_colour_setting_ != s_.settings().colour) {
    applied_colour_setting_ = s_.settings().colour;
    bool can = has_colors();
    if (can && !colour_started_) {
      start_color();  // COLORS is known only after this
      use_default_colors();
      colour_started_ = true;
    }
    painter_.set_mode(pick_colour_mode(applied_colour_setting_, can, can ? COLORS : 0));
  }
  st_.hints = hints();
  st_.keys = &key_table();
  st_.real = s_.real_config();
  st_.input = mode_ == Mode::kNormal ? "" : (mode_ == Mode::kCommand ? ":" : "/") + input_;
  st_.input_hint.clear();
  if (mode_ == Mode::kCommand && !input_.empty()) {
    // Show what Tab would offer while typing (command names, flags, values).
    Completion c = registry().complete(s_, input_, input_.size());
    const std::string word = input_.substr(std::min(c.start, input_.size()));
    if (!c.paths && !(c.candidates.size() == 1 && c.candidates[0] == word))
      for (const std::string& x : c.candidates) st_.input_hint += x + "  ";
  }
  st_.input_cursor = mode_ == Mode::kNormal
                         ? 0
                         : 1 + viz::display_width(input_.substr(0, std::min(pos_, input_.size())));
  viz::ExplorerView v = s_.view();
  viz::Screen screen = viz::compose_screen(v, st_, COLS, LINES);
  too_small_ = COLS < viz::kMinWidth || LINES < viz::kMinHeight;
  hits_ = std::move(screen.hits);
  erase();
  painter_.blit(screen.canvas);
  if (screen.cursor_x >= 0) {
    curs_set(1);
    move(screen.cursor_y, screen.cursor_x);
  } else {
    curs_set(0);
  }
  refresh();
}

bool Tui::progress(int done, int total) {
  st_.progress = fmt::format("computing {}/{} · position {} · Esc stops", done, total, s_.cursor());
  draw();
  st_.progress.clear();
  // Read what was typed meanwhile without waiting. Esc stops the computation and is used up; any
  // other key is typed ahead: it waits its turn, handled after the computation in the order typed
  // (`:step 2` Enter `:back 1` Enter typed in one go does both). Ctrl-C stops and then quits.
  bool stop = false;
  nodelay(stdscr, TRUE);
  for (;;) {
    TypedKey k;
    int r = get_wch(&k.key);
    if (r == ERR) break;
    k.fn = r == KEY_CODE_YES;
    if (k.fn && k.key == KEY_RESIZE) continue;  // the next frame is drawn at the new size
    if (k.fn && k.key == KEY_MOUSE && getmouse(&k.mouse) != OK) continue;
    if (!k.fn && k.key == 27) {
      stop = true;
      continue;
    }
    if (!k.fn && k.key == 3) stop = true;
    typed_ahead_.push_back(k);
  }
  timeout(200);
  return !stop && g_signal == 0;
}

int Tui::next_key(wint_t* key) {
  if (typed_ahead_.empty()) return get_wch(key);
  TypedKey k = typed_ahead_.front();
  typed_ahead_.pop_front();
  if (k.fn && k.key == KEY_MOUSE) {
    ungetmouse(&k.mouse);  // queues KEY_MOUSE with its event for handle_mouse's getmouse
    return get_wch(key);
  }
  *key = k.key;
  return k.fn ? KEY_CODE_YES : OK;
}

void Tui::select_layer(int delta) {
  int n = static_cast<int>(s_.config().num_hidden_layers);
  s_.set_layer(std::clamp(s_.layer() + delta, 0, n - 1));
}

void Tui::select_expert(int delta) {
  int n = static_cast<int>(s_.config().n_routed_experts);
  if (n == 0) return;
  int e = s_.expert() < 0 ? (delta > 0 ? 0 : n - 1) : (s_.expert() + delta + n) % n;
  s_.set_expert(e);
  say(fmt::format("expert {} selected", e));
}

void Tui::show_output(const Output& o, const std::string& title) {
  if (o.panel) {
    st_.active = *o.panel;
    say(o.text.empty() ? title : o.text);
    return;
  }
  bool multi_line = o.text.find('\n') != std::string::npos && o.text.find('\n') + 1 < o.text.size();
  if (!o.canvas && !multi_line) {
    std::string t = o.text;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    say(t.empty() ? "ok" : t);
    return;
  }
  // A popup holding the canvas, then the text.
  std::vector<std::string> lines;
  std::istringstream in(o.text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  int w = o.canvas ? o.canvas->width() : 0;
  for (const auto& l : lines) w = std::max(w, viz::display_width(l));
  w = std::min(w, COLS - 8);
  int h = (o.canvas ? o.canvas->height() : 0) + static_cast<int>(lines.size());
  viz::Canvas body(std::max(w, 1), std::max(h, 1));
  int y = 0;
  if (o.canvas) {
    body.blit(*o.canvas, 0, 0);
    y = o.canvas->height();
  }
  for (const auto& l : lines) body.text(0, y++, l);
  st_.popup = viz::Popup{title, std::move(body), 0};
  say("");
}

void Tui::run_command(const std::string& line) {
  if (line.find_first_not_of(' ') == std::string::npos) return;
  if (history_.empty() || history_.back() != line) history_.push_back(line);
  for (const std::string& stmt : split_statements(line)) {
    try {
      Output o = registry().run(s_, stmt, Context{std::max(40, COLS - 8)});
      if (o.quit) {
        g_signal = -1;  // leave through the main loop
        return;
      }
      show_output(o, stmt);
    } catch (const std::exception& e) {
      say(e.what(), true);
      return;
    }
  }
}

void Tui::suspend() {
  endwin();               // the shell gets its terminal back as it was
  std::raise(SIGTSTP);    // stops here until SIGCONT (`fg`)
  reset_prog_mode();      // and back to the explorer's modes
  clearok(stdscr, TRUE);  // the screen may hold anything now: repaint all of it
  say("resumed");
}

int Tui::run() {
  CursesGuard guard;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{}, old_hup{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  init_curses();
  s_.set_keys_shown(true);  // the panels name the explorer's keys while it runs
  say("new here? :lesson 1 plays the first lesson here · ? lists every key");
  s_.set_progress_hook([this](int done, int total) { return progress(done, total); });
  int status = 0;
  try {
    while (g_signal == 0) {
      draw();
      wint_t key = 0;
      // While a run trains, wake up often to redraw its newest snapshot (keys still wake at once).
      auto run = s_.train_snapshot();
      timeout(run && run->state == train::RunState::kRunning ? 40 : 200);
      int r = next_key(&key);  // what was typed ahead during a computation first
      if (r == ERR) continue;
      bool keep = true;
      try {
        keep = handle_key(key, r == KEY_CODE_YES);
      } catch (const std::exception& e) {
        say(e.what(), true);  // a failed step or command loses nothing
      }
      if (!keep) break;
    }
  } catch (...) {
    s_.set_progress_hook({});
    s_.set_keys_shown(false);
    endwin();
    throw;
  }
  if (g_signal > 0) status = 128 + g_signal;
  s_.set_progress_hook({});
  s_.set_keys_shown(false);
  endwin();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  return status;
}

}  // namespace tui_impl

int run_tui(Session& s, int first_panel) {
  tui_impl::g_signal = 0;
  tui_impl::Tui t(s);
  t.show_panel(std::clamp(first_panel, 0, viz::kPanelCount - 1));
  return t.run();
}

}  // namespace dsv3::app

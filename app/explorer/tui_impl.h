// The explorer's front end, shared by tui.cpp (set-up, drawing, commands, the main loop) and
// tui_keys.cpp (keys, the prompt's editing and completion, the mouse). Internal to app/explorer/.
#pragma once

#define NCURSES_WIDECHAR 1
#include <curses.h>

#include <atomic>
#include <deque>
#include <string>
#include <vector>

#include "app/commands/registry.h"
#include "app/explorer/curses_painter.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {

class Session;

namespace tui_impl {

// The signal that ends the main loop (SIGINT, SIGTERM, SIGHUP), or -1 when `:quit` asked.
extern std::atomic<int> g_signal;

class Tui {
 public:
  explicit Tui(Session& s) : s_(s) {}

  int run();
  void show_panel(int p) { st_.active = static_cast<viz::Panel>(p); }

 private:
  enum class Mode { kNormal, kCommand, kFind };

  void init_curses();
  void draw();
  bool handle_key(wint_t key, bool function_key);  // false = quit
  bool handle_input_key(wint_t key, bool function_key);
  void handle_mouse();
  void run_command(const std::string& line);
  void complete_input();
  void find(const std::string& text);
  void suspend();  // Ctrl-Z: restore the terminal, stop, and redraw after `fg`
  void select_layer(int delta);
  void select_expert(int delta);
  void show_output(const Output& o, const std::string& title);
  void say(std::string msg, bool error = false) {
    st_.message = std::move(msg);
    st_.message_error = error;
  }
  bool progress(int done, int total);  // false: stop (Esc or Ctrl-C was pressed)
  int next_key(wint_t* key);           // get_wch, after the keys typed ahead during a computation
  std::string hints() const;
  void adjust(int dir);         // + / -: γ (Load panel) or draft depth (MTP panel)
  void move_in_panel(int key);  // , . < >: pipeline time cursor or FP8 linear
  bool train_key(wint_t key);   // panel 9's keys (tui_train.cpp); false: not one of them

  Session& s_;
  viz::ScreenState st_;
  std::vector<viz::Hit> hits_;
  Mode mode_ = Mode::kNormal;
  std::string input_;
  size_t pos_ = 0;  // the cursor in input_ (a byte offset at a character boundary)
  std::vector<std::string> history_;
  size_t history_pos_ = 0;
  CursesPainter painter_;
  std::string applied_colour_setting_;
  bool too_small_ = false;
  bool colour_started_ = false;
  int generate_n_ = 16;
  std::string last_find_;  // what `/` looked for last; `n` looks again from the cursor
  struct TypedKey {
    wint_t key = 0;
    bool fn = false;  // a function key (KEY_CODE_YES)
    MEVENT mouse{};   // the event of a KEY_MOUSE
  };
  std::deque<TypedKey> typed_ahead_;  // keys read by progress() while a computation ran
};

}  // namespace tui_impl
}  // namespace dsv3::app

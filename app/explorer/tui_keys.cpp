// The explorer's keys: the main key table's actions, the `:` and `/` prompts' line editing,
// Tab completion of commands and paths, and mouse clicks (the front end of tui_impl.h).
#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "app/explorer/tui_impl.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app::tui_impl {

namespace fs = std::filesystem;

void Tui::complete_input() {
  if (mode_ != Mode::kCommand) return;
  Completion c = registry().complete(s_, input_, input_.size());
  std::vector<std::string> cands = c.candidates;
  if (c.paths) {
    std::string word = input_.substr(c.start);
    fs::path p(word.empty() ? "./" : word);
    fs::path dir = word.empty() || word.back() == '/' ? p : p.parent_path();
    std::string stem = word.empty() || word.back() == '/' ? "" : p.filename().string();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir.empty() ? "." : dir, ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind(stem, 0) != 0) continue;
      std::string full =
          (dir.empty() ? "" : (dir / "").string()) + name + (e.is_directory() ? "/" : "");
      if (word.empty() && full.rfind("./", 0) == 0) full = full.substr(2);
      cands.push_back(full);
    }
    std::sort(cands.begin(), cands.end());
  }
  if (cands.empty()) {
    say("no completions");
    return;
  }
  std::string prefix = cands[0];
  for (const auto& x : cands) {
    size_t i = 0;
    while (i < prefix.size() && i < x.size() && prefix[i] == x[i]) ++i;
    prefix.resize(i);
  }
  input_ = input_.substr(0, c.start) + prefix;
  if (cands.size() == 1 && (prefix.empty() || prefix.back() != '/')) input_ += " ";
  if (cands.size() > 1) {
    std::string list;
    for (const auto& x : cands) list += x + "  ";
    say(list);
  } else {
    say("");
  }
}

void Tui::find(const std::string& text) {
  if (text.empty()) return;
  last_find_ = text;
  std::string q;
  for (char ch : text) q += ch == ' ' ? std::string("␣") : std::string(1, ch);
  const auto& toks = s_.tokens();
  int n = static_cast<int>(toks.size());
  std::vector<std::string> pieces;
  for (int32_t id : toks) pieces.push_back(s_.piece(id));
  for (int k = 1; k <= n; ++k) {
    int start = (s_.cursor() + k) % n;
    std::string joined;
    for (int i = start; i < n && joined.size() < q.size() + 8; ++i) joined += pieces[i];
    if (joined.rfind(q, 0) == 0) {
      if (start < s_.computed()) {
        s_.go_to(start);
        say(fmt::format("found \"{}\" at position {}", text, start));
      } else {
        say(fmt::format("\"{}\" is at position {}, not computed yet", text, start));
      }
      return;
    }
  }
  say(fmt::format("\"{}\" not found", text), true);
}

void Tui::handle_mouse() {
  MEVENT ev;
  if (getmouse(&ev) != OK) return;
  if (ev.bstate & BUTTON4_PRESSED) {
    if (st_.popup)
      st_.popup->scroll = std::max(0, st_.popup->scroll - 3);
    else
      select_layer(-1);
    return;
  }
  if (ev.bstate & BUTTON5_PRESSED) {
    if (st_.popup)
      st_.popup->scroll += 3;
    else
      select_layer(1);
    return;
  }
  if (st_.help || st_.popup) {
    st_.help = false;
    st_.popup.reset();
    return;
  }
  for (const viz::Hit& h : hits_) {
    if (!h.contains(ev.x, ev.y)) continue;
    switch (h.kind) {
      case viz::Hit::kTab:
        st_.active = static_cast<viz::Panel>(h.value);
        break;
      case viz::Hit::kToken:
        if (h.value < s_.computed()) s_.go_to(h.value);
        break;
      case viz::Hit::kLayer:
        s_.set_layer(h.value);
        break;
      case viz::Hit::kExpert:
        if (h.value2 >= 0) s_.set_layer(h.value2);
        s_.set_expert(h.value);
        say(fmt::format("layer {} expert {}", s_.layer(), h.value));
        break;
    }
    return;
  }
}

// γ in a 1-2-5 series from 1e-4 to 0.5.
namespace {

double next_gamma(double g, int dir) {
  std::vector<double> series;
  for (double d = 1e-4; d < 1; d *= 10)
    for (double m : {1.0, 2.0, 5.0}) series.push_back(d * m);
  if (dir > 0) {
    for (double x : series)
      if (x > g * 1.0001) return x;
    return series.back();
  }
  for (auto it = series.rbegin(); it != series.rend(); ++it)
    if (*it < g * 0.9999) return *it;
  return series.front();
}

}  // namespace

void Tui::adjust(int dir) {
  if (st_.active == viz::Panel::kMtp) {
    int d = std::clamp(s_.settings().mtp_depth + dir, 1, 8);
    s_.settings().mtp_depth = d;
    say(fmt::format("draft depth D = {} (the next speculative step starts afresh)", d));
    return;
  }
  if (st_.active == viz::Panel::kPipeline) {
    // Zoom: columns per time unit (0 = fit the panel); past the panel's width a window
    // follows the time cursor.
    int z = std::clamp(s_.settings().pipeline_zoom + dir, 0, 6);
    s_.settings().pipeline_zoom = z;
    say(z == 0 ? std::string("zoom: fit the panel")
               : fmt::format("zoom: {} column{} per time unit", z, z == 1 ? "" : "s"));
    return;
  }
  if (st_.active != viz::Panel::kLoad) {
    say("+ - change γ on the Load panel (2), the draft depth on the MTP panel (7) and the zoom "
        "on the Pipeline panel (5)");
    return;
  }
  s_.set_gamma(next_gamma(s_.gamma(), dir));
  say(fmt::format("γ = {:g}{}", s_.gamma(), s_.balancing() ? "" : " (balancing is off: b)"));
}

void Tui::move_in_panel(int key) {
  if (st_.active == viz::Panel::kPipeline) {
    double step = (key == '<' || key == '>') ? 10 : 1;
    s_.move_pipeline_time((key == ',' || key == '<') ? -step : step);
    return;
  }
  if (st_.active == viz::Panel::kFp8) {
    int n = static_cast<int>(s_.fp8_linears().size());
    if (n == 0) return;
    int i = std::clamp(s_.settings().fp8_linear, 0, n - 1) + ((key == ',' || key == '<') ? -1 : 1);
    s_.settings().fp8_linear = (i + n) % n;
    say(s_.fp8_linears()[s_.settings().fp8_linear].name);
    return;
  }
  say(", . < > move the time cursor on the Pipeline panel (5) and pick a linear on FP8 (8)");
}

namespace {
// UTF-8 character boundaries around byte offset i of s.
size_t prev_char(const std::string& s, size_t i) {
  if (i == 0) return 0;
  --i;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}
size_t next_char(const std::string& s, size_t i) {
  if (i >= s.size()) return s.size();
  ++i;
  while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
  return i;
}
}  // namespace

// The `:` and `/` line: an editable line with a cursor (readline's basic keys).
bool Tui::handle_input_key(wint_t key, bool fn) {
  pos_ = std::min(pos_, input_.size());
  if ((!fn && key == 27) || (!fn && key == 7)) {  // Esc, Ctrl-G
    mode_ = Mode::kNormal;
    input_.clear();
    pos_ = 0;
    return true;
  }
  if ((!fn && (key == '\r' || key == '\n')) || (fn && key == KEY_ENTER)) {
    std::string line = input_;
    Mode m = mode_;
    mode_ = Mode::kNormal;
    input_.clear();
    pos_ = 0;
    history_pos_ = history_.size() + 1;
    if (m == Mode::kCommand)
      run_command(line);
    else
      find(line);
    return g_signal != -1;
  }
  if ((fn && key == KEY_BACKSPACE) || (!fn && (key == 127 || key == 8))) {
    if (input_.empty()) {
      mode_ = Mode::kNormal;
      return true;
    }
    size_t from = prev_char(input_, pos_);  // the character before the cursor
    input_.erase(from, pos_ - from);
    pos_ = from;
    return true;
  }
  if ((fn && key == KEY_DC) || (!fn && key == 4 && !input_.empty())) {  // Delete, Ctrl-D
    input_.erase(pos_, next_char(input_, pos_) - pos_);
    return true;
  }
  if (fn && key == KEY_LEFT) {
    pos_ = prev_char(input_, pos_);
    return true;
  }
  if (fn && key == KEY_RIGHT) {
    pos_ = next_char(input_, pos_);
    return true;
  }
  if ((fn && key == KEY_HOME) || (!fn && key == 1)) {  // Home, Ctrl-A
    pos_ = 0;
    return true;
  }
  if ((fn && key == KEY_END) || (!fn && key == 5)) {  // End, Ctrl-E
    pos_ = input_.size();
    return true;
  }
  if (!fn && key == 21) {  // Ctrl-U: delete before the cursor
    input_.erase(0, pos_);
    pos_ = 0;
    return true;
  }
  if (!fn && key == 11) {  // Ctrl-K: delete from the cursor on
    input_.resize(pos_);
    return true;
  }
  if (!fn && key == 23) {  // Ctrl-W: delete the word before the cursor
    size_t from = pos_;
    while (from > 0 && input_[from - 1] == ' ') --from;
    while (from > 0 && input_[from - 1] != ' ') --from;
    input_.erase(from, pos_ - from);
    pos_ = from;
    return true;
  }
  if (!fn && key == '\t') {
    // Completion works on the text before the cursor; what follows it is kept.
    std::string tail = input_.substr(pos_);
    input_.resize(pos_);
    complete_input();
    pos_ = input_.size();
    input_ += tail;
    return true;
  }
  if (fn && (key == KEY_UP || key == KEY_DOWN) && mode_ == Mode::kCommand && !history_.empty()) {
    if (history_pos_ > history_.size()) history_pos_ = history_.size();
    if (key == KEY_UP && history_pos_ > 0) --history_pos_;
    if (key == KEY_DOWN && history_pos_ < history_.size()) ++history_pos_;
    input_ = history_pos_ < history_.size() ? history_[history_pos_] : "";
    pos_ = input_.size();
    return true;
  }
  if (!fn && key >= 32) {
    std::string ch = viz::utf8_encode(static_cast<char32_t>(key));
    input_.insert(pos_, ch);
    pos_ += ch.size();
    return true;
  }
  return true;
}

bool Tui::handle_key(wint_t key, bool fn) {
  if (!fn && key == 3) return false;  // Ctrl-C
  if (fn && key == KEY_RESIZE) return true;
  if (too_small_) return !(!fn && key == 'q');
  if (fn && key == KEY_MOUSE) {
    handle_mouse();
    return true;
  }
  if (mode_ != Mode::kNormal) return handle_input_key(key, fn);
  if (st_.help) {
    if ((!fn && (key == 27 || key == '?' || key == 'q' || key == '\r')) || (fn && key == KEY_F(1)))
      st_.help = false;
    return true;
  }
  if (st_.popup) {
    int rows = std::max(1, LINES - 10);
    if (fn && key == KEY_UP)
      st_.popup->scroll = std::max(0, st_.popup->scroll - 1);
    else if (fn && key == KEY_DOWN)
      st_.popup->scroll =
          std::min(st_.popup->scroll + 1, std::max(0, st_.popup->body.height() - 1));
    else if (fn && key == KEY_PPAGE)
      st_.popup->scroll = std::max(0, st_.popup->scroll - rows);
    else if (fn && key == KEY_NPAGE)
      st_.popup->scroll =
          std::min(st_.popup->scroll + rows, std::max(0, st_.popup->body.height() - 1));
    else if (!fn && key == ':') {
      st_.popup.reset();
      mode_ = Mode::kCommand;
      input_.clear();
      pos_ = 0;
    } else
      st_.popup.reset();
    return true;
  }
  say("");
  if (fn) {
    switch (key) {
      case KEY_RIGHT:
        s_.step(1);
        break;
      case KEY_LEFT:
        s_.back(1);
        break;
      case KEY_UP:
        select_layer(-1);
        break;
      case KEY_DOWN:
        select_layer(1);
        break;
      case KEY_HOME:
        s_.go_to(0);
        break;
      case KEY_END:
        s_.go_to(s_.computed() - 1);
        break;
      case KEY_BTAB:
        st_.active = static_cast<viz::Panel>((static_cast<int>(st_.active) + viz::kPanelCount - 1) %
                                             viz::kPanelCount);
        break;
      case KEY_F(1):
        st_.help = true;
        break;
      default:
        break;
    }
    return true;
  }
  if (st_.active == viz::Panel::kTrain && train_key(key)) return true;
  switch (key) {
    case 'q':
      return false;
    case 'l':
    case ' ':
      s_.step(1);
      break;
    case 'h':
      s_.back(1);
      break;
    case 'k':
      select_layer(-1);
      break;
    case 'j':
      select_layer(1);
      break;
    case '[':
      select_expert(-1);
      break;
    case ']':
      select_expert(1);
      break;
    case '\t':
      st_.active = static_cast<viz::Panel>((static_cast<int>(st_.active) + 1) % viz::kPanelCount);
      break;
    case '?':
      st_.help = true;
      break;
    case ':':
      mode_ = Mode::kCommand;
      input_.clear();
      pos_ = 0;
      history_pos_ = history_.size();
      break;
    case '/':
      mode_ = Mode::kFind;
      input_.clear();
      pos_ = 0;
      break;
    case 'z':
      st_.full = !st_.full;
      say(st_.full ? "z: the active panel alone, full width (z again: the 4-panel layout)"
                   : "z: the 4-panel layout where the terminal is 160x36 or larger");
      break;
    case 'n':
      if (last_find_.empty())
        say("n finds the next match of the last `/` search; there was none yet");
      else
        find(last_find_);  // searches on from the position after the cursor
      break;
    case 26:  // Ctrl-Z: raw() mode delivers it as a key, so suspend the way a shell expects
      suspend();
      break;
    case 'a':
      s_.set_attn(s_.attn() == model::AttnImpl::kAbsorbed ? model::AttnImpl::kNaive
                                                          : model::AttnImpl::kAbsorbed);
      say(fmt::format("attention: {} form, every position recomputed",
                      model::to_string(s_.attn())));
      break;
    case 'g': {
      int n = s_.generate(generate_n_);
      say(fmt::format("generated {} tokens", n));
      break;
    }
    case 'b':
      s_.set_balancing(!s_.balancing());
      say(s_.balancing() ? fmt::format("balancing on: every new token moves the biases by γ = {:g}",
                                       s_.gamma())
                         : "balancing off: the biases stay as they are");
      break;
    case 'm': {
      st_.active = viz::Panel::kMtp;
      int n = s_.mtp_step();
      const auto& st = s_.speculative()->stats();
      say(fmt::format("speculative step: +{} token{} · {:.2f} tokens per main-model pass so far", n,
                      n == 1 ? "" : "s", st.tokens_per_step()));
      break;
    }
    case '+':
    case '=':
    case '-':
      adjust(key == '-' ? -1 : 1);
      break;
    case ',':
    case '.':
    case '<':
    case '>':
      move_in_panel(key);
      break;
    case 's':
      if (st_.active == viz::Panel::kPipeline) {
        std::string name = s_.cycle_schedule(1);
        if (s_.settings().pipeline_time >= 0) s_.move_pipeline_time(0);  // clamp to the makespan
        say(fmt::format("schedule: {} (makespan {:g})", name, s_.pipeline_makespan()));
      } else {
        say("s switches the schedule on the Pipeline panel (5)");
      }
      break;
    default:
      if (key >= '1' && key < '1' + viz::kPanelCount)
        st_.active = static_cast<viz::Panel>(key - '1');
      break;
  }
  return true;
}

}  // namespace dsv3::app::tui_impl

// The lesson player in the terminal: blits lesson_screen() and turns keys into step changes.
// Runs on its own, or inside the explorer (`:lesson N`), where ncurses is already running: then
// it borrows the screen, keeps the explorer's colour pairs intact (its own are allocated from the
// top of the pair table down), and hands the screen back for the explorer to redraw.
#include <curses.h>
#include <fmt/format.h>
#include <langinfo.h>

#include <algorithm>
#include <atomic>
#include <clocale>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "app/explorer/curses_painter.h"
#include "app/lesson/player.h"
#include "app/explorer/tui.h"

namespace dsv3::app::lesson {

namespace {

std::atomic<int> g_stop{0};
void on_stop(int sig) {
  g_stop = sig;
}

class LessonTui {
 public:
  LessonTui(const Lesson& l, int start) : player_(std::make_unique<Player>(l, 80)), view_{} {
    view_.step = start;
  }

  int run() {
    embedded_ = stdscr != nullptr && !isendwin();
    int saved_delay = 200;
    if (embedded_) {
      saved_delay = wgetdelay(stdscr);
    } else {
      std::setlocale(LC_ALL, "");
      initscr();
      raw();
      noecho();
      nonl();
      keypad(stdscr, TRUE);
      set_escdelay(25);
    }
    painter_.set_utf8(std::strcmp(nl_langinfo(CODESET), "UTF-8") == 0);
    curs_set(0);
    timeout(200);
    std::string colour = pick_colour_mode("auto", has_colors(), has_colors() ? COLORS : 0);
    if (embedded_ && COLOR_PAIRS <= 0) colour = "mono";  // the explorer runs without colour
    if (colour != "mono" && !embedded_) {
      start_color();
      use_default_colors();
    }
    painter_.set_mode(colour);

    struct sigaction sa {
    }, old_int{}, old_term{}, old_hup{};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    g_stop = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    int status = 0;
    try {
      load(view_.step, false);
      while (g_stop == 0) {
        draw();
        wint_t key = 0;
        int r = get_wch(&key);
        if (r == ERR) continue;
        if (!handle(key, r == KEY_CODE_YES)) break;
      }
    } catch (...) {
      finish(saved_delay);
      restore(old_int, old_term, old_hup);
      throw;
    }
    if (g_stop > 0) status = 128 + g_stop;
    finish(saved_delay);
    restore(old_int, old_term, old_hup);
    return status;
  }

 private:
  void finish(int saved_delay) {
    if (embedded_) {
      timeout(saved_delay);
      clearok(stdscr, TRUE);  // the explorer repaints everything
    } else if (!isendwin()) {
      endwin();
    }
  }
  static void restore(const struct sigaction& a, const struct sigaction& b,
                      const struct sigaction& c) {
    sigaction(SIGINT, &a, nullptr);
    sigaction(SIGTERM, &b, nullptr);
    sigaction(SIGHUP, &c, nullptr);
  }

  void load(int step, bool again) {
    player_->set_width(std::max(40, panel_width(COLS)));
    // Running a step can take seconds (a model to load, steps before it to replay): say so on
    // the screen still showing the previous step before the work starts.
    view_.busy = fmt::format("computing step {} of {} …", step + 1, player_->steps());
    draw();
    view_.busy.clear();
    view_.step = step;
    view_.prose_scroll = view_.panel_scroll = 0;
    try {
      result_ = again ? &player_->rerun(step) : &player_->show(step);
      view_.message = again ? fmt::format("step {} re-run from a fresh session", step + 1) : "";
    } catch (const std::exception& e) {
      result_ = nullptr;
      view_.message = std::string("✗ ") + e.what();
    }
  }

  // `n`: the lesson after this one in its folder, from its first step.
  void next_lesson() {
    namespace fs = std::filesystem;
    const Lesson& l = player_->lesson();
    fs::path here(l.path);
    std::string dir = here.has_parent_path() ? here.parent_path().string() : ".";
    std::vector<std::string> files = lesson_files(dir);
    std::error_code ec;
    auto at = std::find_if(files.begin(), files.end(),
                           [&](const std::string& f) { return fs::equivalent(f, here, ec); });
    if (at == files.end() || at + 1 == files.end()) {
      view_.message = at == files.end() ? "this lesson is not in a lessons folder"
                                        : "this is the last lesson: q to leave";
      return;
    }
    try {
      Lesson next = load_lesson(*(at + 1));
      result_ = nullptr;
      player_ = std::make_unique<Player>(std::move(next), 80);
      load(0, false);
    } catch (const std::exception& e) {
      view_.message = std::string("✗ ") + e.what();
    }
  }

  bool handle(wint_t key, bool fn) {
    int page = std::max(1, LINES / 2);
    int& scroll = view_.focus == 0 ? view_.prose_scroll : view_.panel_scroll;
    if (fn) {
      switch (key) {
        case KEY_RIGHT:
          next();
          break;
        case KEY_LEFT:
        case KEY_BACKSPACE:
          prev();
          break;
        case KEY_UP:
          scroll = std::max(0, scroll - 1);
          break;
        case KEY_DOWN:
          ++scroll;
          break;
        case KEY_PPAGE:
          scroll = std::max(0, scroll - page);
          break;
        case KEY_NPAGE:
          scroll += page;
          break;
        case KEY_HOME:
          load(0, false);
          break;
        case KEY_BTAB:
          view_.focus = 1 - view_.focus;
          break;
        default:
          break;
      }
      clamp_scroll();
      return true;
    }
    switch (key) {
      case 'n':
        next_lesson();
        break;
      case ' ':
      case 'l':
      case '\r':
      case '\n':
        next();
        break;
      case 'h':
      case 'p':
      case 127:
      case 8:
        prev();
        break;
      case 'r':
        load(view_.step, true);
        break;
      case 'k':
        scroll = std::max(0, scroll - 1);
        break;
      case 'j':
        ++scroll;
        break;
      case '\t':
        view_.focus = 1 - view_.focus;
        break;
      case 'q':
      case 'Q':
      case 27:
      case 3:
        return false;  // Esc, Ctrl-C
      default:
        break;
    }
    clamp_scroll();
    return true;
  }

  void clamp_scroll() {
    view_.prose_scroll = std::min(view_.prose_scroll, 500);
    view_.panel_scroll = std::min(view_.panel_scroll, 2000);
  }

  void next() {
    if (view_.step + 1 >= player_->steps()) {
      view_.message = "end of the lesson: n for the next lesson, ← to go back, q to leave";
      return;
    }
    load(view_.step + 1, false);
  }
  void prev() {
    if (view_.step == 0) {
      view_.message = "this is the first step";
      return;
    }
    load(view_.step - 1, false);
  }

  void draw() {
    viz::Canvas c;
    if (result_) {
      c = lesson_screen(player_->lesson(), *result_, view_, COLS, LINES);
    } else {
      c = viz::Canvas(COLS, LINES);
      c.text(1, 1, view_.busy.empty() ? view_.message : view_.busy);
    }
    erase();
    painter_.blit(c);
    refresh();
  }

  std::unique_ptr<Player> player_;
  ScreenView view_;
  const StepResult* result_ = nullptr;
  bool embedded_ = false;
  CursesPainter painter_{CursesPainter::Pairs::kFromTop};
};

}  // namespace

int play_tui(const Lesson& l, int start_step) {
  LessonTui t(l, std::clamp(start_step, 0, static_cast<int>(l.steps.size()) - 1));
  return t.run();
}

}  // namespace dsv3::app::lesson

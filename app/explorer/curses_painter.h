// Drawing a viz::Canvas with ncurses, shared by the explorer and the lesson player: colour pairs
// made on demand for 256 colours, the 8 basic ones, or none; ASCII stand-ins for terminals
// without UTF-8. The caller owns initscr/endwin.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "visualizers/canvas.h"

namespace dsv3::app {

// xterm-256 -> one of the 8 basic colours (-1: the terminal's default).
short xterm_to_8(viz::Color c);
// An ASCII glyph for a box-drawing, block or arrow character.
wchar_t ascii_stand_in(char32_t g);

class CursesPainter {
 public:
  // Where colour pairs come from: upward from 1 (the explorer), or downward from the top of the
  // pair table (a lesson borrowing the explorer's screen leaves the explorer's pairs intact).
  enum class Pairs { kFromBottom, kFromTop };
  explicit CursesPainter(Pairs from = Pairs::kFromBottom) : from_(from) {}

  // "256" | "8" | "mono" (pick_colour_mode); a change forgets the pairs made so far.
  void set_mode(const std::string& mode);
  const std::string& mode() const { return mode_; }
  void set_utf8(bool on) { utf8_ = on; }

  // The canvas at the screen's top left, clipped to LINES x COLS.
  void blit(const viz::Canvas& c);

 private:
  short pair_for(const viz::Style& st);

  Pairs from_;
  std::string mode_ = "mono";
  bool utf8_ = true;
  std::map<std::pair<short, short>, short> pairs_;
  short next_ = 0;  // kFromTop: the next pair number to hand out (0: start at the top)
};

}  // namespace dsv3::app

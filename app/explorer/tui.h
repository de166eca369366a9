// The ncurses explorer. It only blits the Canvas composed by visualizers/explorer_screen and
// turns keys and mouse clicks into Session changes or registry commands.
#pragma once

#include <string>
#include <vector>

#include "visualizers/explorer_view.h"

namespace dsv3::app {

class Session;

// The explorer's key table: drives both the key handling's documentation and the `?` overlay.
const std::vector<viz::KeyHelp>& key_table();

// Runs the explorer on the terminal until q; restores the terminal on every exit path
// (return, exception, SIGINT/SIGTERM/SIGHUP). Returns the exit status.
// `first`: the panel shown at the start (`dsv3 train --tui` opens on panel 9).
int run_tui(Session& s, int first_panel = 0);

// Colour capability the front end settles on: "256", "8" or "mono".
// `setting` is Session::settings().colour ("auto" asks the terminal); NO_COLOR forces mono.
std::string pick_colour_mode(const std::string& setting, bool has_colors, int colors);

}  // namespace dsv3::app

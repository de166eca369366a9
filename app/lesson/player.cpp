// The lesson engine (steps run on a live Session, checks, interpolation) and the plain player.
#include "app/lesson/player.h"

#include <fmt/format.h>

#include <filesystem>
#include <ostream>

#include "app/explorer/session.h"

namespace dsv3::app::lesson {

using nlohmann::json;

int StepResult::failed() const {
  int n = 0;
  for (const auto& c : checks) n += c.pass ? 0 : 1;
  for (const auto& s : shown) n += s.error.empty() ? 0 : 1;
  return n;
}

Player::Player(Lesson lesson, int width) : lesson_(std::move(lesson)), width_(width) {
  cache_.resize(lesson_.steps.size());
  reset();
}

Player::~Player() = default;

void Player::reset() {
  session_ = std::make_unique<Session>(SessionOptions{});
  env_ = json::object();
  ran_ = 0;
}

namespace {

std::string fill(const std::string& line, const Env& env, std::string& error) {
  std::string out;
  size_t at = 0;
  for (size_t p = line.find("{{"); p != std::string::npos; p = line.find("{{", at)) {
    size_t e = line.find("}}", p);
    if (e == std::string::npos) break;
    out += line.substr(at, p - at);
    auto [expr, format] = split_interpolation(line.substr(p + 2, e - p - 2));
    try {
      out += format_value(eval(*parse_expr(expr), env), format);
    } catch (const std::exception& ex) {
      if (error.empty()) error = fmt::format("{{{{{}}}}}: {}", expr, ex.what());
      out += "{{?" + expr + "}}";
    }
    at = e + 2;
  }
  return out + line.substr(at);
}

}  // namespace

StepResult Player::run(int i) {
  const Step& st = lesson_.steps[i];
  StepResult r;
  Context ctx{width_};
  for (const Statement& s : st.commands) {
    Shown shown;
    shown.command = s.command;
    try {
      shown.out = registry().run(*session_, s.command, ctx);
      if (!s.bind.empty()) {
        json j = json::parse(shown.out.text, nullptr, false);
        if (j.is_discarded()) {
          std::string t = shown.out.text;
          if (shown.out.canvas) t = viz::render_plain(*shown.out.canvas) + t;
          j = t;
        }
        env_[s.bind] = std::move(j);
        continue;
      }
    } catch (const std::exception& e) {
      shown.error = fmt::format("line {}: {}", s.line, e.what());
      if (r.error.empty())
        r.error = fmt::format("{}:{}: `{}` failed: {}", lesson_.path, s.line, s.command, e.what());
    }
    r.shown.push_back(std::move(shown));
  }
  for (const Check& c : st.checks) {
    CheckResult cr;
    cr.check = &c;
    try {
      cr.pass = is_true(eval(*c.expr, env_));
      if (!cr.pass) cr.detail = explain(*c.expr, env_);
    } catch (const std::exception& e) {
      cr.detail = e.what();
    }
    r.checks.push_back(std::move(cr));
  }
  std::string ierr;
  for (const std::string& l : st.prose) r.prose.push_back(fill(l, env_, ierr));
  r.think = fill(st.think, env_, ierr);
  if (!ierr.empty() && r.error.empty())
    r.error = fmt::format("{}:{}: {}", lesson_.path, st.line, ierr);
  return r;
}

const StepResult& Player::show(int i) {
  if (cache_[i]) return *cache_[i];
  if (i < ran_) return rerun(i);  // computed on an earlier session and dropped since
  while (ran_ <= i) {
    cache_[ran_] = run(ran_);
    ++ran_;
  }
  return *cache_[i];
}

const StepResult& Player::rerun(int i) {
  reset();
  for (auto& c : cache_) c.reset();
  return show(i);
}

std::vector<std::string> check_lines(const StepResult& r) {
  std::vector<std::string> out;
  for (const auto& c : r.checks) {
    std::string what = c.check->label.empty() ? c.check->text : c.check->label;
    if (c.pass) {
      out.push_back("✓ " + what);
    } else {
      out.push_back(fmt::format("✗ FAILED (line {}): {}", c.check->line, what));
      if (!c.check->label.empty()) out.push_back("    " + c.check->text);
      if (!c.detail.empty()) out.push_back("    " + c.detail);
    }
  }
  return out;
}

namespace {

// A command's picture or text for the plain player: no blank padding at line ends or under the
// last line (a panel drawn for a screen is padded to its height), and a final newline.
std::string plain_block(const std::string& text) {
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.pop_back();
    out += line + "\n";
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  while (out.size() >= 2 && out[out.size() - 1] == '\n' && out[out.size() - 2] == '\n')
    out.pop_back();
  if (out == "\n") out.clear();
  return out;
}

}  // namespace

int play_plain(const Lesson& l, std::ostream& out, int width) {
  Player p(l, width);
  int failures = 0;
  std::string rule(static_cast<size_t>(width), '=');
  out << rule << "\n" << fmt::format("Lesson {}: {}", l.number, l.title) << "\n";
  if (!l.summary.empty()) {
    Step intro;
    intro.prose = {l.summary};
    StepResult ir;
    ir.prose = intro.prose;
    out << viz::render_plain(prose_canvas(intro, ir, width, false, true));
  }
  out << rule << "\n";
  for (int i = 0; i < p.steps(); ++i) {
    const Step& st = l.steps[i];
    const StepResult& r = p.show(i);
    std::string head = fmt::format("-- Step {}/{}: {} ", i + 1, p.steps(), st.title);
    int pad = width - viz::display_width(head);
    out << "\n" << head << std::string(static_cast<size_t>(std::max(pad, 2)), '-') << "\n\n";
    out << viz::render_plain(prose_canvas(st, r, width, false, true));
    for (const Shown& s : r.shown) {
      out << "\n$ " << s.command << "\n";
      if (!s.error.empty()) {
        out << "✗ " << s.error << "\n";
        continue;
      }
      if (s.out.canvas) out << plain_block(viz::render_plain(*s.out.canvas));
      out << plain_block(s.out.text);
    }
    auto checks = check_lines(r);
    if (!checks.empty()) out << "\n";
    for (const auto& c : checks) out << c << "\n";
    if (!r.think.empty()) {
      Step t;
      StepResult tr;
      tr.think = r.think;
      out << "\n" << viz::render_plain(prose_canvas(t, tr, width, true, true));
    }
    if (!r.error.empty()) out << "✗ " << r.error << "\n";
    for (const auto& c : r.checks) failures += c.pass ? 0 : 1;
    failures += r.error.empty() ? 0 : 1;  // a failing command or interpolation, once per step
  }
  out << "\n"
      << rule << "\n"
      << fmt::format("End of lesson {}: {} steps, {}", l.number, p.steps(),
                     failures ? fmt::format("{} problem(s)", failures) : "all checks passed")
      << "\n";
  return failures;
}

std::string lesson_list(const std::string& dir) {
  std::string out = fmt::format("Lessons ({}):\n", dir);
  for (const std::string& f : lesson_files(dir)) {
    try {
      Lesson l = load_lesson(f);
      out += fmt::format("  {:>2}  {:<62} {:>2} steps\n", l.number, l.title, l.steps.size());
    } catch (const LessonError& e) {
      out += fmt::format("  ??  {} (cannot be read: {})\n",
                         std::filesystem::path(f).filename().string(), e.what());
    }
  }
  out += "Play one with `dsv3 lesson N` (TUI) or `dsv3 lesson N --plain` (text).\n";
  return out;
}

}  // namespace dsv3::app::lesson

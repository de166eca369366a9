// Reading lesson files: the Markdown subset of docs/writing-lessons.md, with every problem
// reported as "PATH:LINE: problem" so that an author can jump to it.
#include "app/lesson/lesson.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "app/commands/registry.h"
#include "reference/model/config.h"

namespace dsv3::app::lesson {

namespace fs = std::filesystem;

namespace {

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

bool starts(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

class FileParser {
 public:
  FileParser(std::string_view text, std::string path) : path_(std::move(path)) {
    std::istringstream in{std::string(text)};
    for (std::string l; std::getline(in, l);) {
      if (!l.empty() && l.back() == '\r') l.pop_back();
      lines_.push_back(l);
    }
  }

  Lesson parse() {
    Lesson out;
    out.path = path_;
    std::string stem = fs::path(path_).stem().string();
    size_t digits = 0;
    while (digits < stem.size() && std::isdigit(static_cast<unsigned char>(stem[digits]))) ++digits;
    if (digits) out.number = std::stoi(stem.substr(0, digits));

    size_t i = 0;
    while (i < lines_.size() && trim(lines_[i]).empty()) ++i;
    if (i == lines_.size()) fail(1, "the file is empty: a lesson starts with '# Title'");
    if (!starts(lines_[i], "# "))
      fail(static_cast<int>(i + 1), "expected '# Title' as the first line");
    out.title = trim(lines_[i].substr(2));
    if (out.title.empty()) fail(static_cast<int>(i + 1), "the lesson title is empty");
    ++i;
    // The summary: everything up to the first step.
    for (; i < lines_.size() && !starts(lines_[i], "## "); ++i) {
      std::string t = trim(lines_[i]);
      if (starts(t, "```"))
        fail(static_cast<int>(i + 1),
             "a block before the first step: start a step with '## Title' first");
      if (!t.empty()) out.summary += (out.summary.empty() ? "" : " ") + t;
    }
    while (i < lines_.size()) out.steps.push_back(parse_step(i));
    if (out.steps.empty())
      fail(static_cast<int>(lines_.size()),
           "the lesson has no steps: add '## Step title' sections");
    return out;
  }

 private:
  [[noreturn]] void fail(int line, const std::string& what) const {
    throw LessonError(fmt::format("{}:{}: {}", path_, line, what));
  }

  // Validates the {{expr}} and {{expr:format}} interpolations of a prose line.
  void check_interpolations(const std::string& l, int line) const {
    for (size_t p = l.find("{{"); p != std::string::npos; p = l.find("{{", p + 2)) {
      size_t e = l.find("}}", p);
      if (e == std::string::npos) fail(line, "'{{' without a closing '}}'");
      std::string inner = l.substr(p + 2, e - p - 2);
      auto [expr, format] = split_interpolation(inner);
      try {
        parse_expr(expr);
      } catch (const std::invalid_argument& ex) {
        fail(line, fmt::format("in {{{{{}}}}}: {}", inner, ex.what()));
      }
      try {
        format_value(0.0, format);
      } catch (const std::exception& ex) {
        fail(line, fmt::format("in {{{{{}}}}}: {}", inner, ex.what()));
      }
    }
  }

  Step parse_step(size_t& i) {
    Step st;
    st.line = static_cast<int>(i + 1);
    st.title = trim(lines_[i].substr(3));
    if (st.title.empty()) fail(st.line, "the step title is empty");
    bool in_think = false;
    for (++i; i < lines_.size() && !starts(lines_[i], "## "); ++i) {
      const std::string& raw = lines_[i];
      int ln = static_cast<int>(i + 1);
      std::string t = trim(raw);
      if (starts(raw, "# ")) fail(ln, "a second '# ' title: steps start with '## '");
      if (starts(t, "```")) {
        in_think = false;
        parse_block(st, i);
        continue;
      }
      std::string body = t;
      if (starts(body, "> ")) body = trim(body.substr(2));
      if (starts(body, "Paper:")) {
        if (!st.paper.empty())
          fail(ln, "a second 'Paper:' line in this step: put all sections on one line");
        st.paper = trim(body.substr(6));
        if (st.paper.empty()) fail(ln, "'Paper:' names no section");
        continue;
      }
      if (starts(body, "Code:")) {
        if (!st.code.empty())
          fail(ln, "a second 'Code:' line in this step: separate files with ';'");
        st.code = trim(body.substr(5));
        parse_code_refs(st, ln);
        continue;
      }
      if (starts(body, "Think:") || starts(body, "**Think:**")) {
        if (!st.think.empty()) fail(ln, "a second 'Think:' question in this step");
        st.think = trim(body.substr(starts(body, "Think:") ? 6 : 10));
        check_interpolations(raw, ln);
        in_think = true;
        continue;
      }
      if (in_think) {
        if (t.empty()) {
          in_think = false;
        } else {
          st.think += " " + t;
          check_interpolations(raw, ln);
          continue;
        }
      }
      check_interpolations(raw, ln);
      st.prose.push_back(raw);
    }
    while (!st.prose.empty() && trim(st.prose.back()).empty()) st.prose.pop_back();
    while (!st.prose.empty() && trim(st.prose.front()).empty()) st.prose.erase(st.prose.begin());
    if (st.paper.empty())
      fail(st.line,
           fmt::format(
               "step '{}' cites no paper section: add a line 'Paper: DeepSeek-V3 §2.1, eq. (1)'",
               st.title));
    if (st.code.empty())
      fail(st.line, fmt::format("step '{}' cites no code: add a line 'Code: "
                                "reference/model/kv_cache.cpp KVCache::bytes'",
                                st.title));
    return st;
  }

  void parse_code_refs(Step& st, int ln) {
    std::stringstream ss(st.code);
    for (std::string part; std::getline(ss, part, ';');) {
      std::istringstream words(trim(part));
      CodeRef r;
      r.line = ln;
      words >> r.path >> r.function;
      std::string extra;
      if (r.path.empty())
        fail(ln, "'Code:' has an empty entry; write 'Code: FILE FUNCTION; FILE FUNCTION'");
      if (r.function.empty())
        fail(ln, fmt::format("'Code:' entry '{}' names no function: write '{} FUNCTION'", r.path,
                             r.path));
      if (words >> extra)
        fail(ln, fmt::format("'Code:' entry '{}' has extra words after the function", trim(part)));
      auto ext = fs::path(r.path).extension().string();
      if (ext != ".cpp" && ext != ".h" && ext != ".md")
        fail(ln, fmt::format("'Code:' path '{}' is not a source file (.cpp, .h)", r.path));
      st.code_refs.push_back(r);
    }
  }

  void parse_block(Step& st, size_t& i) {
    int open = static_cast<int>(i + 1);
    std::string lang = trim(trim(lines_[i]).substr(3));
    bool verbatim = lang.empty() || lang == "text" || lang == "math";
    if (!verbatim && lang != "dsv3" && lang != "check")
      fail(open,
           fmt::format(
               "unknown block type '{}': use ```dsv3 (commands), ```check (checks) or ```text",
               lang));
    if (verbatim) st.prose.push_back("```");
    for (++i; i < lines_.size(); ++i) {
      std::string t = trim(lines_[i]);
      int ln = static_cast<int>(i + 1);
      if (t == "```") {
        if (verbatim) st.prose.push_back("```");
        return;
      }
      if (starts(t, "```"))
        fail(ln, fmt::format("a fence inside the block opened at line {}", open));
      if (verbatim) {
        st.prose.push_back(lines_[i]);
      } else if (t.empty() || t[0] == '#') {
        continue;
      } else if (lang == "dsv3") {
        parse_statements(st, t, ln);
      } else {
        parse_check(st, t, ln);
      }
    }
    fail(open,
         fmt::format("the ```{} block opened here is never closed", lang.empty() ? "" : lang));
  }

  void parse_statements(Step& st, const std::string& line, int ln) {
    static const std::regex let_re(R"(^let\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$)");
    for (const std::string& stmt : split_statements(line)) {
      Statement s;
      s.line = ln;
      std::smatch m;
      std::string t = trim(stmt);
      if (t.empty()) continue;
      if (starts(t, "let ") || starts(t, "let\t")) {
        if (!std::regex_match(t, m, let_re))
          fail(ln, fmt::format("malformed binding '{}': write 'let NAME = COMMAND'", t));
        s.bind = m[1];
        s.command = trim(m[2].str());
        if (s.command.empty()) fail(ln, fmt::format("'let {} =' runs no command", s.bind));
      } else {
        s.command = t;
      }
      std::vector<Word> words = split_words(s.command);
      std::string name = words.empty() ? "" : words[0].text;
      if (!registry().find(name)) {
        auto sug = registry().suggestions(name);
        fail(ln, fmt::format("unknown command '{}'{}", name,
                             sug.empty() ? "" : " (did you mean " + sug[0] + "?)"));
      }
      st.commands.push_back(std::move(s));
    }
  }

  void parse_check(Step& st, const std::string& line, int ln) {
    Check c;
    c.line = ln;
    // The label follows the first '#' outside a string.
    char quote = 0;
    size_t hash = std::string::npos;
    for (size_t k = 0; k < line.size(); ++k) {
      if (quote) {
        if (line[k] == quote) quote = 0;
      } else if (line[k] == '"' || line[k] == '\'') {
        quote = line[k];
      } else if (line[k] == '#') {
        hash = k;
        break;
      }
    }
    c.text = trim(line.substr(0, hash));
    if (hash != std::string::npos) c.label = trim(line.substr(hash + 1));
    try {
      c.expr = parse_expr(c.text);
    } catch (const std::invalid_argument& e) {
      fail(ln, fmt::format("check '{}': {}", c.text, e.what()));
    }
    st.checks.push_back(std::move(c));
  }

  std::string path_;
  std::vector<std::string> lines_;
};

}  // namespace

std::pair<std::string, std::string> split_interpolation(const std::string& inner) {
  char quote = 0;
  size_t colon = std::string::npos;
  for (size_t k = 0; k < inner.size(); ++k) {
    if (quote) {
      if (inner[k] == quote) quote = 0;
    } else if (inner[k] == '"' || inner[k] == '\'') {
      quote = inner[k];
    } else if (inner[k] == ':') {
      colon = k;
    }
  }
  if (colon == std::string::npos) return {trim(inner), ""};
  return {trim(inner.substr(0, colon)), trim(inner.substr(colon + 1))};
}

Lesson parse_lesson(std::string_view text, const std::string& path) {
  return FileParser(text, path).parse();
}

Lesson load_lesson(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw LessonError(fmt::format("{}: cannot open the lesson file", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_lesson(ss.str(), path);
}

std::string lessons_dir() {
  if (const char* env = std::getenv("DSV3_LESSONS"); env && *env) {
    if (!fs::is_directory(env))
      throw LessonError(fmt::format("DSV3_LESSONS={} is not a folder", env));
    return env;
  }
  // lessons/ sits beside tiny-configs/ in dsv3's data folder: PREFIX/share/dsv3 for an installed
  // dsv3, the source tree for a build-tree one, or $DSV3_DATA_DIR (reference/model/config.h).
  std::string data;
  try {
    data = model::data_dir();
  } catch (const model::ConfigError& e) {
    throw LessonError(e.what());
  }
  const fs::path dir = fs::path(data) / "lessons";
  std::error_code ec;
  if (fs::is_directory(dir, ec) && !lesson_files(dir.string()).empty()) return dir.string();
  throw LessonError(
      fmt::format("no lesson files in {}: set DSV3_LESSONS to the folder holding the lesson files",
                  dir.string()));
}

std::vector<std::string> lesson_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".md" &&
        std::isdigit(static_cast<unsigned char>(e.path().filename().string()[0])))
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string resolve_lesson(const std::string& which, const std::string& dir) {
  if (which.find('/') != std::string::npos ||
      (which.size() > 3 && which.substr(which.size() - 3) == ".md")) {
    if (!fs::is_regular_file(which))
      throw LessonError(fmt::format("{}: no such lesson file", which));
    return which;
  }
  auto files = lesson_files(dir);
  bool digits = !which.empty() && std::all_of(which.begin(), which.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  // By name: "fp8", "dual" or "03-deep" find lessons/06-fp8.md, 07-dualpipe.md and
  // 03-deepseekmoe-routing.md. A prefix of the file name or of the name after its number wins
  // over a word inside it; a name matching several lessons is an error that lists them.
  auto lower = [](std::string t) {
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return t;
  };
  const std::string want = lower(which);
  std::vector<std::string> prefix, inside;
  for (const auto& f : files) {
    std::string stem = fs::path(f).stem().string();
    if (digits) {
      size_t n = 0;
      while (n < stem.size() && std::isdigit(static_cast<unsigned char>(stem[n]))) ++n;
      if (n && std::stoi(stem.substr(0, n)) == std::stoi(which)) return f;
      continue;
    }
    std::string l = lower(stem);
    size_t n = 0;
    while (n < l.size() && std::isdigit(static_cast<unsigned char>(l[n]))) ++n;
    if (n < l.size() && l[n] == '-') ++n;
    if (want.empty()) continue;
    if (starts(l, want) || starts(std::string_view(l).substr(n), want))
      prefix.push_back(f);
    else if (l.find(want) != std::string::npos)
      inside.push_back(f);
  }
  const auto& found = prefix.empty() ? inside : prefix;
  if (found.size() == 1) return found.front();
  if (found.size() > 1) {
    std::string names;
    for (const auto& f : found) names += (names.empty() ? "" : ", ") + fs::path(f).stem().string();
    throw LessonError(fmt::format(
        "'{}' matches several lessons ({}): give more of the name or the number", which, names));
  }
  std::string names;
  for (const auto& f : files) names += (names.empty() ? "" : ", ") + fs::path(f).stem().string();
  throw LessonError(fmt::format("no lesson '{}' in {} (lessons: {})", which, dir, names));
}

}  // namespace dsv3::app::lesson

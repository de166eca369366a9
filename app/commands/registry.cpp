#include "app/commands/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "app/commands/util.h"
#include "app/explorer/session.h"

namespace dsv3::app {

namespace {

int edit_distance(std::string_view a, std::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diag = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> to_float(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// The valid range of a typed argument in this session, inclusive; {0, -1} when empty.
std::pair<int64_t, int64_t> range_of(const ArgSpec& a, const Session& s) {
  switch (a.kind) {
    case ArgKind::kLayer:
      return {0, s.config().num_hidden_layers - 1};
    case ArgKind::kExpert:
      return {0, s.config().n_routed_experts - 1};
    case ArgKind::kHead:
      return {0, s.config().num_attention_heads - 1};
    case ArgKind::kPosition:
      return {0, s.computed() - 1};
    default:
      return {a.min, a.max};
  }
}

const char* kind_word(ArgKind k) {
  switch (k) {
    case ArgKind::kLayer:
      return "a layer";
    case ArgKind::kExpert:
      return "an expert";
    case ArgKind::kHead:
      return "a head";
    case ArgKind::kPosition:
      return "a computed position";
    default:
      return "an integer";
  }
}

std::string check_value(const Command& c, const ArgSpec& a, const Session& s,
                        const std::string& v) {
  switch (a.kind) {
    case ArgKind::kInt:
    case ArgKind::kLayer:
    case ArgKind::kExpert:
    case ArgKind::kHead:
    case ArgKind::kPosition: {
      auto [lo, hi] = range_of(a, s);
      auto n = to_int(v);
      std::string range = lo == INT64_MIN   ? ""
                          : hi == INT64_MAX ? fmt::format(" >= {}", lo)
                                            : fmt::format(" in {}..{}", lo, hi);
      if (!n)
        throw CommandError(fmt::format("{}: {} must be {}{}, got '{}'", c.name, a.name,
                                       kind_word(a.kind), range, v));
      if (*n < lo || *n > hi)
        throw CommandError(fmt::format("{}: {} {} is out of range: expected {}{}", c.name, a.name,
                                       *n, kind_word(a.kind), range));
      return v;
    }
    case ArgKind::kFloat:
      if (!to_float(v))
        throw CommandError(fmt::format("{}: {} must be a number, got '{}'", c.name, a.name, v));
      return v;
    case ArgKind::kChoice:
      if (std::find(a.choices.begin(), a.choices.end(), v) == a.choices.end()) {
        std::string list;
        for (const auto& ch : a.choices) list += (list.empty() ? "" : ", ") + ch;
        throw CommandError(
            fmt::format("{}: {} must be one of {}, got '{}'", c.name, a.name, list, v));
      }
      return v;
    default:
      return v;
  }
}

std::string strip_quotes(std::string_view s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
    return std::string(s.substr(1, s.size() - 2));
  return std::string(s);
}

std::vector<std::string> candidates_for(const ArgSpec& a, const Session& s) {
  std::vector<std::string> out = a.choices;
  if (a.kind == ArgKind::kLayer || a.kind == ArgKind::kExpert || a.kind == ArgKind::kHead ||
      a.kind == ArgKind::kPosition) {
    auto [lo, hi] = range_of(a, s);
    for (int64_t i = lo; i <= hi && i - lo < 512; ++i) out.push_back(std::to_string(i));
  }
  if (a.complete) {
    auto extra = a.complete(s);
    out.insert(out.end(), extra.begin(), extra.end());
  }
  return out;
}

}  // namespace

const std::string& Args::str(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw CommandError("internal: argument " + name + " was not given");
  return it->second;
}

int64_t Args::integer(const std::string& name) const {
  return to_int(str(name)).value_or(0);
}
double Args::real(const std::string& name) const {
  return to_float(str(name)).value_or(0.0);
}

std::string Command::usage() const {
  std::string u = name;
  for (const ArgSpec& a : args)
    u += a.required ? fmt::format(" {}", a.name) : fmt::format(" [{}]", a.name);
  for (const FlagSpec& f : flags)
    u += f.takes_value ? fmt::format(" [--{} {}]", f.name, "V") : fmt::format(" [--{}]", f.name);
  return u;
}

std::vector<std::string> split_statements(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  char quote = 0;
  char prev = ' ';
  for (char ch : text) {
    if (quote) {
      if (ch == quote) quote = 0;
    } else if (ch == '#' && (prev == ' ' || prev == '\t')) {
      break;  // `# comment` to the end of the line (a '#' inside a word or quotes stays)
    } else if (ch == '"' || ch == '\'') {
      quote = ch;
    } else if (ch == ';') {
      out.push_back(cur);
      cur.clear();
      prev = ' ';
      continue;
    }
    cur += ch;
    prev = ch;
  }
  out.push_back(cur);
  std::vector<std::string> trimmed;
  for (auto& s : out) {
    size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) continue;
    size_t b = s.find_last_not_of(" \t\r\n");
    trimmed.push_back(s.substr(a, b - a + 1));
  }
  return trimmed;
}

std::vector<Word> split_words(std::string_view line) {
  std::vector<Word> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    Word w;
    w.begin = i;
    char quote = 0;
    while (i < line.size() && (quote || (line[i] != ' ' && line[i] != '\t'))) {
      char ch = line[i];
      if (quote) {
        if (ch == quote)
          quote = 0;
        else
          w.text += ch;
      } else if (ch == '"' || ch == '\'') {
        quote = ch;
      } else {
        w.text += ch;
      }
      ++i;
    }
    w.end = i;
    out.push_back(std::move(w));
  }
  return out;
}

void Registry::add(Command c) {
  commands_.push_back(std::move(c));
}

const Command* Registry::find(std::string_view name) const {
  for (const Command& c : commands_) {
    if (c.name == name) return &c;
    for (const auto& a : c.aliases)
      if (a == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> Registry::suggestions(std::string_view unknown) const {
  std::vector<std::pair<int, std::string>> scored;
  for (const Command& c : commands_) {
    int d = edit_distance(unknown, c.name);
    bool prefix = !unknown.empty() && c.name.rfind(unknown, 0) == 0;
    if (prefix) d = 0;
    if (d <= std::max<int>(1, static_cast<int>(unknown.size()) / 3 + 1))
      scored.emplace_back(d, c.name);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (auto& [d, n] : scored) out.push_back(n);
  return out;
}

Args Registry::parse(const Command& c, const Session& s, std::string_view rest) const {
  Args out;
  std::vector<Word> words = split_words(rest);
  size_t pos = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    const Word& w = words[i];
    bool raw_dash = rest.substr(w.begin, 2) == "--";
    if (raw_dash && w.text.size() > 2) {
      std::string name = w.text.substr(2), value;
      size_t eq = name.find('=');
      bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      auto f = std::find_if(c.flags.begin(), c.flags.end(),
                            [&](const FlagSpec& x) { return x.name == name; });
      if (f == c.flags.end()) {
        std::string list;
        for (const auto& x : c.flags) list += (list.empty() ? "" : ", ") + ("--" + x.name);
        throw CommandError(
            fmt::format("{}: unknown option --{}{}", c.name, name,
                        list.empty() ? " (it takes none)" : " (options: " + list + ")"));
      }
      if (f->takes_value) {
        if (!inline_value) {
          if (i + 1 >= words.size())
            throw CommandError(fmt::format("{}: --{} needs a value", c.name, name));
          value = words[++i].text;
        }
        ArgSpec as;
        as.name = "--" + f->name;
        as.kind = f->kind;
        as.choices = f->choices;
        out.values_[f->name] = check_value(c, as, s, value);
      } else {
        if (inline_value) throw CommandError(fmt::format("{}: --{} takes no value", c.name, name));
        out.flags_.insert(f->name);
      }
      continue;
    }
    if (pos >= c.args.size())
      throw CommandError(
          fmt::format("{}: too many arguments ('{}'); usage: {}", c.name, w.text, c.usage()));
    const ArgSpec& a = c.args[pos++];
    if (a.kind == ArgKind::kText) {
      // The rest of the line, verbatim.
      out.values_[a.name] = strip_quotes(rest.substr(w.begin));
      break;
    }
    out.values_[a.name] = check_value(c, a, s, w.text);
  }
  for (const ArgSpec& a : c.args) {
    if (out.has(a.name)) continue;
    if (a.required)
      throw CommandError(fmt::format("{}: missing {}; usage: {}", c.name, a.name, c.usage()));
    if (!a.def.empty()) out.values_[a.name] = a.def;
  }
  return out;
}

Output Registry::run(Session& s, std::string_view line, const Context& ctx) const {
  std::vector<Word> words = split_words(line);
  if (words.empty()) return {};
  const Command* c = find(words[0].text);
  if (!c) {
    auto sug = suggestions(words[0].text);
    std::string hint =
        sug.empty() ? "; `help` lists the commands" : fmt::format("; did you mean '{}'?", sug[0]);
    throw CommandError(fmt::format("unknown command '{}'{}", words[0].text, hint));
  }
  Args args = parse(*c, s, line.substr(words[0].end));
  try {
    return c->run(s, args, ctx);
  } catch (const CommandError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommandError(fmt::format("{}: {}", c->name, e.what()));
  }
}

Completion Registry::complete(const Session& s, std::string_view line, size_t cursor) const {
  Completion out;
  std::string_view head = line.substr(0, std::min(cursor, line.size()));
  // Complete within the last statement only.
  size_t semi = head.rfind(';');
  size_t base = semi == std::string_view::npos ? 0 : semi + 1;
  std::string_view stmt = head.substr(base);
  std::vector<Word> words = split_words(stmt);
  bool fresh = stmt.empty() || stmt.back() == ' ' || stmt.back() == '\t';
  std::string current = fresh || words.empty() ? "" : words.back().text;
  out.start = base + (fresh || words.empty() ? stmt.size() : words.back().begin);
  size_t index = fresh ? words.size() : words.size() - 1;  // which word is being completed
  std::vector<std::string> pool;
  if (index == 0) {
    for (const Command& c : commands_) pool.push_back(c.name);
  } else if (const Command* c = find(words[0].text)) {
    const Word* prev = index >= 1 ? &words[index - 1] : nullptr;
    const FlagSpec* value_of = nullptr;
    if (prev && prev->text.rfind("--", 0) == 0)
      for (const FlagSpec& f : c->flags)
        if (f.takes_value && prev->text == "--" + f.name) value_of = &f;
    if (value_of) {
      pool = value_of->choices;
    } else if (current.rfind("-", 0) == 0) {
      for (const FlagSpec& f : c->flags) pool.push_back("--" + f.name);
    } else {
      // Count positionals before this word, skipping flags and their values.
      size_t npos = 0;
      for (size_t i = 1; i < index; ++i) {
        if (words[i].text.rfind("--", 0) == 0) {
          for (const FlagSpec& f : c->flags)
            if (f.takes_value && words[i].text == "--" + f.name) ++i;
          continue;
        }
        ++npos;
      }
      if (npos < c->args.size()) {
        const ArgSpec& a = c->args[npos];
        if (a.kind == ArgKind::kPath) out.paths = true;
        pool = candidates_for(a, s);
      }
      if (!out.paths && fresh && npos >= c->args.size())
        for (const FlagSpec& f : c->flags) pool.push_back("--" + f.name);
    }
  }
  for (auto& p : pool)
    if (p.rfind(current, 0) == 0) out.candidates.push_back(p);
  std::sort(out.candidates.begin(), out.candidates.end(),
            [](const std::string& a, const std::string& b) {
              auto na = to_int(a), nb = to_int(b);
              if (na && nb) return *na < *nb;
              return a < b;
            });
  out.candidates.erase(std::unique(out.candidates.begin(), out.candidates.end()),
                       out.candidates.end());
  return out;
}

std::string Registry::help(std::string_view name) const {
  if (name.empty()) {
    std::string out =
        "Commands (`help NAME` for details; Tab completes; `;` separates commands):\n";
    size_t w = 0;
    for (const Command& c : commands_) w = std::max(w, c.usage().size());
    w = std::min<size_t>(w, 38);
    for (const Command& c : commands_)
      out += fmt::format("  {:<{}}  {}\n", c.usage(), w, c.summary);
    return out;
  }
  const Command* c = find(name);
  if (!c) {
    auto sug = suggestions(name);
    throw CommandError(fmt::format("help: no command '{}'{}", name,
                                   sug.empty() ? "" : fmt::format("; did you mean '{}'?", sug[0])));
  }
  std::string out = fmt::format("usage: {}\n  {}\n", c->usage(), c->summary);
  if (!c->help.empty()) out += "\n" + c->help + "\n";
  if (!c->args.empty() || !c->flags.empty()) out += "\n";
  for (const ArgSpec& a : c->args) {
    std::string extra;
    if (!a.choices.empty()) {
      extra += " (";
      for (size_t i = 0; i < a.choices.size(); ++i) extra += (i ? "|" : "") + a.choices[i];
      extra += ")";
    }
    if (!a.def.empty()) extra += fmt::format(" [default {}]", a.def);
    out += fmt::format("  {:<14} {}{}\n", a.name, a.help, extra);
  }
  for (const FlagSpec& f : c->flags)
    out += fmt::format("  {:<14} {}\n", "--" + f.name + (f.takes_value ? " V" : ""), f.help);
  if (!c->aliases.empty()) {
    out += "  aliases:";
    for (const auto& a : c->aliases) out += " " + a;
    out += "\n";
  }
  return out;
}

ArgSpec arg(std::string name, ArgKind kind, std::string help, std::string def, bool required,
            std::vector<std::string> choices, int64_t lo, int64_t hi) {
  ArgSpec a;
  a.name = std::move(name);
  a.kind = kind;
  a.help = std::move(help);
  a.def = std::move(def);
  a.required = required;
  a.choices = std::move(choices);
  a.min = lo;
  a.max = hi;
  return a;
}

FlagSpec opt(std::string name, ArgKind kind, std::string help, std::vector<std::string> choices) {
  FlagSpec f;
  f.name = std::move(name);
  f.kind = kind;
  f.takes_value = true;
  f.help = std::move(help);
  f.choices = std::move(choices);
  return f;
}

FlagSpec json_flag() {
  FlagSpec f;
  f.name = "json";
  f.help = "machine-readable output (JSON)";
  return f;
}

}  // namespace dsv3::app

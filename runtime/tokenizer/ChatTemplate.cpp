#include "runtime/tokenizer/ChatTemplate.h"

#include <ctime>
#include <regex>

#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

bool contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}
bool startsWith(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}
bool endsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Python's str.lstrip/rstrip/strip with an explicit character set (ASCII only here).
std::string lstripChars(const std::string& s, const char* chars) {
  size_t b = s.find_first_not_of(chars);
  return b == std::string::npos ? std::string() : s.substr(b);
}
std::string rstripChars(const std::string& s, const char* chars) {
  size_t e = s.find_last_not_of(chars);
  return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}
std::string stripChars(const std::string& s, const char* chars) {
  return lstripChars(rstripChars(s, chars), chars);
}

// Jinja's `trim` filter is Python's str.strip(): Unicode whitespace on both ends.
std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t k = b;
    if (!utf8::isPythonSpace(utf8::next(s, k)))
      break;
    b = k;
  }
  while (e > b) {
    size_t p = e - 1;
    while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80)
      --p;
    size_t k = p;
    if (!utf8::isPythonSpace(utf8::next(s, k)))
      break;
    e = p;
  }
  return s.substr(b, e - b);
}

// Python's s.split(sep)[0] and s.split(sep)[-1].
std::string beforeFirst(const std::string& s, const std::string& sep) {
  size_t p = s.find(sep);
  return p == std::string::npos ? s : s.substr(0, p);
}
std::string afterLast(const std::string& s, const std::string& sep) {
  size_t p = s.rfind(sep);
  return p == std::string::npos ? s : s.substr(p + sep.size());
}

// A Qwen2-style default system prompt written literally in the template, e.g.
// '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'. Returns "" when there is none.
std::string literalDefaultSystem(const std::string& src) {
  const std::string head = "<|im_start|>system\\n";
  size_t pos = 0;
  while ((pos = src.find(head, pos)) != std::string::npos) {
    size_t b = pos + head.size();
    size_t e = src.find("<|im_end|>", b);
    pos = b;
    if (e == std::string::npos)
      break;
    std::string lit = src.substr(b, e - b);
    if (lit.empty() || lit.find_first_of("'\"{}+") != std::string::npos)
      continue;
    std::string out;
    for (size_t i = 0; i < lit.size(); ++i) {
      if (lit[i] == '\\' && i + 1 < lit.size() && lit[i + 1] == 'n') {
        out.push_back('\n');
        ++i;
      } else {
        out.push_back(lit[i]);
      }
    }
    return out;
  }
  return "";
}

std::string todayString() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%d %b %Y", &tm);
  return buf;
}

} // namespace

ChatTemplate ChatTemplate::detect(const std::string& src, const std::string& bos,
                                  const std::string& eos) {
  ChatTemplate t;
  t.bos_ = bos;
  t.eos_ = eos;
  if (src.empty())
    return t;
  if (contains(src, "<|im_start|>")) {
    t.family_ = "chatml";
    t.qwen3Thinking_ = contains(src, "reasoning_content") && contains(src, "<think>");
    t.defaultSystem_ = literalDefaultSystem(src);
  } else if (contains(src, "<|start_header_id|>")) {
    t.family_ = "llama3";
    t.genPromptGuarded_ = contains(src, "add_generation_prompt");
    t.llama31Header_ = contains(src, "Cutting Knowledge Date");
    std::smatch m;
    static const std::regex kDate("date_string = \"([^\"]+)\"");
    if (std::regex_search(src, m, kDate))
      t.dateString_ = m[1].str();
    else
      t.dateString_ = todayString();
    // Templates that call strftime_now use today's date when the caller gives none.
    if (contains(src, "strftime_now"))
      t.dateString_ = todayString();
  } else if (contains(src, "<\xEF\xBD\x9CUser\xEF\xBD\x9C>") ||
             contains(src, "<\xEF\xBD\x9C"
                           "Assistant\xEF\xBD\x9C>")) {
    t.family_ = "deepseek";
    t.stripThinking_ = contains(src, "</think>");
    t.genThink_ = contains(src, "<\xEF\xBD\x9C"
                                "Assistant\xEF\xBD\x9C><think>\\n");
  } else if (contains(src, "[INST]")) {
    t.family_ = "mistral";
  }
  return t;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& m, bool gen) const {
  if (family_ == "chatml")
    return renderChatml(m, gen);
  if (family_ == "llama3")
    return renderLlama3(m, gen);
  if (family_ == "deepseek")
    return renderDeepseek(m, gen);
  if (family_ == "mistral")
    return renderMistral(m);
  return renderPlain(m, gen);
}

std::string ChatTemplate::renderChatml(const std::vector<ChatMessage>& m, bool gen) const {
  std::string out;
  const size_t n = m.size();
  const bool firstIsSystem = n > 0 && m[0].role == "system";
  if (firstIsSystem)
    out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  else if (!defaultSystem_.empty())
    out += "<|im_start|>system\n" + defaultSystem_ + "<|im_end|>\n";

  // Qwen3: the last real user query (tool responses sent as user turns do not count); only
  // assistant turns after it keep their <think> block.
  size_t lastQuery = n == 0 ? 0 : n - 1;
  for (size_t k = n; k-- > 0;) {
    const ChatMessage& msg = m[k];
    if (msg.role == "user" && !(startsWith(msg.content, "<tool_response>") &&
                                endsWith(msg.content, "</tool_response>"))) {
      lastQuery = k;
      break;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      if (!qwen3Thinking_) {
        out += "<|im_start|>assistant\n" + msg.content + "<|im_end|>\n";
        continue;
      }
      std::string content = msg.content, reasoning;
      if (contains(msg.content, "</think>")) {
        content = lstripChars(afterLast(msg.content, "</think>"), "\n");
        reasoning = lstripChars(
            afterLast(rstripChars(beforeFirst(msg.content, "</think>"), "\n"), "<think>"), "\n");
      }
      if (i > lastQuery && (i + 1 == n || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n" + stripChars(reasoning, "\n") + "\n</think>\n\n" +
               lstripChars(content, "\n");
      } else {
        out += "<|im_start|>assistant\n" + content;
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      if (i == 0 || m[i - 1].role != "tool")
        out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (i + 1 == n || m[i + 1].role != "tool")
        out += "<|im_end|>\n";
    } else if (msg.role != "system") {
      // Roles the Qwen templates do not know are dropped by them; plain ChatML keeps them.
      if (!qwen3Thinking_)
        out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    }
  }
  if (gen)
    out += "<|im_start|>assistant\n";
  return out;
}

std::string ChatTemplate::renderLlama3(const std::vector<ChatMessage>& m, bool gen) const {
  std::string out;
  size_t first = 0;
  if (llama31Header_) {
    std::string system;
    if (!m.empty() && m[0].role == "system") {
      system = trim(m[0].content);
      first = 1;
    }
    out += bos_;
    out += "<|start_header_id|>system<|end_header_id|>\n\n";
    out += "Cutting Knowledge Date: December 2023\nToday Date: " + dateString_ + "\n\n";
    out += system + "<|eot_id|>";
  }
  for (size_t i = first; i < m.size(); ++i) {
    if (i == 0)
      out += bos_;
    out += "<|start_header_id|>" + m[i].role + "<|end_header_id|>\n\n" + trim(m[i].content) +
           "<|eot_id|>";
  }
  if (gen || !genPromptGuarded_)
    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string ChatTemplate::renderDeepseek(const std::vector<ChatMessage>& m, bool gen) const {
  // System prompts are gathered (joined by a blank line) and placed right after BOS.
  std::string system;
  bool firstSystem = true;
  for (const ChatMessage& msg : m) {
    if (msg.role != "system")
      continue;
    system += firstSystem ? msg.content : "\n\n" + msg.content;
    firstSystem = false;
  }
  const std::string user = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";
  const std::string assistant = "<\xEF\xBD\x9C"
                                "Assistant\xEF\xBD\x9C>";
  const std::string eos = "<\xEF\xBD\x9C"
                          "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
  const std::string outputsBegin = "<\xEF\xBD\x9Ctool\xE2\x96\x81outputs\xE2\x96\x81"
                                   "begin\xEF\xBD\x9C>";
  const std::string outputsEnd = "<\xEF\xBD\x9Ctool\xE2\x96\x81outputs\xE2\x96\x81"
                                 "end\xEF\xBD\x9C>";
  const std::string outputBegin = "<\xEF\xBD\x9Ctool\xE2\x96\x81output\xE2\x96\x81"
                                  "begin\xEF\xBD\x9C>";
  const std::string outputEnd = "<\xEF\xBD\x9Ctool\xE2\x96\x81output\xE2\x96\x81"
                                "end\xEF\xBD\x9C>";

  std::string out = bos_ + system;
  bool isTool = false, outputFirst = true;
  for (const ChatMessage& msg : m) {
    if (msg.role == "user") {
      isTool = false;
      out += user + msg.content;
    } else if (msg.role == "assistant") {
      std::string content = msg.content;
      if (stripThinking_ && contains(content, "</think>"))
        content = afterLast(content, "</think>");
      if (isTool) {
        out += outputsEnd + content + eos;
        isTool = false;
      } else {
        out += assistant + content + eos;
      }
    } else if (msg.role == "tool") {
      isTool = true;
      if (outputFirst) {
        out += outputsBegin + outputBegin + msg.content + outputEnd;
        outputFirst = false;
      } else {
        out += "\n" + outputBegin + msg.content + outputEnd;
      }
    }
  }
  if (isTool)
    out += outputsEnd;
  if (gen && !isTool)
    out += genThink_ ? assistant + "<think>\n" : assistant;
  return out;
}

std::string ChatTemplate::renderMistral(const std::vector<ChatMessage>& m) const {
  // Mistral templates have no system role; like the later v0.3 templates we fold system text into
  // the first user turn. There is no generation prompt: "[/INST]" already ends the prompt.
  std::string system, out = bos_;
  for (const ChatMessage& msg : m)
    if (msg.role == "system")
      system += (system.empty() ? "" : "\n\n") + msg.content;
  bool firstUser = true;
  for (const ChatMessage& msg : m) {
    if (msg.role == "user") {
      std::string content = msg.content;
      if (firstUser && !system.empty())
        content = system + "\n\n" + content;
      firstUser = false;
      out += "[INST] " + content + " [/INST]";
    } else if (msg.role == "assistant") {
      out += msg.content + eos_;
    }
  }
  return out;
}

std::string ChatTemplate::renderPlain(const std::vector<ChatMessage>& m, bool gen) {
  std::string out;
  for (const ChatMessage& msg : m) {
    if (msg.role == "system") {
      out += msg.content + "\n\n";
    } else {
      std::string role = msg.role;
      if (!role.empty() && role[0] >= 'a' && role[0] <= 'z')
        role[0] = static_cast<char>(role[0] - 32);
      out += role + ": " + msg.content + "\n\n";
    }
  }
  if (gen)
    out += "Assistant:";
  return out;
}

} // namespace kt::tok

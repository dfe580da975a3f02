// Tokenizer throughput: encodes a text file with one or more tokenizer.json files and prints MB/s.
//
//   kt_tokenizer_bench CORPUS.txt TOKENIZER [TOKENIZER...]
//
// TOKENIZER is a tokenizer.json path or a folder holding one (its tokenizer_config.json, if any,
// is read too). Three passes per tokenizer:
//   paragraphs  the corpus cut at blank lines, each encoded on its own (prompt-sized inputs),
//               starting from an empty word cache;
//   again       the same paragraphs once more, with the word cache warm;
//   whole       the whole file as one string (stresses long inputs; for SentencePiece-style
//               tokenizers without a pre-tokenizer this is a single multi-megabyte BPE word);
// then decode of all the paragraph ids.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "runtime/tokenizer/Tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

bool isDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

std::vector<std::string> paragraphs(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    end = end == std::string::npos ? text.size() : end + 2;
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CORPUS.txt TOKENIZER [TOKENIZER...]\n", argv[0]);
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string corpus = ss.str();
  const std::vector<std::string> paras = paragraphs(corpus);
  const double mb = corpus.size() / 1e6;
  std::printf("corpus %s: %.2f MB, %zu paragraphs\n", argv[1], mb, paras.size());

  for (int a = 2; a < argc; ++a) {
    std::string path = argv[a], config;
    if (isDir(path)) {
      config = path + "/tokenizer_config.json";
      path += "/tokenizer.json";
    } else {
      size_t slash = path.find_last_of('/');
      config =
          (slash == std::string::npos ? "." : path.substr(0, slash)) + "/tokenizer_config.json";
    }
    if (!exists(config))
      config.clear();
    std::string err;
    auto t0 = Clock::now();
    auto tok = kt::tok::Tokenizer::fromFiles(path, config, &err);
    auto t1 = Clock::now();
    if (!tok) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), err.c_str());
      return 1;
    }
    std::printf("%s (load %.2f s)\n", path.c_str(), seconds(t0, t1));

    for (const char* pass : {"paragraphs", "again"}) {
      size_t tokens = 0;
      auto b = Clock::now();
      for (const std::string& p : paras)
        tokens += tok->encode(p, false).size();
      auto e = Clock::now();
      std::printf("  encode %-10s %8.2f MB/s  %9zu tokens  %.3f s\n", pass, mb / seconds(b, e),
                  tokens, seconds(b, e));
    }
    {
      auto b = Clock::now();
      size_t tokens = tok->encode(corpus, false).size();
      auto e = Clock::now();
      std::printf("  encode %-10s %8.2f MB/s  %9zu tokens  %.3f s\n", "whole", mb / seconds(b, e),
                  tokens, seconds(b, e));
    }
    std::vector<std::vector<int32_t>> ids;
    ids.reserve(paras.size());
    for (const std::string& p : paras)
      ids.push_back(tok->encode(p, false));
    auto b = Clock::now();
    size_t bytes = 0;
    for (const auto& v : ids)
      bytes += tok->decode(v, false).size();
    auto e = Clock::now();
    std::printf("  decode            %8.2f MB/s  (%zu bytes)\n", bytes / 1e6 / seconds(b, e),
                bytes);
  }
  return 0;
}

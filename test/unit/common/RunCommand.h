#pragma once
// Helpers for tests that drive the real command-line tools.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace kt::testing_util {

struct Result {
  int code = -1;
  std::string output; // stdout (+ stderr, see run)
};

// Runs a shell command and captures stdout, and stderr unless the command redirects it itself.
// A command killed by a signal reports 128 + the signal, as a shell would.
inline Result run(const std::string& cmd) {
  Result r;
  bool ownRedirect = cmd.find("2>/dev/null") != std::string::npos;
  FILE* p = popen((ownRedirect ? cmd : cmd + " 2>&1").c_str(), "r");
  if (!p)
    return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    r.output.append(buf, n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// An empty scratch folder; the pid keeps concurrent runs (other build folders) apart.
inline std::string tempDir(const std::string& prefix, const std::string& name) {
  std::string d = ::testing::TempDir() + "/" + prefix + std::to_string(getpid()) + "_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// A command that must fail cleanly: non-zero exit, no crash (signal), and an error message that
// mentions each of `mentions` (the file, tensor, field or flag at fault).
inline void expectError(const Result& r, std::initializer_list<std::string> mentions) {
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_LT(r.code, 128) << "crashed: " << r.output;
  for (const auto& m : mentions)
    EXPECT_NE(r.output.find(m), std::string::npos) << "error should mention '" << m << "':\n"
                                                   << r.output;
}

// A tool of this build, e.g. tool("kt-rt") -> BUILD/tools/kt-rt/kt-rt.
inline std::string tool(const std::string& name) {
  return std::string(KT_BINARY_DIR) + "/tools/" + name + "/" + name;
}

// The two tools every CLI test drives, and the fixture models (targets that define
// KT_FIXTURES_DIR).
inline const std::string kCompile = tool("kt-compile");
inline const std::string kRt = tool("kt-rt");
#ifdef KT_FIXTURES_DIR
inline const std::string kFixtures = std::string(KT_FIXTURES_DIR) + "/hf";
#endif

} // namespace kt::testing_util

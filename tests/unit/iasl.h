// Running iasl (acpica-tools) from the ACPI table tests: a shell command's
// output and status, and whether iasl is installed at all (the one
// precondition under which those checks skip; anything else that stops them
// fails the test with its cause).
#ifndef PASSAGE_TESTS_UNIT_IASL_H_
#define PASSAGE_TESTS_UNIT_IASL_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

namespace passage::testing {

struct ShellResult {
  int status = -1;  // -1: it could not be run or was killed; `output` says why
  std::string output;  // stdout and stderr
};

inline ShellResult Shell(const std::string& cmd) {
  ShellResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    r.output = "popen(" + cmd + "): " + std::strerror(errno);
    return r;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  if (st == -1) {
    r.output += std::string("pclose: ") + std::strerror(errno);
  } else if (WIFEXITED(st)) {
    r.status = WEXITSTATUS(st);
  } else {
    r.output += "<killed by signal " + std::to_string(WTERMSIG(st)) + ">";
  }
  return r;
}

// Whether iasl is an executable in one of $PATH's directories. (A shell's
// `command -v` fails the same way when the shell cannot be started.)
inline bool HaveIasl() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path == nullptr ? "" : path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (access(((dir.empty() ? "." : dir) + "/iasl").c_str(), X_OK) == 0) return true;
  }
  return false;
}

inline constexpr char kNoIasl[] =
    "iasl not found in PATH (Debian package acpica-tools; tests/install-deps.sh installs it)";

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_IASL_H_

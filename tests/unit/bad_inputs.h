// Bad command lines run through the real passage binary, each in a fresh
// process with the fds it names open on /dev/null and no others: what
// passage says and its exit status. bad_input_test.cc asserts each answer
// (one line, naming the flag, non-zero exit) and that the README's table
// is this one; bad_input_table.cc prints the table for
// tests/bad-input-table.sh, which rewrites the README's block.
//
// All of these fail before passage opens /dev/kvm (usage errors), or on a
// passed "KVM" fd that is /dev/null: the table is the same with or without
// a usable /dev/kvm. Errors that need a real VFIO device or KVM (unknown
// BDF, device in use, reserved IOVA overlap) are the rig's
// (rig.passthrough_two) and the unit tests' over the fake kernel.
#ifndef PASSAGE_TESTS_UNIT_BAD_INPUTS_H_
#define PASSAGE_TESTS_UNIT_BAD_INPUTS_H_

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace passage::testing {

struct BadInput {
  const char* name;      // stable and readable: the test's name
  const char* args;      // split on spaces
  std::vector<int> fds;  // open on /dev/null in the child
  const char* names;     // the message must contain this (the flag, the fd)
};

inline const std::vector<BadInput>& BadInputs() {
  static const auto* const kInputs = new std::vector<BadInput>{
      {"NoKernel", "-m 1G", {}, "-kernel"},
      {"UnknownFlag", "-kernel bzImage -frobnicate", {}, "-frobnicate"},
      {"MemoryZero", "-kernel bzImage -m 0", {}, "-m"},
      {"MemoryUnit", "-kernel bzImage -m 12Q", {}, "-m"},
      {"SmpZero", "-kernel bzImage -smp 0", {}, "-smp"},
      {"SerialKind", "-kernel bzImage -serial tcp:1", {}, "-serial"},
      {"SandboxValue", "-kernel bzImage -sandbox maybe", {}, "-sandbox"},
      {"DmaMapValue", "-kernel bzImage -dma-map later", {}, "-dma-map"},
      {"QmpNotUnix", "-kernel bzImage -qmp tcp:localhost:4444,server=on", {}, "-qmp"},
      {"UnknownDevice", "-kernel bzImage -device foo", {}, "foo"},
      {"VfioPciWithoutHost", "-kernel bzImage -device vfio-pci", {}, "vfio-pci"},
      {"VfioPciUnknownKey", "-kernel bzImage -device vfio-pci,host=00:03.0,colour=red", {}, "colour"},
      {"AddrOutOfRange", "-kernel bzImage -device vfio-pci,host=00:03.0,addr=40", {}, "addr"},
      {"ObjectUnknownType", "-kernel bzImage -object memory-backend-ram,id=m0", {}, "memory-backend-ram"},
      {"ObjectWithoutId", "-kernel bzImage -object iommufd", {}, "id"},
      {"FdNotANumber", "-kernel bzImage -object iommufd,id=i0,fd=x", {}, "fd='x'"},
      {"FdWithSign", "-kernel bzImage -object iommufd,id=i0,fd=+3", {3}, "fd='+3'"},
      {"FdNotOpen", "-kernel bzImage -object iommufd,id=i0,fd=7", {}, "fd=7"},
      {"DeviceFdWithoutIommufd", "-kernel bzImage -device vfio-pci,fd=4", {4}, "iommufd"},
      {"FdRepeatedObjectDevice", "-kernel bzImage -object iommufd,id=i0,fd=3 -device vfio-pci,fd=3,iommufd=i0",
       {3}, "fd=3"},
      {"FdRepeatedAccelDevice", "-kernel bzImage -accel kvm,fd=3 -object iommufd,id=i0 -device vfio-pci,fd=3,iommufd=i0",
       {3}, "fd=3"},
      {"SeveralFdsKvmFdNotKvm",
       "-kernel bzImage -accel kvm,fd=5 -object iommufd,id=i0,fd=3 -device vfio-pci,fd=4,iommufd=i0 --report-resources",
       {3, 4, 5}, "-accel kvm"},
  };
  return *kInputs;
}

// gtest would print the parameter as raw bytes.
inline void PrintTo(const BadInput& in, std::ostream* os) { *os << in.name; }

struct BadInputResult {
  std::vector<std::string> stderr_lines;
  int exit_status = -1;  // -1: not exited normally
};

// Runs `passage` with `input` in a child that has only stdin, stdout
// (/dev/null), stderr (a pipe) and the input's fds.
inline BadInputResult RunBadInput(const std::string& passage, const BadInput& input) {
  std::vector<std::string> args = {passage};
  for (absl::string_view a : absl::StrSplit(input.args, ' ', absl::SkipEmpty())) args.emplace_back(a);
  int pipefd[2];
  BadInputResult r;
  if (pipe2(pipefd, O_CLOEXEC) != 0) return r;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 2);
    const int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    close_range(3, ~0u, 0);
    for (int fd : input.fds) {
      const int f = open("/dev/null", O_RDWR);
      if (f != fd) {
        dup2(f, fd);
        close(f);
      }
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) err.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)) r.exit_status = WEXITSTATUS(status);
  for (absl::string_view l : absl::StrSplit(err, '\n', absl::SkipEmpty())) r.stderr_lines.emplace_back(l);
  return r;
}

// The README's table: input -> what passage says -> exit status.
inline std::string BadInputTable(const std::string& passage) {
  std::string out =
      "| input | passage says (stderr) | exit |\n"
      "|---|---|---|\n";
  for (const BadInput& in : BadInputs()) {
    const BadInputResult r = RunBadInput(passage, in);
    std::string input = absl::StrCat("`passage ", in.args, "`");
    if (!in.fds.empty()) absl::StrAppend(&input, " (fd ", absl::StrJoin(in.fds, ", "), " open)");
    std::vector<std::string> said;
    for (const std::string& l : r.stderr_lines) said.push_back(absl::StrCat("`", l, "`"));
    absl::StrAppend(&out, "| ", absl::StrReplaceAll(input, {{"|", "\\|"}}), " | ",
                    absl::StrReplaceAll(absl::StrJoin(said, "<br>"), {{"|", "\\|"}}), " | ", r.exit_status,
                    " |\n");
  }
  return out;
}

inline constexpr char kBadInputBegin[] = "<!-- bad-input-table: generated by tests/bad-input-table.sh; do not edit -->";
inline constexpr char kBadInputEnd[] = "<!-- bad-input-table end -->";

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_BAD_INPUTS_H_

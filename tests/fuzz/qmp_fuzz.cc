// What a QMP client sends: any bytes, cut into reads of any length, some
// reads carrying fds (as SCM_RIGHTS would), through the fd router, the
// framer and the session (against the unit tests' recording target, which
// accepts everything and keeps the fds devices take). Never a crash, every
// reply is one line of valid JSON, the framer's and the router's memory
// stay within their caps, and once the session is gone every fd the client
// sent is closed, whatever the messages were.
//
// Input: byte 0: bits 0-3 the read length - 1, bit 7 negotiate first;
// byte 1: how many fds each read carries, 2 bits per read, cycling; then
// the stream.
#include <fcntl.h>
#include <sys/eventfd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "tests/unit/qmp_fake_target.h"
#include "vmm/qmp_commands.h"
#include "vmm/qmp_framing.h"

namespace {

constexpr size_t kMaxMessage = 1024;
constexpr size_t kMaxPendingFds = 4;

void CheckReply(const nlohmann::json& reply) {
  const std::string line = passage::QmpLine(reply);
  FUZZ_FAIL_IF(line.find('\n') != line.size() - 1);
  FUZZ_FAIL_IF(!nlohmann::json::accept(line));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t chunk = (data[0] & 0x0f) + 1;
  const uint8_t fd_pattern = data[1];
  const std::string text(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::vector<int> sent;  // every fd number the client sent
  {
    passage::testing::FakeTarget target;
    passage::QmpFdSets fdsets;
    passage::QmpSession session(target, fdsets, "0.1.0");
    passage::QmpFramer framer(kMaxMessage);
    passage::QmpFdRouter router(kMaxPendingFds);
    if (data[0] & 0x80) {
      passage::QmpFramer::Frame f;
      f.text = R"({"execute": "qmp_capabilities"})";
      CheckReply(session.Handle(f, {}));
    }
    for (size_t at = 0, read = 0; at < text.size(); at += chunk, ++read) {
      std::vector<passage::UniqueFd> received;
      const int nfds = (fd_pattern >> (2 * (read % 4))) & 3;
      for (int i = 0; i < nfds; ++i) {
        // A new fd number each time (what SCM_RIGHTS gives), for the price
        // of a dup: creating an eventfd per fd was a tenth of the run.
        static const int kFile = eventfd(0, EFD_CLOEXEC);
        const int fd = fcntl(kFile, F_DUPFD_CLOEXEC, 0);
        FUZZ_FAIL_IF(kFile < 0 || fd < 0);
        sent.push_back(fd);
        received.emplace_back(fd);
      }
      std::vector<passage::QmpFramer::Frame> frames;
      const bool ok = framer.Feed(absl::string_view(text).substr(at, chunk), frames);
      FUZZ_FAIL_IF(framer.pending() > kMaxMessage);
      std::vector<std::vector<passage::UniqueFd>> fds =
          router.Route(frames.size(), std::move(received));
      FUZZ_FAIL_IF(fds.size() != frames.size() || router.pending() > kMaxPendingFds);
      for (size_t i = 0; i < frames.size(); ++i)
        CheckReply(session.Handle(frames[i], std::move(fds[i])));
      if (!ok) break;  // the server hangs up here
    }
  }
  // The session, its fd sets and the target are gone: nothing the client
  // sent may still be open.
  for (int fd : sent) {
    FUZZ_FAIL_IF(fcntl(fd, F_GETFD) != -1);
  }
  return 0;
}

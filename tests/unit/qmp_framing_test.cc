#include "vmm/qmp_framing.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <string>
#include <vector>

namespace passage {
namespace {

std::vector<std::string> Texts(const std::vector<QmpFramer::Frame>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.push_back(f.too_deep ? "<too deep>" : f.text);
  return out;
}

TEST(QmpFramer, CoalescedMessagesAreSplit) {
  QmpFramer framer;
  std::vector<QmpFramer::Frame> frames;
  ASSERT_TRUE(framer.Feed("{\"execute\":\"a\"}{\"execute\":\"b\"}\r\n  {\"execute\":\"c\"}\n", frames));
  EXPECT_EQ(Texts(frames), (std::vector<std::string>{"{\"execute\":\"a\"}", "{\"execute\":\"b\"}",
                                                      "{\"execute\":\"c\"}"}));
  EXPECT_EQ(framer.pending(), 0u);
}

TEST(QmpFramer, SplitMessageCompletesOnlyAtItsEnd) {
  const std::string msg = R"({"execute": "device_add", "arguments": {"driver": "x", "id": "a\"}{"}})";
  QmpFramer framer;
  std::vector<QmpFramer::Frame> frames;
  for (size_t i = 0; i + 1 < msg.size(); ++i) {
    ASSERT_TRUE(framer.Feed(msg.substr(i, 1), frames));
    ASSERT_TRUE(frames.empty()) << "complete after byte " << i;
  }
  ASSERT_TRUE(framer.Feed(msg.substr(msg.size() - 1), frames));
  EXPECT_EQ(Texts(frames), std::vector<std::string>{msg});
}

TEST(QmpFramer, BracesInsideStringsAndEscapesDoNotCount) {
  QmpFramer framer;
  std::vector<QmpFramer::Frame> frames;
  ASSERT_TRUE(framer.Feed(R"({"a": "}}}\\"} {"b": "\\\"{"})", frames));
  EXPECT_EQ(Texts(frames), (std::vector<std::string>{R"({"a": "}}}\\"})", R"({"b": "\\\"{"})"}));
}

TEST(QmpFramer, GarbageEndsAtBlanksAndBrackets) {
  QmpFramer framer;
  std::vector<QmpFramer::Frame> frames;
  ASSERT_TRUE(framer.Feed("foo 42{\"x\":1}] \"str\" [1,2]", frames));
  EXPECT_EQ(Texts(frames), (std::vector<std::string>{"foo", "42", "{\"x\":1}", "]", "\"str\"", "[1,2]"}));
}

TEST(QmpFramer, TooDeepIsOneFrameWithoutText) {
  QmpFramer framer;
  std::vector<QmpFramer::Frame> frames;
  const std::string deep = std::string(1000, '[') + std::string(1000, ']');
  ASSERT_TRUE(framer.Feed(deep + "{}", frames));
  EXPECT_EQ(Texts(frames), (std::vector<std::string>{"<too deep>", "{}"}));
}

TEST(QmpFramer, OversizedMessageBreaksTheStream) {
  QmpFramer framer(100);
  std::vector<QmpFramer::Frame> frames;
  ASSERT_TRUE(framer.Feed("{\"ok\":1}", frames));
  EXPECT_FALSE(framer.Feed("{\"a\":\"" + std::string(200, 'x'), frames));
  EXPECT_TRUE(framer.overflowed());
  EXPECT_FALSE(framer.Feed("}", frames));
  EXPECT_EQ(Texts(frames), std::vector<std::string>{"{\"ok\":1}"});
  // Exactly at the cap is fine.
  QmpFramer exact(10);
  frames.clear();
  EXPECT_TRUE(exact.Feed("{\"a\":\"12\"}", frames));
  EXPECT_EQ(frames.size(), 1u);
}

// The server's fd routing (QmpFdRouter), as fuzz_qmp drives it.
std::vector<UniqueFd> Eventfds(int n, std::vector<int>& numbers) {
  std::vector<UniqueFd> out;
  for (int i = 0; i < n; ++i) {
    out.emplace_back(eventfd(0, EFD_CLOEXEC));
    numbers.push_back(out.back().get());
  }
  return out;
}
bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(QmpFdRouter, FdsGoToTheFirstAndLastMessageOfARead) {
  QmpFdRouter router(4);
  std::vector<int> early, late;
  // A read that completes no message: its fds wait.
  EXPECT_TRUE(router.Route(0, Eventfds(2, early)).empty());
  EXPECT_EQ(router.pending(), 2u);
  // A read completing three: the waiting fds to the first, its own to the last.
  std::vector<std::vector<UniqueFd>> fds = router.Route(3, Eventfds(1, late));
  ASSERT_EQ(fds.size(), 3u);
  ASSERT_EQ(fds[0].size(), 2u);
  EXPECT_EQ(fds[0][0].get(), early[0]);
  EXPECT_EQ(fds[0][1].get(), early[1]);
  EXPECT_TRUE(fds[1].empty());
  ASSERT_EQ(fds[2].size(), 1u);
  EXPECT_EQ(fds[2][0].get(), late[0]);
  EXPECT_EQ(router.pending(), 0u);
}

TEST(QmpFdRouter, FdsOverTheCapAreClosedAndTheRestCloseWithTheRouter) {
  std::vector<int> numbers;
  {
    QmpFdRouter router(2);
    router.Route(0, Eventfds(3, numbers));
    EXPECT_EQ(router.pending(), 2u);
    EXPECT_TRUE(IsOpen(numbers[0]));
    EXPECT_TRUE(IsOpen(numbers[1]));
    EXPECT_FALSE(IsOpen(numbers[2])) << "the fd over the cap is still open";
  }
  EXPECT_FALSE(IsOpen(numbers[0]));
  EXPECT_FALSE(IsOpen(numbers[1]));
}

}  // namespace
}  // namespace passage

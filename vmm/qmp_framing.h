// QMP's wire format is a stream of JSON texts with no delimiter: this finds
// where each top-level value ends (tracking strings, escapes and nesting), so
// that every complete one can be handed to the JSON parser on its own. It
// never parses: malformed text still ends somewhere and is reported by the
// parser, so one bad message costs the client one error reply, not the
// connection (as in QEMU). Only a message longer than the cap ends the
// connection, since its end can no longer be trusted.
#ifndef PASSAGE_VMM_QMP_FRAMING_H_
#define PASSAGE_VMM_QMP_FRAMING_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "memory/unique_fd.h"

namespace passage {

class QmpFramer {
 public:
  // One top-level value found in the stream.
  struct Frame {
    std::string text;  // the value's bytes (empty when too_deep)
    bool too_deep = false;  // nested deeper than kMaxDepth; the text was dropped
  };
  static constexpr size_t kDefaultMaxMessage = 1 << 20;
  // QEMU's JSON streamer refuses deeper nesting too; no QMP command needs it.
  static constexpr int kMaxDepth = 64;

  explicit QmpFramer(size_t max_message = kDefaultMaxMessage) : max_message_(max_message) {}

  // Adds bytes; complete values go to `out`, in order. False once a message
  // has grown past the cap: the stream is unusable from then on.
  bool Feed(absl::string_view bytes, std::vector<Frame>& out);
  // Bytes of a value begun but not complete (0 between messages).
  size_t pending() const { return current_.size(); }
  bool overflowed() const { return overflowed_; }

 private:
  void Finish(std::vector<Frame>& out);

  const size_t max_message_;
  std::string current_;
  size_t length_ = 0;  // bytes of the current value, also those dropped when too deep
  int depth_ = 0;  // open '{' and '['
  bool in_value_ = false;  // inside a top-level value
  bool in_string_ = false;
  bool escape_ = false;
  bool scalar_ = false;  // the value is a bare word or number (ends at whitespace or a bracket)
  bool too_deep_ = false;
  bool overflowed_ = false;
};

// Which message the fds a client sends (SCM_RIGHTS) belong to. The kernel
// ends a read right after the data that carried fds, so a read's own fds go
// to the last message it completed; fds from reads that completed none wait
// for the first message a later read completes (at most `max_pending` wait,
// the rest are closed at once). Every fd is owned from Route on: the caller
// hands each message its fds, and fds still waiting close with the router.
class QmpFdRouter {
 public:
  explicit QmpFdRouter(size_t max_pending) : max_pending_(max_pending) {}

  // One read that brought `received` and completed `frames` messages: the
  // fds of each of those messages, in order (`frames` entries).
  std::vector<std::vector<UniqueFd>> Route(size_t frames, std::vector<UniqueFd> received);
  size_t pending() const { return pending_.size(); }

 private:
  const size_t max_pending_;
  std::vector<UniqueFd> pending_;
};

}  // namespace passage

#endif  // PASSAGE_VMM_QMP_FRAMING_H_

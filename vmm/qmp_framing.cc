#include "vmm/qmp_framing.h"

namespace passage {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsBracket(char c) { return c == '{' || c == '}' || c == '[' || c == ']'; }

}  // namespace

void QmpFramer::Finish(std::vector<Frame>& out) {
  Frame f;
  f.too_deep = too_deep_;
  if (!too_deep_) f.text = std::move(current_);
  out.push_back(std::move(f));
  current_.clear();
  length_ = 0;
  depth_ = 0;
  in_value_ = in_string_ = escape_ = scalar_ = too_deep_ = false;
}

bool QmpFramer::Feed(absl::string_view bytes, std::vector<Frame>& out) {
  if (overflowed_) return false;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (!in_value_) {
      if (IsSpace(c)) continue;
      in_value_ = true;
      if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        depth_ = 1;
      } else if (c == '}' || c == ']') {
        // A stray closing bracket is a value of its own (the parser rejects it).
        current_ += c;
        length_ = 1;
        Finish(out);
        continue;
      } else {
        scalar_ = true;
      }
    } else if (scalar_) {
      if (IsSpace(c) || IsBracket(c) || c == '"') {
        Finish(out);
        --i;  // this byte begins the next value (or is skipped as blank)
        continue;
      }
    } else if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      if (++depth_ > kMaxDepth && !too_deep_) {
        too_deep_ = true;
        current_.clear();
        current_.shrink_to_fit();
      }
    } else if (c == '}' || c == ']') {
      --depth_;
    }
    if (++length_ > max_message_) {
      overflowed_ = true;
      current_.clear();
      current_.shrink_to_fit();
      return false;
    }
    if (!too_deep_) current_ += c;
    if (!scalar_ && !in_string_ && depth_ == 0) Finish(out);
  }
  return true;
}

std::vector<std::vector<UniqueFd>> QmpFdRouter::Route(size_t frames, std::vector<UniqueFd> received) {
  std::vector<std::vector<UniqueFd>> out(frames);
  if (frames == 0) {
    for (UniqueFd& f : received) {
      if (pending_.size() < max_pending_) pending_.push_back(std::move(f));
    }
    return out;  // any over the cap close with `received`
  }
  out.front() = std::move(pending_);
  pending_.clear();
  for (UniqueFd& f : received) out.back().push_back(std::move(f));
  return out;
}

}  // namespace passage

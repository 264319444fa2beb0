// Fault injection for the unit tests' fakes (the fake kernel behind Sys,
// the fake interrupt controller, the fake BAR memslot mapper): every
// fallible call a fake serves is named ("open", "IOMMU_IOAS_ALLOC",
// "mmap", "memslot", ...) and counted, and the Nth call of one name can be
// made to fail with an errno. A test records the calls of a run that
// succeeds (trace()), then fails each of them in turn.
#ifndef PASSAGE_TESTS_UNIT_FAULT_PLAN_H_
#define PASSAGE_TESTS_UNIT_FAULT_PLAN_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace passage::testing {

class FaultPlan {
 public:
  // The `nth` (0-based) call named `call` from now on fails with `err`.
  void FailNth(std::string call, int nth, int err) {
    absl::MutexLock lock(&mu_);
    fault_ = Fault{std::move(call), nth, err};
  }
  // Called by a fake before it serves `call`: the errno to fail it with,
  // or 0. Records the call.
  int Check(const std::string& call) {
    absl::MutexLock lock(&mu_);
    const int n = counts_[call]++;
    trace_.push_back({call, n});
    if (fault_.has_value() && fault_->call == call && fault_->nth == n) {
      fired_ = true;
      return fault_->err;
    }
    return 0;
  }
  // Every call checked so far, in order, with its index among its name.
  std::vector<std::pair<std::string, int>> trace() const {
    absl::MutexLock lock(&mu_);
    return trace_;
  }
  bool fired() const {
    absl::MutexLock lock(&mu_);
    return fired_;
  }

 private:
  struct Fault {
    std::string call;
    int nth;
    int err;
  };
  mutable absl::Mutex mu_;
  std::optional<Fault> fault_ ABSL_GUARDED_BY(mu_);
  bool fired_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, int> counts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int>> trace_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_FAULT_PLAN_H_

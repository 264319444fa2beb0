// Thin RAII wrappers over the KVM ioctl interface.
#ifndef PASSAGE_VMM_KVM_H_
#define PASSAGE_VMM_KVM_H_

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "memory/unique_fd.h"

namespace passage {

// The /dev/kvm system fd.
class Kvm {
 public:
  static absl::StatusOr<Kvm> Open(const char* path = "/dev/kvm");
  // Takes an already-open /dev/kvm (-accel kvm,fd=N); opens nothing. The
  // fd is closed when this fails.
  static absl::StatusOr<Kvm> Adopt(UniqueFd fd);
  int fd() const { return fd_.get(); }
  int CheckExtension(int cap) const;
  absl::StatusOr<int> VcpuMmapSize() const;
  // KVM_GET_SUPPORTED_CPUID, as a kvm_cpuid2 with its entries appended.
  absl::StatusOr<std::vector<kvm_cpuid_entry2>> SupportedCpuid() const;

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  static absl::StatusOr<Kvm> Checked(UniqueFd fd, absl::string_view what);
  UniqueFd fd_;
};

// ioctl() that retries on EINTR.
int Ioctl(int fd, unsigned long request, const void* arg);
int Ioctl(int fd, unsigned long request, unsigned long arg);

}  // namespace passage

#endif  // PASSAGE_VMM_KVM_H_

#include "vmm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace passage {

int Ioctl(int fd, unsigned long request, const void* arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

int Ioctl(int fd, unsigned long request, unsigned long arg) {
  int r;
  do {
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  return r;
}

absl::StatusOr<Kvm> Kvm::Open(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(absl::StrCat("opening ", path));
  return Checked(std::move(fd), path);
}

absl::StatusOr<Kvm> Kvm::Adopt(UniqueFd fd) {
  const std::string what = absl::StrCat("-accel kvm,fd=", fd.get());
  return Checked(std::move(fd), what);
}

absl::StatusOr<Kvm> Kvm::Checked(UniqueFd fd, absl::string_view what) {
  const int version = Ioctl(fd.get(), KVM_GET_API_VERSION, 0ul);
  if (version != KVM_API_VERSION) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, ": not a usable /dev/kvm (KVM API version ", version, ", expected ",
        KVM_API_VERSION, ")"));
  }
  return Kvm(std::move(fd));
}

int Kvm::CheckExtension(int cap) const {
  const int r = Ioctl(fd_.get(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap));
  return r < 0 ? 0 : r;
}

absl::StatusOr<int> Kvm::VcpuMmapSize() const {
  const int size = Ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0ul);
  if (size <= 0) return ErrnoError("KVM_GET_VCPU_MMAP_SIZE");
  return size;
}

absl::StatusOr<std::vector<kvm_cpuid_entry2>> Kvm::SupportedCpuid() const {
  for (size_t n = 64; n <= 4096; n *= 2) {
    std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
    cpuid->nent = static_cast<uint32_t>(n);
    if (Ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
      return std::vector<kvm_cpuid_entry2>(cpuid->entries, cpuid->entries + cpuid->nent);
    }
    if (errno != E2BIG) return ErrnoError("KVM_GET_SUPPORTED_CPUID");
  }
  return absl::InternalError("KVM_GET_SUPPORTED_CPUID: too many entries");
}

}  // namespace passage

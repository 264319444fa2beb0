// VFIO's variable-size info replies (VFIO_IOMMU_GET_INFO on a container,
// VFIO_DEVICE_GET_REGION_INFO on a device): the buffer grows until the
// kernel's argsz fits, and the capability chain after the fixed struct is
// walked. Both are done here once, bounded and bounds-checked, because every
// offset in the chain comes from the kernel.
#ifndef PASSAGE_IOMMU_VFIO_INFO_H_
#define PASSAGE_IOMMU_VFIO_INFO_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "iommu/sys.h"

namespace passage {

// Issues `request` on `fd` with a zeroed buffer whose leading u32 is argsz
// (every VFIO info struct starts with it). `prepare` fills the request's
// input fields before each try. Grows the buffer to the argsz the kernel
// asks for, at most twice. Errors start with `what`.
absl::StatusOr<std::vector<uint8_t>> VfioQueryInfo(Sys* sys, int fd, unsigned long request,
                                                   size_t fixed_size,
                                                   absl::FunctionRef<void(uint8_t*)> prepare,
                                                   const std::string& what);

// One capability: its header's id and version, and the bytes from the
// header to the end of the buffer (the capability cannot be longer).
struct VfioInfoCap {
  uint16_t id = 0;
  uint16_t version = 0;
  std::span<const uint8_t> bytes;

  // The capability as T, or nullptr when T does not fit.
  template <typename T>
  const T* As() const {
    return bytes.size() >= sizeof(T) ? reinterpret_cast<const T*>(bytes.data()) : nullptr;
  }
  // How many E fit after a T (for the kernel's trailing arrays).
  template <typename T, typename E>
  size_t Room() const {
    return bytes.size() >= sizeof(T) ? (bytes.size() - sizeof(T)) / sizeof(E) : 0;
  }
};

// The capability chain of `buf` starting at offset `first` (0: none). A
// capability must start after the fixed struct (`fixed_size`) and its header
// fit in `buf`; the walk stops there, or after 64 hops (a looping chain).
std::vector<VfioInfoCap> VfioInfoCaps(std::span<const uint8_t> buf, size_t fixed_size,
                                      uint32_t first);

}  // namespace passage

#endif  // PASSAGE_IOMMU_VFIO_INFO_H_

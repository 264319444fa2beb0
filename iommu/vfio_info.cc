#include "iommu/vfio_info.h"

#include <linux/vfio.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"

namespace passage {

absl::StatusOr<std::vector<uint8_t>> VfioQueryInfo(Sys* sys, int fd, unsigned long request,
                                                   size_t fixed_size,
                                                   absl::FunctionRef<void(uint8_t*)> prepare,
                                                   const std::string& what) {
  std::vector<uint8_t> buf(fixed_size);
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::fill(buf.begin(), buf.end(), 0);
    const uint32_t argsz = static_cast<uint32_t>(buf.size());
    std::memcpy(buf.data(), &argsz, sizeof(argsz));
    prepare(buf.data());
    if (sys->Ioctl(fd, request, buf.data()) != 0) return ErrnoError(what);
    uint32_t want = 0;
    std::memcpy(&want, buf.data(), sizeof(want));
    if (want <= buf.size()) return buf;
    buf.resize(want);  // capabilities did not fit: ask again with room
  }
  return absl::InternalError(absl::StrCat(what, ": the reply keeps growing"));
}

std::vector<VfioInfoCap> VfioInfoCaps(std::span<const uint8_t> buf, size_t fixed_size,
                                      uint32_t first) {
  std::vector<VfioInfoCap> caps;
  uint32_t off = first;
  for (int hops = 0; off != 0 && hops < 64; ++hops) {
    if (off < fixed_size || off > buf.size() || buf.size() - off < sizeof(vfio_info_cap_header)) {
      break;
    }
    vfio_info_cap_header hdr;
    std::memcpy(&hdr, buf.data() + off, sizeof(hdr));
    caps.push_back({hdr.id, hdr.version, buf.subspan(off)});
    off = hdr.next;
  }
  return caps;
}

}  // namespace passage

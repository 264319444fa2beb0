// The uAPI macro's name of an iommufd/VFIO/KVM-VFIO ioctl request, for
// messages and measurements (the unit tests' fake kernel, passage-bench's
// per-step set-up times). VFIO reuses numbers across fd kinds
// (VFIO_IOMMU_MAP_DMA on a container is VFIO_DEVICE_PCI_HOT_RESET on a
// device), so the caller says whether the fd is a container.
#ifndef PASSAGE_IOMMU_IOCTL_NAMES_H_
#define PASSAGE_IOMMU_IOCTL_NAMES_H_

#include <string>

namespace passage {

// E.g. "VFIO_DEVICE_BIND_IOMMUFD"; a request not in the table reads
// "ioctl_0x...".
std::string IoctlName(unsigned long request, bool on_container);

}  // namespace passage

#endif  // PASSAGE_IOMMU_IOCTL_NAMES_H_

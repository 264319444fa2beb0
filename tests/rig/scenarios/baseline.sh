# Baseline: the rig's L1 offers everything passage builds on.
#   /dev/iommu with a working IOAS; VFIO cdevs for edu and nvme, each mapped
#   to its PCI device; /dev/kvm with API 12 that creates a VM and runs a guest;
#   the legacy container API (VFIO_API_VERSION 0, type1v2); and per device the
#   VFIO baseline through both paths: cdev + iommufd and group + type1
#   container (config space IDs, BAR0 reads, and for edu its ID register, a
#   register write, and a DMA round trip through the IOMMU).
# rig: bind=1234:11e8,1b36:0010
# rig: timeout=300
# rig: expect=dev.iommu,dev.kvm,dev.vfio_container,cdev.1234:11e8,cdev.1b36:0010,group.1234:11e8
# rig: expect=edu.cdev.dma,edu.group.dma,nvme.cdev.attach_ioas,nvme.group.get_device_fd

EDU=1234:11e8
NVME=1b36:0010

expect_dev dev.iommu /dev/iommu c
expect_dev dev.kvm /dev/kvm c
expect_dev dev.vfio_container /dev/vfio/vfio c

# Every bound device has a cdev whose sysfs link leads back to that device,
# and a legacy group node.
for id in $EDU $NVME; do
  bdf=$(pci_find $id | head -n 1)
  cdev=$(pci_cdev "$bdf")
  group=$(pci_group "$bdf")
  if [ -z "$bdf" ]; then
    result "cdev.$id" false "no PCI device $id"
  elif [ -c "$cdev" ] && [ "$(basename "$(readlink "/sys/class/vfio-dev/${cdev##*/}/device")")" = "$bdf" ]; then
    result "cdev.$id" true "$bdf -> $cdev"
  else
    result "cdev.$id" false "$bdf: cdev '$cdev' missing or its /sys/class/vfio-dev link does not lead back"
  fi
  if [ -n "$group" ] && [ -c "/dev/vfio/$group" ]; then
    result "group.$id" true "$bdf -> iommu group $group, /dev/vfio/$group"
  else
    result "group.$id" false "$bdf: iommu group '$group', no char device /dev/vfio/$group"
  fi
done
rig-probe list

rig-probe kvm
rig-probe vfio-container
rig-probe iommufd

# VFIO baseline through the cdev + iommufd path, then the legacy group path.
rig-probe cdev $EDU --name edu --edu
rig-probe cdev $NVME --name nvme --bar0-read 0x8
rig-probe group $EDU --name edu --edu
rig-probe group $NVME --name nvme --bar0-read 0x8

# rig-probe's exit statuses are not the verdict: every check is a result.
exit 0

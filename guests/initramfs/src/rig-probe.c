// rig-probe: checks the rig's L1 kernel offers what passage needs.
//
// Runs inside the rig's L1 guest (statically linked, no libraries needed).
// Every check prints one machine-readable line on stdout:
//   RIG-RESULT {"name":"...","ok":true|false,"detail":"..."}
// and, when $RIG_RESULTS names a file, appends the same line to it (the L1
// init counts those lines to detect results garbled on the serial console).
// Exit status: 0 when every check passed, 1 when one failed, 2 on usage error.
//
//   rig-probe iommufd                       /dev/iommu opens, IOMMU_IOAS_ALLOC
//   rig-probe kvm                           /dev/kvm, API 12, KVM_CREATE_VM, tiny guest
//   rig-probe vfio-container                /dev/vfio/vfio: API version, type1v2
//   rig-probe list                          every /dev/vfio/devices/vfio* -> BDF, IDs
//   rig-probe cdev  SEL [options]           device via cdev + iommufd
//   rig-probe group SEL [options]           device via legacy group + type1 container
// SEL: /dev/vfio/devices/vfioN | DDDD:BB:DD.F | VVVV:DDDD (vendor:device)
// options:
//   --name LABEL        prefix of result names (default: the BDF)
//   --bar0 OFF=VAL      expect the 32-bit BAR0 register at OFF to read VAL
//   --bar0-read OFF     report the 32-bit BAR0 register at OFF (must not be ~0)
//   --edu               QEMU edu device: ID register, liveness, DMA round trip
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

static int g_failed;

// "ok" for rc >= 0, else the text of the errno the failing call left.
static const char *errstr(int rc) { return rc >= 0 ? "ok" : strerror(errno); }

// ---- output -------------------------------------------------------------

static void json_escape(char *out, size_t cap, const char *in) {
  size_t o = 0;
  for (; *in && o + 7 < cap; in++) {
    unsigned char c = (unsigned char)*in;
    if (c == '"' || c == '\\') {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = 0;
}

// Prints one RIG-RESULT line with a single write(2), so that it is not
// interleaved with other writers at a finer grain than a line.
__attribute__((format(printf, 3, 4))) static bool result(const char *name, bool ok,
                                                        const char *fmt, ...) {
  char detail[1024], ename[256], edetail[2048], line[2560];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  json_escape(ename, sizeof ename, name);
  json_escape(edetail, sizeof edetail, detail);
  int n = snprintf(line, sizeof line, "RIG-RESULT {\"name\":\"%s\",\"ok\":%s,\"detail\":\"%s\"}\n",
                   ename, ok ? "true" : "false", edetail);
  if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
  fflush(stdout);
  if (write(1, line, (size_t)n) < 0) { /* nothing better to do */ }
  const char *rf = getenv("RIG_RESULTS");
  if (rf && *rf) {
    int fd = open(rf, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      if (write(fd, line, (size_t)n) < 0) { /* counted as lost by init */ }
      close(fd);
    }
  }
  if (!ok) g_failed = 1;
  return ok;
}

static char g_prefix[128];
static const char *rname(const char *suffix) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s.%s", g_prefix, suffix);
  return buf;
}

// ---- sysfs helpers --------------------------------------------------------

static bool read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0) return false;
  buf[n] = 0;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
  return true;
}

static unsigned read_hex_file(const char *path) {
  char buf[64];
  if (!read_file(path, buf, sizeof buf)) return 0xffffffffu;
  return (unsigned)strtoul(buf, NULL, 16);
}

struct devsel {
  char bdf[32];
  char cdev[64];   // /dev/vfio/devices/vfioN, or "" when none
  char group[32];  // iommu group number, or ""
  unsigned vendor, device;
};

static bool is_bdf(const char *s) {
  unsigned a, b, c, d;
  char tail;
  return strlen(s) == 12 && sscanf(s, "%4x:%2x:%2x.%1x%c", &a, &b, &c, &d, &tail) == 4;
}

static void fill_from_bdf(struct devsel *d) {
  char path[512], link[512];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vendor", d->bdf);
  d->vendor = read_hex_file(path);
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/device", d->bdf);
  d->device = read_hex_file(path);
  d->cdev[0] = d->group[0] = 0;
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vfio-dev/vfio*", d->bdf);
  glob_t g;
  if (glob(path, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
    snprintf(d->cdev, sizeof d->cdev, "/dev/vfio/devices/%s", basename(g.gl_pathv[0]));
  }
  globfree(&g);
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", d->bdf);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n > 0) {
    link[n] = 0;
    snprintf(d->group, sizeof d->group, "%s", basename(link));
  }
}

// Resolves SEL to a PCI device; on failure writes the reason into err.
static bool resolve(const char *sel, struct devsel *d, char *err, size_t errcap) {
  memset(d, 0, sizeof *d);
  unsigned v, dv;
  char tail;
  if (strncmp(sel, "/dev/vfio/devices/", 18) == 0) {
    char path[512], link[512];
    snprintf(path, sizeof path, "/sys/class/vfio-dev/%s/device", sel + 18);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0) {
      snprintf(err, errcap, "%s: no %s (%s)", sel, path, strerror(errno));
      return false;
    }
    link[n] = 0;
    snprintf(d->bdf, sizeof d->bdf, "%s", basename(link));
  } else if (is_bdf(sel)) {
    snprintf(d->bdf, sizeof d->bdf, "%s", sel);
  } else if (strlen(sel) == 9 && sscanf(sel, "%4x:%4x%c", &v, &dv, &tail) == 2) {
    DIR *dir = opendir("/sys/bus/pci/devices");
    if (!dir) {
      snprintf(err, errcap, "opendir /sys/bus/pci/devices: %s", strerror(errno));
      return false;
    }
    struct dirent *e;
    while ((e = readdir(dir))) {
      if (e->d_name[0] == '.') continue;
      char path[512];
      snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/vendor", e->d_name);
      if (read_hex_file(path) != v) continue;
      snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/device", e->d_name);
      if (read_hex_file(path) != dv) continue;
      snprintf(d->bdf, sizeof d->bdf, "%.31s", e->d_name);
      break;
    }
    closedir(dir);
    if (!d->bdf[0]) {
      snprintf(err, errcap, "no PCI device %04x:%04x in /sys/bus/pci/devices", v, dv);
      return false;
    }
  } else {
    snprintf(err, errcap, "bad selector '%s' (want /dev/vfio/devices/vfioN, BDF or vvvv:dddd)", sel);
    return false;
  }
  char path[512];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s", d->bdf);
  if (access(path, F_OK) != 0) {
    snprintf(err, errcap, "%s: %s", path, strerror(errno));
    return false;
  }
  fill_from_bdf(d);
  return true;
}

// ---- iommufd ---------------------------------------------------------------

static int cmd_iommufd(void) {
  snprintf(g_prefix, sizeof g_prefix, "iommufd");
  int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
  if (!result("iommufd.open", fd >= 0, "/dev/iommu: %s", fd >= 0 ? "opened" : strerror(errno)))
    return 1;
  struct iommu_ioas_alloc a = {.size = sizeof a};
  int r = ioctl(fd, IOMMU_IOAS_ALLOC, &a);
  if (!result("iommufd.ioas_alloc", r == 0, "IOMMU_IOAS_ALLOC: %s, ioas_id=%u", errstr(r), a.out_ioas_id))
    return 1;
  // An IOAS with no device attached still takes a mapping (it is only pinned).
  size_t len = 2 * 4096;
  void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct iommu_ioas_map m = {.size = sizeof m,
                             .flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
                             .ioas_id = a.out_ioas_id,
                             .user_va = (uintptr_t)buf,
                             .length = len};
  r = ioctl(fd, IOMMU_IOAS_MAP, &m);
  int map_errno = errno;
  struct iommu_ioas_unmap u = {.size = sizeof u, .ioas_id = a.out_ioas_id, .iova = m.iova, .length = len};
  int ru = r == 0 ? ioctl(fd, IOMMU_IOAS_UNMAP, &u) : -1;
  int unmap_errno = errno;
  if (r != 0)
    result("iommufd.ioas_map", false, "IOMMU_IOAS_MAP: %s", strerror(map_errno));
  else if (ru != 0)
    result("iommufd.ioas_map", false, "mapped at iova 0x%llx; IOMMU_IOAS_UNMAP: %s",
           (unsigned long long)m.iova, strerror(unmap_errno));
  else
    result("iommufd.ioas_map", u.length == len,
           "mapped %zu bytes at kernel-chosen iova 0x%llx, unmapped %llu", len,
           (unsigned long long)m.iova, (unsigned long long)u.length);
  struct iommu_destroy d = {.size = sizeof d, .id = a.out_ioas_id};
  r = ioctl(fd, IOMMU_DESTROY, &d);
  result("iommufd.destroy", r == 0, "IOMMU_DESTROY(ioas %u): %s", a.out_ioas_id, errstr(r));
  close(fd);
  return g_failed;
}

// ---- kvm -------------------------------------------------------------------

static int cmd_kvm(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (!result("kvm.open", kvm >= 0, "/dev/kvm: %s", kvm >= 0 ? "opened" : strerror(errno))) return 1;
  int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (!result("kvm.api_version", api == KVM_API_VERSION, "KVM_GET_API_VERSION=%d (expect %d)%s%s", api,
              KVM_API_VERSION, api < 0 ? ": " : "", api < 0 ? strerror(errno) : ""))
    return 1;
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (!result("kvm.create_vm", vm >= 0, "KVM_CREATE_VM: %s", errstr(vm)))
    return 1;

  // A tiny real-mode guest at 0x1000: mov al,0x42; out 0x10,al; hlt.
  static const uint8_t code[] = {0xb0, 0x42, 0xe6, 0x10, 0xf4};
  const char *step = "";
  char why[256] = "";
  uint8_t *mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) { step = "mmap"; goto fail; }
  memcpy(mem, code, sizeof code);
  ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);  // needed by VMX without unrestricted guest only
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0x1000, .memory_size = 0x1000, .userspace_addr = (uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) { step = "KVM_SET_USER_MEMORY_REGION"; goto fail; }
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) { step = "KVM_CREATE_VCPU"; goto fail; }
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0) { step = "KVM_GET_VCPU_MMAP_SIZE"; goto fail; }
  struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) { step = "mmap kvm_run"; goto fail; }
  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) { step = "KVM_GET_SREGS"; goto fail; }
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) { step = "KVM_SET_SREGS"; goto fail; }
  struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) { step = "KVM_SET_REGS"; goto fail; }
  int saw_out = -1;
  for (int i = 0; i < 8; i++) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) { step = "KVM_RUN"; goto fail; }
    if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x10 &&
        run->io.size == 1) {
      saw_out = ((uint8_t *)run)[run->io.data_offset];
      continue;
    }
    if (run->exit_reason == KVM_EXIT_HLT) {
      return result("kvm.run_guest", saw_out == 0x42,
                    "tiny real-mode guest: out 0x10 <- 0x%02x (expect 0x42), then hlt", saw_out & 0xff)
                 ? g_failed
                 : 1;
    }
    snprintf(why, sizeof why, "unexpected exit_reason %u (hw reason 0x%llx)", run->exit_reason,
             (unsigned long long)run->hw.hardware_exit_reason);
    step = "KVM_RUN";
    errno = 0;
    goto fail;
  }
  result("kvm.run_guest", false, "guest did not halt after 8 exits");
  return 1;
fail:
  result("kvm.run_guest", false, "%s: %s", step, why[0] ? why : strerror(errno));
  return 1;
}

// ---- legacy container API ---------------------------------------------------

static int cmd_vfio_container(void) {
  int c = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
  if (!result("vfio.container.open", c >= 0, "/dev/vfio/vfio: %s", c >= 0 ? "opened" : strerror(errno)))
    return 1;
  int v = ioctl(c, VFIO_GET_API_VERSION);
  result("vfio.container.api_version", v == VFIO_API_VERSION, "VFIO_GET_API_VERSION=%d (expect %d)", v,
         VFIO_API_VERSION);
  int e = ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
  result("vfio.container.type1v2", e > 0, "VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)=%d", e);
  close(c);
  return g_failed;
}

// ---- list ------------------------------------------------------------------

static int cmd_list(void) {
  glob_t g;
  int r = glob("/dev/vfio/devices/vfio*", 0, NULL, &g);
  if (r != 0) {
    result("vfio.cdevs", false, "no /dev/vfio/devices/vfio* present");
    return 1;
  }
  for (size_t i = 0; i < g.gl_pathc; i++) {
    struct devsel d;
    char err[1024], name[64];
    snprintf(name, sizeof name, "vfio.cdev.%s", basename(g.gl_pathv[i]));
    struct stat st;
    bool chr = stat(g.gl_pathv[i], &st) == 0 && S_ISCHR(st.st_mode);
    if (!resolve(g.gl_pathv[i], &d, err, sizeof err))
      result(name, false, "%s", err);
    else
      result(name, chr && strcmp(d.cdev, g.gl_pathv[i]) == 0, "%s bdf=%s id=%04x:%04x group=%s%s", g.gl_pathv[i],
             d.bdf, d.vendor, d.device, d.group[0] ? d.group : "none", chr ? "" : " (not a char device)");
  }
  result("vfio.cdevs", true, "%zu cdev(s)", g.gl_pathc);
  globfree(&g);
  return g_failed;
}

// ---- device checks shared by the cdev and group paths --------------------------

struct dma_ops {
  int fd;          // iommufd or container
  uint32_t ioas;   // iommufd only
  bool iommufd;
};

static int dma_map(const struct dma_ops *o, void *va, uint64_t iova, uint64_t len) {
  if (o->iommufd) {
    struct iommu_ioas_map m = {.size = sizeof m,
                               .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                                        IOMMU_IOAS_MAP_WRITEABLE,
                               .ioas_id = o->ioas,
                               .user_va = (uintptr_t)va,
                               .length = len,
                               .iova = iova};
    return ioctl(o->fd, IOMMU_IOAS_MAP, &m);
  }
  struct vfio_iommu_type1_dma_map m = {.argsz = sizeof m,
                                       .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                                       .vaddr = (uintptr_t)va,
                                       .iova = iova,
                                       .size = len};
  return ioctl(o->fd, VFIO_IOMMU_MAP_DMA, &m);
}

static int dma_unmap(const struct dma_ops *o, uint64_t iova, uint64_t len) {
  if (o->iommufd) {
    struct iommu_ioas_unmap u = {.size = sizeof u, .ioas_id = o->ioas, .iova = iova, .length = len};
    return ioctl(o->fd, IOMMU_IOAS_UNMAP, &u);
  }
  struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof u, .iova = iova, .size = len};
  return ioctl(o->fd, VFIO_IOMMU_UNMAP_DMA, &u);
}

struct region {
  uint64_t offset, size;
  uint32_t flags;
};

static bool get_region(int dev, uint32_t index, struct region *r, const char *label) {
  struct vfio_region_info ri = {.argsz = sizeof ri, .index = index};
  int rc = ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &ri);
  if (rc != 0)
    return result(rname(label), false, "VFIO_DEVICE_GET_REGION_INFO(%u): %s", index, strerror(errno));
  r->offset = ri.offset;
  r->size = ri.size;
  r->flags = ri.flags;
  return result(rname(label), ri.size > 0 && (ri.flags & VFIO_REGION_INFO_FLAG_READ),
                "index %u size 0x%llx offset 0x%llx flags %s%s%s%s", index, (unsigned long long)ri.size,
                (unsigned long long)ri.offset, ri.flags & VFIO_REGION_INFO_FLAG_READ ? "r" : "-",
                ri.flags & VFIO_REGION_INFO_FLAG_WRITE ? "w" : "-", ri.flags & VFIO_REGION_INFO_FLAG_MMAP ? "m" : "-",
                ri.flags & VFIO_REGION_INFO_FLAG_CAPS ? "c" : "-");
}

static bool rd32(int dev, const struct region *r, uint64_t off, uint32_t *v) {
  return pread(dev, v, 4, (off_t)(r->offset + off)) == 4;
}
static bool wr32(int dev, const struct region *r, uint64_t off, uint32_t v) {
  return pwrite(dev, &v, 4, (off_t)(r->offset + off)) == 4;
}

struct devopts {
  bool edu;
  int nbar0;
  struct { uint32_t off, val; bool expect; } bar0[8];
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

// Waits for edu's DMA command register to drop its "running" bit.
static bool edu_wait(int dev, const struct region *bar, char *err, size_t cap) {
  uint64_t deadline = now_ms() + 10000;
  for (;;) {
    uint32_t cmd;
    if (!rd32(dev, bar, 0x98, &cmd)) {
      snprintf(err, cap, "read DMA command: %s", strerror(errno));
      return false;
    }
    if (!(cmd & 1)) return true;
    if (now_ms() > deadline) {
      snprintf(err, cap, "DMA did not finish in 10 s (cmd=0x%x)", cmd);
      return false;
    }
    usleep(5000);
  }
}

// RAM -> edu buffer -> RAM through the device's DMA space. The IOVAs stay
// below edu's 28-bit DMA mask, and both RAM ranges cross a page boundary, so
// the transfer needs two IOMMU translations each way. The count stays below
// edu's 4 KiB buffer: QEMU 7.2's edu rejects a transfer that ends exactly at
// the end of its buffer (an off-by-one fixed in later QEMU).
static void edu_dma(int dev, const struct region *cfg, const struct region *bar, const struct dma_ops *o) {
  const uint64_t iova = 0x200000, len = 3 * 4096, src = 0xa00, dst = 0x1a00, n = 0xc00;
  const uint64_t edu_buf = 0x40000;
  char err[256] = "";
  uint16_t cmdreg;
  if (pread(dev, &cmdreg, 2, (off_t)(cfg->offset + 4)) != 2) {
    result(rname("dma"), false, "read PCI command register: %s", strerror(errno));
    return;
  }
  cmdreg |= 0x6;  // memory space + bus master
  if (pwrite(dev, &cmdreg, 2, (off_t)(cfg->offset + 4)) != 2) {
    result(rname("dma"), false, "enable bus mastering: %s", strerror(errno));
    return;
  }
  uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) {
    result(rname("dma"), false, "mmap: %s", strerror(errno));
    return;
  }
  uint32_t x = (uint32_t)now_ms() * 2654435761u | 1;
  for (uint64_t i = 0; i < len; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    buf[i] = (uint8_t)x;
  }
  memset(buf + dst, 0, n);
  if (dma_map(o, buf, iova, len) != 0) {
    result(rname("dma"), false, "%s of 0x%llx bytes at iova 0x%llx: %s",
           o->iommufd ? "IOMMU_IOAS_MAP" : "VFIO_IOMMU_MAP_DMA", (unsigned long long)len,
           (unsigned long long)iova, strerror(errno));
    return;
  }
  bool ok = wr32(dev, bar, 0x80, (uint32_t)(iova + src)) && wr32(dev, bar, 0x88, (uint32_t)edu_buf) &&
            wr32(dev, bar, 0x90, (uint32_t)n) && wr32(dev, bar, 0x98, 1);
  if (!ok) snprintf(err, sizeof err, "program DMA RAM->device: %s", strerror(errno));
  ok = ok && edu_wait(dev, bar, err, sizeof err);
  if (ok) {
    ok = wr32(dev, bar, 0x80, (uint32_t)edu_buf) && wr32(dev, bar, 0x88, (uint32_t)(iova + dst)) &&
         wr32(dev, bar, 0x90, (uint32_t)n) && wr32(dev, bar, 0x98, 1 | 2);
    if (!ok) snprintf(err, sizeof err, "program DMA device->RAM: %s", strerror(errno));
    ok = ok && edu_wait(dev, bar, err, sizeof err);
  }
  if (ok) {
    uint64_t bad = n;
    for (uint64_t i = 0; i < n; i++)
      if (buf[src + i] != buf[dst + i]) { bad = i; break; }
    if (bad == n)
      result(rname("dma"), true, "0x%llx bytes RAM(iova 0x%llx)->edu->RAM(iova 0x%llx) matched",
             (unsigned long long)n, (unsigned long long)(iova + src), (unsigned long long)(iova + dst));
    else
      result(rname("dma"), false, "mismatch at byte %llu: wrote 0x%02x, read back 0x%02x",
             (unsigned long long)bad, buf[src + bad], buf[dst + bad]);
  } else {
    result(rname("dma"), false, "%s", err);
  }
  if (dma_unmap(o, iova, len) != 0) result(rname("dma_unmap"), false, "unmap: %s", strerror(errno));
  munmap(buf, len);
}

static void device_checks(int dev, const struct devsel *d, const struct devopts *opt, const struct dma_ops *o) {
  struct vfio_device_info info = {.argsz = sizeof info};
  if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info) != 0) {
    result(rname("device_info"), false, "VFIO_DEVICE_GET_INFO: %s", strerror(errno));
    return;
  }
  if (!result(rname("device_info"),
              (info.flags & VFIO_DEVICE_FLAGS_PCI) && info.num_regions > VFIO_PCI_CONFIG_REGION_INDEX,
              "flags 0x%x%s%s num_regions %u num_irqs %u", info.flags,
              info.flags & VFIO_DEVICE_FLAGS_PCI ? " pci" : " NOT-PCI",
              info.flags & VFIO_DEVICE_FLAGS_RESET ? " reset" : "", info.num_regions, info.num_irqs))
    return;
  struct region cfg, bar0;
  bool have_cfg = get_region(dev, VFIO_PCI_CONFIG_REGION_INDEX, &cfg, "region.config");
  bool have_bar0 = get_region(dev, VFIO_PCI_BAR0_REGION_INDEX, &bar0, "region.bar0");
  if (have_cfg) {
    uint32_t id;
    if (!rd32(dev, &cfg, 0, &id)) {
      result(rname("config.id"), false, "pread config[0]: %s", strerror(errno));
    } else {
      unsigned v = id & 0xffff, dv = id >> 16;
      result(rname("config.id"), v == d->vendor && dv == d->device,
             "config space reads %04x:%04x, sysfs says %04x:%04x", v, dv, d->vendor, d->device);
    }
  }
  if (!have_bar0) return;
  for (int i = 0; i < opt->nbar0; i++) {
    char label[64];
    uint32_t v;
    snprintf(label, sizeof label, "bar0[0x%x]", opt->bar0[i].off);
    if (!rd32(dev, &bar0, opt->bar0[i].off, &v))
      result(rname(label), false, "pread: %s", strerror(errno));
    else if (opt->bar0[i].expect)
      result(rname(label), v == opt->bar0[i].val, "read 0x%08x (expect 0x%08x)", v, opt->bar0[i].val);
    else
      result(rname(label), v != 0xffffffffu, "read 0x%08x%s", v, v == 0xffffffffu ? " (all ones: not decoded)" : "");
  }
  if (opt->edu) {
    uint32_t v, probe = 0x5a3c0f01u ^ (uint32_t)now_ms();
    if (!rd32(dev, &bar0, 0, &v))
      result(rname("id_register"), false, "pread BAR0[0]: %s", strerror(errno));
    else
      result(rname("id_register"), v == 0x010000edu, "ID register 0x%08x (expect 0x010000ed)", v);
    if (!wr32(dev, &bar0, 4, probe) || !rd32(dev, &bar0, 4, &v))
      result(rname("liveness"), false, "BAR0[4]: %s", strerror(errno));
    else
      result(rname("liveness"), v == ~probe, "wrote 0x%08x, read 0x%08x (expect 0x%08x)", probe, v, ~probe);
    if (have_cfg) edu_dma(dev, &cfg, &bar0, o);
  }
}

// ---- cdev + iommufd ----------------------------------------------------------

static int cmd_cdev(const struct devsel *d, const struct devopts *opt) {
  if (!result(rname("present"), d->cdev[0] != 0, "%s -> %s", d->bdf,
              d->cdev[0] ? d->cdev : "no vfio-dev in sysfs (not bound to vfio-pci?)"))
    return 1;
  int dev = open(d->cdev, O_RDWR | O_CLOEXEC);
  if (!result(rname("open"), dev >= 0, "%s: %s", d->cdev, dev >= 0 ? "opened" : strerror(errno))) return 1;
  int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
  if (!result(rname("iommufd_open"), iommufd >= 0, "/dev/iommu: %s", iommufd >= 0 ? "opened" : strerror(errno)))
    return 1;
  struct vfio_device_bind_iommufd bind = {.argsz = sizeof bind, .iommufd = iommufd};
  int rc = ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind);
  if (!result(rname("bind_iommufd"), rc == 0, "VFIO_DEVICE_BIND_IOMMUFD: %s, devid=%u", errstr(rc), bind.out_devid))
    return 1;
  struct iommu_ioas_alloc a = {.size = sizeof a};
  rc = ioctl(iommufd, IOMMU_IOAS_ALLOC, &a);
  if (!result(rname("ioas_alloc"), rc == 0, "IOMMU_IOAS_ALLOC: %s, ioas_id=%u", errstr(rc), a.out_ioas_id))
    return 1;
  struct vfio_device_attach_iommufd_pt at = {.argsz = sizeof at, .pt_id = a.out_ioas_id};
  rc = ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
  if (!result(rname("attach_ioas"), rc == 0, "VFIO_DEVICE_ATTACH_IOMMUFD_PT(ioas %u): %s, pt_id=%u", a.out_ioas_id,
              errstr(rc), at.pt_id))
    return 1;
  // The IOVA ranges the IOAS allows once the device's IOMMU constraints apply.
  struct iommu_iova_range ranges[16];
  struct iommu_ioas_iova_ranges rq = {.size = sizeof rq, .ioas_id = a.out_ioas_id, .num_iovas = 16,
                                      .allowed_iovas = (uintptr_t)ranges};
  if (ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &rq) == 0) {
    char s[512] = "";
    size_t o = 0;
    for (unsigned i = 0; i < rq.num_iovas && i < 16 && o < sizeof s - 48; i++)
      o += (size_t)snprintf(s + o, sizeof s - o, "%s0x%llx-0x%llx", i ? " " : "",
                            (unsigned long long)ranges[i].start, (unsigned long long)ranges[i].last);
    result(rname("iova_ranges"), rq.num_iovas > 0, "%u range(s): %s, alignment 0x%llx", rq.num_iovas, s,
           (unsigned long long)rq.out_iova_alignment);
  } else {
    result(rname("iova_ranges"), false, "IOMMU_IOAS_IOVA_RANGES: %s", strerror(errno));
  }
  struct dma_ops o = {.fd = iommufd, .ioas = a.out_ioas_id, .iommufd = true};
  device_checks(dev, d, opt, &o);
  close(dev);
  close(iommufd);
  return g_failed;
}

// ---- group + container --------------------------------------------------------

static int cmd_group(const struct devsel *d, const struct devopts *opt) {
  if (!result(rname("present"), d->group[0] != 0, "%s iommu group %s", d->bdf,
              d->group[0] ? d->group : "none"))
    return 1;
  int c = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
  if (!result(rname("container_open"), c >= 0, "/dev/vfio/vfio: %s", c >= 0 ? "opened" : strerror(errno))) return 1;
  int v = ioctl(c, VFIO_GET_API_VERSION);
  if (!result(rname("container_api_version"), v == VFIO_API_VERSION, "VFIO_GET_API_VERSION=%d (expect %d)", v,
              VFIO_API_VERSION))
    return 1;
  char gpath[64];
  snprintf(gpath, sizeof gpath, "/dev/vfio/%s", d->group);
  int g = open(gpath, O_RDWR | O_CLOEXEC);
  if (!result(rname("open"), g >= 0, "%s: %s", gpath, g >= 0 ? "opened" : strerror(errno))) return 1;
  struct vfio_group_status st = {.argsz = sizeof st};
  int rc = ioctl(g, VFIO_GROUP_GET_STATUS, &st);
  if (!result(rname("viable"), rc == 0 && (st.flags & VFIO_GROUP_FLAGS_VIABLE),
              "VFIO_GROUP_GET_STATUS: %s, flags 0x%x (bit0 = viable)", errstr(rc), st.flags))
    return 1;
  rc = ioctl(g, VFIO_GROUP_SET_CONTAINER, &c);
  if (!result(rname("set_container"), rc == 0, "VFIO_GROUP_SET_CONTAINER: %s", errstr(rc))) return 1;
  rc = ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  if (!result(rname("set_iommu"), rc == 0, "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): %s", errstr(rc))) return 1;
  int dev = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, d->bdf);
  if (!result(rname("get_device_fd"), dev >= 0, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", d->bdf, errstr(dev < 0 ? -1 : 0)))
    return 1;
  struct dma_ops o = {.fd = c, .iommufd = false};
  device_checks(dev, d, opt, &o);
  close(dev);
  close(g);
  close(c);
  return g_failed;
}

// ---- kvm-hold --------------------------------------------------------------
// Creates a VM with an in-kernel irqchip and one vCPU, never runs it, and
// sleeps until killed. While it lives, the static keys KVM flips when the
// first VM or vCPU appears (preempt notifiers, the local APIC's) stay on, so
// the scenario's own VM creations patch no kernel text: under QEMU's
// multi-threaded TCG such patching races with the other vCPU ("Oops: int3"
// in __schedule; tests/rig/README.md, "Known limits").
static int cmd_kvm_hold(void) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  int vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) != 0 || ioctl(vm, KVM_CREATE_VCPU, 0) < 0) {
    fprintf(stderr, "rig-probe kvm-hold: %s\n", strerror(errno));
    return 1;
  }
  printf("rig-probe kvm-hold: holding a VM with one vCPU (pid %d)\n", (int)getpid());
  for (;;) pause();
}

static int usage(void) {
  fprintf(stderr,
          "usage: rig-probe iommufd | kvm | kvm-hold | vfio-container | list\n"
          "       rig-probe cdev|group SEL [--name LABEL] [--bar0 OFF=VAL]... [--bar0-read OFF]... [--edu]\n"
          "SEL: /dev/vfio/devices/vfioN | DDDD:BB:DD.F | vvvv:dddd\n");
  return 2;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return usage();
  const char *cmd = argv[1];
  if (!strcmp(cmd, "iommufd") && argc == 2) return cmd_iommufd();
  if (!strcmp(cmd, "kvm") && argc == 2) return cmd_kvm();
  if (!strcmp(cmd, "kvm-hold") && argc == 2) return cmd_kvm_hold();
  if (!strcmp(cmd, "vfio-container") && argc == 2) return cmd_vfio_container();
  if (!strcmp(cmd, "list") && argc == 2) return cmd_list();
  if ((strcmp(cmd, "cdev") && strcmp(cmd, "group")) || argc < 3) return usage();

  struct devopts opt = {0};
  const char *label = NULL;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--edu")) {
      opt.edu = true;
    } else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
      label = argv[++i];
    } else if ((!strcmp(argv[i], "--bar0") || !strcmp(argv[i], "--bar0-read")) && i + 1 < argc &&
               opt.nbar0 < 8) {
      bool expect = !strcmp(argv[i], "--bar0");
      char *s = argv[++i], *end;
      opt.bar0[opt.nbar0].off = (uint32_t)strtoul(s, &end, 0);
      opt.bar0[opt.nbar0].expect = expect;
      if (expect) {
        if (*end != '=') return usage();
        opt.bar0[opt.nbar0].val = (uint32_t)strtoul(end + 1, &end, 0);
      }
      if (*end) return usage();
      opt.nbar0++;
    } else {
      return usage();
    }
  }
  struct devsel d;
  char err[1024];
  snprintf(g_prefix, sizeof g_prefix, "%s.%s", label ? label : argv[2], cmd);
  if (!resolve(argv[2], &d, err, sizeof err)) {
    result(rname("resolve"), false, "%s", err);
    return 1;
  }
  if (!label) snprintf(g_prefix, sizeof g_prefix, "%s.%s", d.bdf, cmd);
  return !strcmp(cmd, "cdev") ? cmd_cdev(&d, &opt) : cmd_group(&d, &opt);
}

// hostile: runs inside the L2 guest (issue 15, "Hostile guest") and attacks
// the device model of the VMM that passes edu and nvme through, then leaves
// the devices as it found them so the normal checks (edu-test, the nvme data
// and MSI-X checks) can show that everything still works. Through sysfs
// (resourceN mmaps and the config file), as root:
//   dma          edu's DMA engine reads from and writes to a bus address
//                above guest RAM (and below edu's 28-bit limit): the IOMMU in
//                L1 must block both (L1 sees DMAR faults; the VMM sees nothing)
//   msix_table   malformed accesses to nvme's MSI-X table (it is trapped by
//                the VMM): 1- and 2-byte writes, misaligned dwords and qwords,
//                a qword straddling the table's end, dwords just past it; the
//                entry they aim at (the last vector, unused) must be unchanged
//   pba_storm    N qword writes to nvme's read-only PBA (trapped)
//   config       writes to config space outside every capability the guest
//                sees: nvme's whole extended space, the top of legacy space,
//                and the offsets of the real device's hidden capabilities
//                (given by L1 in /rig/hidden.<vendor:device>; e.g. writing
//                ones to a power-management capability's PMCSR would put a
//                device into D3 if it got through)
//   bar_ram      edu's BAR0 moved onto guest RAM (0x100000): it must stop
//                decoding at its old address; then restored: it decodes again
//   bar_overlap  nvme's (64-bit) BAR0 moved onto edu's BAR0: refused, edu's
//                BAR0 still answers; then restored
//   mmio_storm   M writes to edu's (mmap'd) liveness register; it still works
// Each prints RIG-RESULT {"name":"l2.hostile.<check>",...}; the attacks the
// VMM can see are counted in one line for L1 to compare with the VMM's log:
//   HOSTILE-COUNTS {"msix_table":A,"pba":B,"config_hidden":C,"bar_placement":D,"dma_addr":"0x..."}
// Usage: hostile [--pba-storm N] [--mmio-storm M]. Exit status: failed checks.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RESULT_PREFIX "l2.hostile."
#include "rig_result.h"

// One store of exactly `size` bytes (one instruction, so one MMIO exit).
static void store(volatile void* p, int size, uint64_t v) {
  switch (size) {
    case 1: __asm__ volatile("movb %b1, (%0)" ::"r"(p), "q"((uint8_t)v) : "memory"); break;
    case 2: __asm__ volatile("movw %w1, (%0)" ::"r"(p), "r"((uint16_t)v) : "memory"); break;
    case 4: __asm__ volatile("movl %k1, (%0)" ::"r"(p), "r"((uint32_t)v) : "memory"); break;
    default: __asm__ volatile("movq %1, (%0)" ::"r"(p), "r"(v) : "memory"); break;
  }
}
static uint32_t load32(volatile void* p) { return *(volatile uint32_t*)p; }

struct pci {
  char dir[300];
  int cfg;  // the config file
  uint64_t bar_start[7], bar_size[7];
};

static int find(const char* vendor, const char* device, struct pci* d) {
  DIR* dir = opendir("/sys/bus/pci/devices");
  if (!dir) return -1;
  struct dirent* e;
  int found = -1;
  while (found != 0 && (e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[600], v[16] = {0}, dv[16] = {0};
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", e->d_name);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(v, sizeof(v), f)) v[0] = 0;
    fclose(f);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", e->d_name);
    f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(dv, sizeof(dv), f)) dv[0] = 0;
    fclose(f);
    if (strncmp(v, vendor, 6) == 0 && strncmp(dv, device, 6) == 0) {
      snprintf(d->dir, sizeof(d->dir), "/sys/bus/pci/devices/%s", e->d_name);
      found = 0;
    }
  }
  closedir(dir);
  if (found != 0) return -1;
  char path[600];
  snprintf(path, sizeof(path), "%s/config", d->dir);
  d->cfg = open(path, O_RDWR);
  snprintf(path, sizeof(path), "%s/resource", d->dir);
  FILE* f = fopen(path, "r");
  for (int i = 0; i < 7 && f; ++i) {
    unsigned long long s = 0, e2 = 0, fl = 0;
    if (fscanf(f, "%llx %llx %llx", &s, &e2, &fl) != 3) break;
    d->bar_start[i] = s;
    d->bar_size[i] = e2 > s ? e2 - s + 1 : 0;
  }
  if (f) fclose(f);
  return d->cfg >= 0 ? 0 : -1;
}

static uint32_t cfg_read(struct pci* d, uint32_t off, int size) {
  uint32_t v = 0;
  if (pread(d->cfg, &v, (size_t)size, off) != size) return 0xffffffff;
  return v;
}
static int cfg_write(struct pci* d, uint32_t off, int size, uint32_t v) {
  return pwrite(d->cfg, &v, (size_t)size, off) == size ? 0 : -1;
}

static volatile uint8_t* map_bar(struct pci* d, int bar) {
  char path[600];
  snprintf(path, sizeof(path), "%s/resource%d", d->dir, bar);
  int fd = open(path, O_RDWR | O_SYNC);
  if (fd < 0) return NULL;
  void* p = mmap(NULL, d->bar_size[bar], PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return p == MAP_FAILED ? NULL : p;
}

// Offset of capability `id` in the guest's view, 0 if none.
static uint32_t find_cap(struct pci* d, uint8_t id) {
  if (!(cfg_read(d, 0x06, 2) & 0x10)) return 0;
  uint32_t pos = cfg_read(d, 0x34, 1) & ~3u;
  for (int i = 0; i < 48 && pos >= 0x40; ++i) {
    if ((cfg_read(d, pos, 1) & 0xff) == id) return pos;
    pos = cfg_read(d, pos + 1, 1) & ~3u;
  }
  return 0;
}

// The end of the capabilities the guest sees in legacy space (passage lays
// them out back to back from 0x40; sizes as passage shows them).
static uint32_t shown_end(struct pci* d) {
  uint32_t end = 0x40;
  if (!(cfg_read(d, 0x06, 2) & 0x10)) return end;
  uint32_t pos = cfg_read(d, 0x34, 1) & ~3u;
  for (int i = 0; i < 48 && pos >= 0x40; ++i) {
    uint32_t id = cfg_read(d, pos, 1) & 0xff;
    uint32_t size = id == 0x11 ? 12 : id == 0x05 ? 0x18 : id == 0x10 ? 0x3c : 0x100 - pos;
    if (pos + size > end) end = pos + size;
    pos = cfg_read(d, pos + 1, 1) & ~3u;
  }
  return (end + 3) & ~3u;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

// The highest end of guest RAM below 4 GiB, from /proc/iomem.
static uint64_t ram_end(void) {
  FILE* f = fopen("/proc/iomem", "r");
  char line[256];
  uint64_t end = 0;
  while (f && fgets(line, sizeof(line), f)) {
    unsigned long long s, e;
    if (line[0] != ' ' && strstr(line, "System RAM") && sscanf(line, "%llx-%llx", &s, &e) == 2 &&
        e + 1 > end && e < (1ull << 32)) {
      end = e + 1;
    }
  }
  if (f) fclose(f);
  return end;
}

static int edu_dma(volatile uint8_t* edu, uint64_t src, uint64_t dst, uint32_t cmd) {
  *(volatile uint64_t*)(edu + 0x80) = src;
  *(volatile uint64_t*)(edu + 0x88) = dst;
  *(volatile uint64_t*)(edu + 0x90) = 0x100;
  *(volatile uint64_t*)(edu + 0x98) = cmd;
  for (int i = 0; i < 2000; ++i) {
    if (!(load32(edu + 0x98) & 1)) return 0;
    usleep(1000);
  }
  return -1;
}

int main(int argc, char** argv) {
  long pba_storm = 20000, mmio_storm = 1000000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--pba-storm") == 0) pba_storm = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--mmio-storm") == 0) mmio_storm = atol(argv[i + 1]);
  }
  if (argc % 2 == 0 || pba_storm < 0 || mmio_storm < 0) {
    fprintf(stderr, "hostile: usage: hostile [--pba-storm N] [--mmio-storm M]\n");
    return 2;
  }
  struct pci edu = {0}, nvme = {0};
  int have_edu = find("0x1234", "0x11e8", &edu) == 0;
  int have_nvme = find("0x1b36", "0x0010", &nvme) == 0;
  result("found", have_edu && have_nvme, "edu %s, nvme %s", have_edu ? edu.dir : "missing",
         have_nvme ? nvme.dir : "missing");
  if (!have_edu || !have_nvme) return 1;
  volatile uint8_t* e = map_bar(&edu, 0);
  volatile uint8_t* n = map_bar(&nvme, 0);
  if (e == NULL || n == NULL) {
    result("mmap", 0, "mmap of resource0: edu %p nvme %p: %s", (void*)e, (void*)n, strerror(errno));
    return 1;
  }
  long seen_msix = 0, seen_pba = 0, seen_config = 0, seen_bar = 0;

  // --- dma: edu reads and writes above guest RAM ---
  const uint64_t end = ram_end();
  const uint64_t addr = (end + 0x100000) & ~0xfffffull;  // 1 MiB above RAM
  const uint16_t cmd = (uint16_t)cfg_read(&edu, 0x04, 2);
  cfg_write(&edu, 0x04, 2, cmd | 0x6);  // memory + bus master
  if (addr + 0x100 > (1ull << 28)) {
    result("dma", 0, "guest RAM ends at 0x%llx: no address above it is in edu's 28-bit reach",
           (unsigned long long)end);
  } else {
    int rd = edu_dma(e, addr, 0x40000, 1);          // RAM(?) -> device
    int wr = edu_dma(e, 0x40000, addr, 1 | 2);      // device -> RAM(?)
    result("dma", rd == 0 && wr == 0,
           "edu DMA read from and write to 0x%llx (RAM ends at 0x%llx): engine %s, %s; "
           "L1's IOMMU must fault both",
           (unsigned long long)addr, (unsigned long long)end, rd ? "STUCK" : "done",
           wr ? "STUCK" : "done");
  }
  cfg_write(&edu, 0x04, 2, cmd);

  // --- msix_table: malformed accesses to nvme's trapped table ---
  const uint32_t msix = find_cap(&nvme, 0x11);
  if (msix == 0) {
    result("msix_table", 0, "nvme shows no MSI-X capability");
  } else {
    const uint32_t vectors = (cfg_read(&nvme, msix + 2, 2) & 0x7ff) + 1;
    const uint32_t table = cfg_read(&nvme, msix + 4, 4), pba = cfg_read(&nvme, msix + 8, 4);
    volatile uint8_t* t = (table & 7) == 0 ? n + (table & ~7u) : NULL;
    volatile uint8_t* p = (pba & 7) == 0 ? n + (pba & ~7u) : NULL;
    if (t == NULL || p == NULL) {
      result("msix_table", 0, "table (0x%x) or PBA (0x%x) not in BAR0: not attacked", table, pba);
    } else {
      volatile uint8_t* last = t + 16 * (vectors - 1);
      uint32_t before[4], after[4];
      for (int i = 0; i < 4; ++i) before[i] = load32(last + 4 * i);
      store(last + 12, 1, 0);            // unmask, one byte
      store(last + 8, 2, 0xbeef);        // data, a word
      store(last + 2, 4, 0xffffffff);    // a misaligned dword
      store(last + 4, 8, ~0ull);         // a misaligned qword
      store(t + 16 * vectors - 4, 8, ~0ull);  // straddles the table's end
      seen_msix += 5;
      for (int i = 0; i < 4; ++i) store(t + 16 * vectors + 4 * i, 4, 0xffffffff);  // past the end: the device's
      store(p - 4, 8, ~0ull);            // straddles the PBA's start
      seen_pba += 1;
      for (int i = 0; i < 4; ++i) after[i] = load32(last + 4 * i);
      result("msix_table", memcmp(before, after, sizeof(before)) == 0 && (after[3] & 1),
             "%u vectors, table at BAR0+0x%x: last entry %08x %08x %08x %08x before, %08x %08x %08x %08x "
             "after 5 malformed writes (must be equal and masked)",
             vectors, table & ~7u, before[0], before[1], before[2], before[3], after[0], after[1],
             after[2], after[3]);
      // --- pba_storm ---
      double t0 = now_s();
      for (long i = 0; i < pba_storm; ++i) store(p, 8, ~0ull);
      seen_pba += pba_storm;
      double secs = now_s() - t0;
      result("pba_storm", 1, "%ld qword writes to the read-only PBA at BAR0+0x%x in %.1f s", pba_storm,
             pba & ~7u, secs);
    }
  }

  // --- config: writes outside every capability the guest sees ---
  {
    long writes = 0, skipped = 0;
    // nvme: the extended space (passage shows none without PASID) and the
    // top of legacy space.
    const uint32_t nend = shown_end(&nvme);
    for (uint32_t off = 0x100; off < 0x1000; off += 4) writes += cfg_write(&nvme, off, 4, 0xffffffff) == 0;
    for (uint32_t off = nend; off < 0x100; off += 4) writes += cfg_write(&nvme, off, 4, 0xffffffff) == 0;
    // The real devices' hidden capabilities, at their physical offsets.
    struct pci* devs[2] = {&edu, &nvme};
    const char* ids[2] = {"1234:11e8", "1b36:0010"};
    char listed[256] = "";
    for (int k = 0; k < 2; ++k) {
      char path[64];
      snprintf(path, sizeof(path), "/rig/hidden.%s", ids[k]);
      FILE* f = fopen(path, "r");
      unsigned off;
      const uint32_t shown = shown_end(devs[k]);
      while (f && fscanf(f, "%x", &off) == 1) {
        if (off + 8 > 0x1000) continue;
        // Past what the guest sees: a hidden-config write passage must log.
        if (off >= shown) {
          writes += cfg_write(devs[k], off + 4, 4, 0xffffffff) == 0;
        } else {
          ++skipped;  // under a capability passage shows: read-only there
          cfg_write(devs[k], off + 4, 4, 0xffffffff);
        }
        size_t l = strlen(listed);
        snprintf(listed + l, sizeof(listed) - l, " %s+0x%x", ids[k], off);
      }
      if (f) fclose(f);
    }
    seen_config += writes;
    result("config", writes > 0, "%ld dword writes of ones outside the shown capabilities (nvme's end at 0x%x), "
           "%ld more under shown ones; hidden physical capabilities:%s", writes, nend, skipped,
           listed[0] ? listed : " none listed");
  }

  // --- bar_ram: edu's BAR0 onto guest RAM, then back ---
  {
    const uint32_t bar0 = cfg_read(&edu, 0x10, 4);
    const uint32_t id0 = load32(e);
    cfg_write(&edu, 0x10, 4, 0x100000);
    seen_bar += 1;
    const uint32_t id_moved = load32(e);
    const uint32_t reads_back = cfg_read(&edu, 0x10, 4);
    cfg_write(&edu, 0x10, 4, bar0);
    const uint32_t id_back = load32(e);
    result("bar_ram", id0 == 0x010000ed && id_moved != 0x010000ed && id_back == 0x010000ed,
           "edu BAR0 0x%x -> 0x100000 (reads back 0x%x): id at the old address 0x%08x before, 0x%08x "
           "while moved (must not decode there), 0x%08x restored",
           bar0, reads_back, id0, id_moved, id_back);
  }

  // --- bar_overlap: nvme's BAR0 onto edu's, then back ---
  {
    const uint32_t lo = cfg_read(&nvme, 0x10, 4), hi = cfg_read(&nvme, 0x14, 4);
    const uint32_t edu_bar = cfg_read(&edu, 0x10, 4) & ~0xfu;
    const uint32_t cap0 = load32(n);  // nvme CAP, low dword
    const uint32_t id0 = load32(e);
    // As a 64-bit BAR moves: one half, then the other; each step is a
    // placement the VMM refuses (outside the windows, then over edu).
    cfg_write(&nvme, 0x14, 4, 0);
    cfg_write(&nvme, 0x10, 4, edu_bar | (lo & 0xf));
    const uint32_t id_during = load32(e);
    cfg_write(&nvme, 0x10, 4, lo);
    cfg_write(&nvme, 0x14, 4, hi);
    // The intermediate address (0, edu's) is a logged placement unless it
    // is 0 (an address of 0 is how software leaves a BAR unassigned).
    seen_bar += 1 + (hi != 0 && (lo & ~0xfu) != 0 ? 2 : 0);
    const uint32_t cap1 = load32(n);
    result("bar_overlap", id_during == 0x010000ed && cap1 == cap0 && cap0 != 0xffffffff,
           "nvme BAR0 0x%08x%08x -> 0x%08x (edu's BAR0) and back: edu id while overlapped 0x%08x "
           "(was 0x%08x), nvme CAP 0x%08x before, 0x%08x after",
           hi, lo, edu_bar, id_during, id0, cap0, cap1);
  }

  // --- mmio_storm: edu's liveness register, mmap'd ---
  {
    double t0 = now_s();
    for (long i = 0; i < mmio_storm; ++i) store(e + 4, 4, (uint32_t)i);
    double secs = now_s() - t0;
    store(e + 4, 4, 0x12345678);
    const uint32_t live = load32(e + 4);
    result("mmio_storm", live == ~0x12345678u, "%ld writes to edu's liveness register in %.1f s; then "
           "wrote 0x12345678, read 0x%08x", mmio_storm, secs, live);
  }

  printf("HOSTILE-COUNTS {\"msix_table\":%ld,\"pba\":%ld,\"config_hidden\":%ld,\"bar_placement\":%ld,"
         "\"dma_addr\":\"0x%llx\"}\n",
         seen_msix, seen_pba, seen_config, seen_bar, (unsigned long long)addr);
  fflush(stdout);
  return failures;
}

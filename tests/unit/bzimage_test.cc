// The bzImage setup-header parser and the Linux loader (zero page, e820,
// command line, initrd placement), with synthetic images.
#include "vmm/bzimage.h"

#include <asm/bootparam.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "memory/guest_memory.h"
#include "vmm/linux_loader.h"
#include "vmm/loader.h"

namespace passage {
namespace {

constexpr uint64_t kSetupSects = 4;
constexpr uint64_t kSetupSize = (kSetupSects + 1) * 512;

template <typename T>
void Set(std::vector<uint8_t>& image, uint64_t offset, T value) {
  std::memcpy(image.data() + offset, &value, sizeof(T));
}

// A well-formed 64-bit bzImage (protocol 2.15) with `kernel_size` bytes of
// protected-mode kernel, filled with a recognisable pattern.
std::vector<uint8_t> MakeBzImage(size_t kernel_size = 64 * 1024) {
  std::vector<uint8_t> image(kSetupSize + kernel_size, 0);
  image[0x1f1] = kSetupSects;
  Set<uint32_t>(image, 0x1f4, static_cast<uint32_t>(kernel_size / 16));  // syssize
  Set<uint16_t>(image, 0x1fe, 0xaa55);
  image[0x200] = 0xeb;
  image[0x201] = 0x6a;                                  // header ends at 0x26c
  Set<uint32_t>(image, 0x202, 0x53726448);              // "HdrS"
  Set<uint16_t>(image, 0x206, 0x020f);
  image[0x211] = LOADED_HIGH;
  Set<uint32_t>(image, 0x22c, 0x7fffffff);              // initrd_addr_max
  Set<uint32_t>(image, 0x230, 0x200000);                // kernel_alignment
  image[0x234] = 1;                                     // relocatable
  Set<uint16_t>(image, 0x236, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
  Set<uint32_t>(image, 0x238, 2047);                    // cmdline_size
  Set<uint64_t>(image, 0x258, 0x1000000);               // pref_address
  Set<uint32_t>(image, 0x260, 0x800000);                // init_size: 8 MiB
  for (size_t i = 0; i < kernel_size; ++i) image[kSetupSize + i] = static_cast<uint8_t>(i * 7);
  return image;
}

std::string ParseError(const std::vector<uint8_t>& image) {
  absl::StatusOr<BzImage> bz = ParseBzImage(image);
  return bz.ok() ? "" : std::string(bz.status().message());
}

TEST(BzImage, ParsesAValidImage) {
  const std::vector<uint8_t> image = MakeBzImage();
  ASSERT_TRUE(LooksLikeLinuxKernel(image));
  absl::StatusOr<BzImage> bz = ParseBzImage(image);
  ASSERT_TRUE(bz.ok()) << bz.status();
  EXPECT_EQ(bz->version, 0x020f);
  EXPECT_EQ(bz->setup_size, kSetupSize);
  EXPECT_EQ(bz->kernel.size(), 64u * 1024);
  EXPECT_EQ(bz->kernel.data(), image.data() + kSetupSize);
  EXPECT_EQ(bz->header.size(), 0x26cu - 0x1f1);
  EXPECT_EQ(bz->pref_address, 0x1000000u);
  EXPECT_EQ(bz->init_size, 0x800000u);
  EXPECT_EQ(bz->cmdline_size, 2047u);
  EXPECT_TRUE(bz->relocatable);
  // boot.rst: a relocatable kernel runs at max(load, pref) rounded up to its alignment.
  EXPECT_EQ(bz->RuntimeStart(0x100000), 0x1000000u);
  EXPECT_EQ(bz->RuntimeStart(0x1100000), 0x1200000u);
}

TEST(BzImage, SetupSectsZeroMeansFour) {
  std::vector<uint8_t> image = MakeBzImage();
  image[0x1f1] = 0;
  absl::StatusOr<BzImage> bz = ParseBzImage(image);
  ASSERT_TRUE(bz.ok()) << bz.status();
  EXPECT_EQ(bz->setup_size, 5u * 512);
}

TEST(BzImage, FlatBinariesAreNotMistakenForKernels) {
  std::vector<uint8_t> flat(300, 0x90);  // a tiny guest
  EXPECT_FALSE(LooksLikeLinuxKernel(flat));
  flat.resize(4096, 0xf4);
  EXPECT_FALSE(LooksLikeLinuxKernel(flat));
  // A boot sector signature alone is enough to be treated as a (broken) kernel.
  flat[0x1fe] = 0x55;
  flat[0x1ff] = 0xaa;
  EXPECT_TRUE(LooksLikeLinuxKernel(flat));
  EXPECT_NE(ParseError(flat).find("no 'HdrS'"), std::string::npos) << ParseError(flat);
}

TEST(BzImage, RejectsBadMagic) {
  std::vector<uint8_t> image = MakeBzImage();
  std::memcpy(image.data() + 0x202, "XXXX", 4);
  EXPECT_TRUE(LooksLikeLinuxKernel(image));  // the boot sector signature is still there
  EXPECT_NE(ParseError(image).find("no 'HdrS' setup header magic at 0x202"), std::string::npos)
      << ParseError(image);
}

TEST(BzImage, RejectsMissingBootFlag) {
  std::vector<uint8_t> image = MakeBzImage();
  Set<uint16_t>(image, 0x1fe, 0x1234);
  EXPECT_NE(ParseError(image).find("boot_flag"), std::string::npos) << ParseError(image);
}

TEST(BzImage, RejectsTruncatedImages) {
  const std::vector<uint8_t> full = MakeBzImage();
  // Cut inside the kernel proper: syssize says more.
  std::vector<uint8_t> cut(full.begin(), full.end() - 16);
  EXPECT_NE(ParseError(cut).find("truncated"), std::string::npos) << ParseError(cut);
  // Cut inside the setup header.
  cut.assign(full.begin(), full.begin() + 0x240);
  EXPECT_NE(ParseError(cut).find("truncated"), std::string::npos) << ParseError(cut);
  cut.assign(full.begin(), full.begin() + 0x100);
  EXPECT_FALSE(LooksLikeLinuxKernel(cut));
  EXPECT_NE(ParseError(cut).find("truncated"), std::string::npos) << ParseError(cut);
  // Cut right after "HdrS" or inside the version field (the fuzzer's find:
  // the version was read past the end). resize() keeps the bytes beyond the
  // end in place, so a read past it would see the real header and give
  // another message.
  for (size_t len : {0x206, 0x207}) {
    cut = full;
    cut.resize(len);
    ASSERT_TRUE(LooksLikeLinuxKernel(cut));
    EXPECT_EQ(ParseError(cut),
              absl::StrCat("truncated: ", len, " bytes, too short for a Linux setup header"));
  }
}

TEST(BzImage, RejectsOldProtocols) {
  std::vector<uint8_t> image = MakeBzImage();
  Set<uint16_t>(image, 0x206, 0x0201);
  EXPECT_NE(ParseError(image).find("boot protocol 2.01 is too old"), std::string::npos)
      << ParseError(image);
  Set<uint16_t>(image, 0x206, 0x020b);
  EXPECT_NE(ParseError(image).find("2.11 is too old"), std::string::npos) << ParseError(image);
  Set<uint16_t>(image, 0x206, 0x020c);
  EXPECT_EQ(ParseError(image), "");
}

TEST(BzImage, RejectsKernelsWithoutA64BitEntry) {
  std::vector<uint8_t> image = MakeBzImage();
  Set<uint16_t>(image, 0x236, XLF_CAN_BE_LOADED_ABOVE_4G);
  EXPECT_NE(ParseError(image).find("XLF_KERNEL_64"), std::string::npos) << ParseError(image);
}

TEST(BzImage, RejectsZImages) {
  std::vector<uint8_t> image = MakeBzImage();
  image[0x211] = 0;
  EXPECT_NE(ParseError(image).find("zImage"), std::string::npos) << ParseError(image);
}

TEST(BzImage, RejectsInconsistentHeaders) {
  std::vector<uint8_t> image = MakeBzImage();
  image[0x201] = 0x10;  // header would end before init_size
  EXPECT_NE(ParseError(image).find("jump at 0x200"), std::string::npos) << ParseError(image);
  image = MakeBzImage();
  image[0x201] = 0xa0;  // past the boot_params hole
  EXPECT_NE(ParseError(image).find("jump at 0x200"), std::string::npos) << ParseError(image);
  image = MakeBzImage();
  Set<uint32_t>(image, 0x230, 0x3000);
  EXPECT_NE(ParseError(image).find("kernel_alignment"), std::string::npos) << ParseError(image);
  image = MakeBzImage();
  Set<uint64_t>(image, 0x258, 0x1000800);
  EXPECT_NE(ParseError(image).find("pref_address"), std::string::npos) << ParseError(image);
  image = MakeBzImage();
  Set<uint32_t>(image, 0x260, 4096);
  EXPECT_NE(ParseError(image).find("init_size"), std::string::npos) << ParseError(image);
  image = MakeBzImage();
  Set<uint32_t>(image, 0x1f4, 0);
  EXPECT_NE(ParseError(image).find("syssize"), std::string::npos) << ParseError(image);
  // A huge syssize must not overflow into "fits".
  image = MakeBzImage();
  Set<uint32_t>(image, 0x1f4, 0xffffffff);
  EXPECT_NE(ParseError(image).find("truncated"), std::string::npos) << ParseError(image);
}

// --- the loader -------------------------------------------------------------

class LinuxLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto mem = GuestMemory::Create({256 * kMiB, false});
    ASSERT_TRUE(mem.ok()) << mem.status();
    memory_ = std::move(*mem);
    image_ = MakeBzImage();
    auto bz = ParseBzImage(image_);
    ASSERT_TRUE(bz.ok()) << bz.status();
    bz_ = *bz;
    platform_.acpi_rsdp = 0xe0000;
    platform_.e820_special = {{0xa0000, 0x40000, E820Type::kReserved},
                              {0xe0000, 0x1000, E820Type::kAcpi},
                              {0xe1000, 0x1f000, E820Type::kReserved}};
  }

  boot_params ZeroPage() {
    boot_params bp;
    EXPECT_TRUE(memory_->Read(kZeroPageAddr, {reinterpret_cast<uint8_t*>(&bp), sizeof(bp)}).ok());
    return bp;
  }

  std::unique_ptr<GuestMemory> memory_;
  std::vector<uint8_t> image_;
  BzImage bz_;
  LinuxBootPlatform platform_;
};

TEST_F(LinuxLoaderTest, FillsTheZeroPage) {
  std::vector<uint8_t> initrd(100000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i * 13 + 1);
  absl::StatusOr<LinuxBootLayout> layout =
      LoadLinux(bz_, InitrdBytes(initrd), "console=ttyS0 panic=-1", platform_, *memory_);
  ASSERT_TRUE(layout.ok()) << layout.status();

  // The 64-bit entry: startup_64 at load + 0x200, RSI = boot_params.
  EXPECT_EQ(layout->entry.mode, BootEntry::Mode::kLong);
  EXPECT_EQ(layout->load_addr, 0x1000000u);
  EXPECT_EQ(layout->entry.rip, 0x1000200u);
  EXPECT_EQ(layout->entry.rsi, kZeroPageAddr);
  std::vector<uint8_t> loaded(bz_.kernel.size());
  ASSERT_TRUE(memory_->Read(layout->load_addr, loaded).ok());
  EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), bz_.kernel.begin()));

  const boot_params bp = ZeroPage();
  // boot_params is packed: `+` compares a copy, since gtest would bind a
  // reference to a misaligned field (UBSan's alignment check, clang).
  EXPECT_EQ(+bp.hdr.header, 0x53726448u);  // the setup header was copied in
  EXPECT_EQ(+bp.hdr.version, 0x020f);
  EXPECT_EQ(+bp.hdr.type_of_loader, 0xff);
  EXPECT_EQ(+bp.hdr.vid_mode, 0xffff);
  EXPECT_EQ(+bp.hdr.code32_start, 0x1000000u);
  EXPECT_EQ(+bp.acpi_rsdp_addr, 0xe0000u);
  EXPECT_EQ(+bp.sentinel, 0);  // only the header was copied, not the bytes around it

  // The command line, NUL-terminated, where cmd_line_ptr says.
  EXPECT_EQ(+bp.hdr.cmd_line_ptr, kCmdlineAddr);
  char cmdline[64] = {};
  ASSERT_TRUE(memory_->Read(bp.hdr.cmd_line_ptr, {reinterpret_cast<uint8_t*>(cmdline), 24}).ok());
  EXPECT_STREQ(cmdline, "console=ttyS0 panic=-1");

  // The initrd: page-aligned, as high as possible (the end of RAM here), intact.
  EXPECT_EQ(+bp.hdr.ramdisk_size, initrd.size());
  EXPECT_EQ(+bp.hdr.ramdisk_image % 4096, 0u);
  EXPECT_LE(+bp.hdr.ramdisk_image + initrd.size(), 256 * kMiB);
  EXPECT_GT(+bp.hdr.ramdisk_image + initrd.size(), 256 * kMiB - 4096);
  EXPECT_GE(+bp.hdr.ramdisk_image, layout->runtime_end);
  std::vector<uint8_t> back(initrd.size());
  ASSERT_TRUE(memory_->Read(bp.hdr.ramdisk_image, back).ok());
  EXPECT_EQ(back, initrd);

  // e820: RAM below the hole, the hole split around the ACPI tables, RAM above.
  ASSERT_EQ(+bp.e820_entries, 5);
  const boot_e820_entry* e = bp.e820_table;
  EXPECT_EQ(+e[0].addr, 0u);
  EXPECT_EQ(+e[0].size, 0xa0000u);
  EXPECT_EQ(+e[0].type, 1u);
  EXPECT_EQ(+e[1].addr, 0xa0000u);
  EXPECT_EQ(+e[1].type, 2u);
  EXPECT_EQ(+e[2].addr, 0xe0000u);
  EXPECT_EQ(+e[2].size, 0x1000u);
  EXPECT_EQ(+e[2].type, 3u);
  EXPECT_EQ(+e[3].addr, 0xe1000u);
  EXPECT_EQ(+e[3].type, 2u);
  EXPECT_EQ(+e[4].addr, 0x100000u);
  EXPECT_EQ(+e[4].size, 256 * kMiB - 0x100000);
  EXPECT_EQ(+e[4].type, 1u);
}

TEST_F(LinuxLoaderTest, InitrdStaysBelowInitrdAddrMax) {
  Set<uint32_t>(image_, 0x22c, 0x3fffffff);  // 1 GiB - 1
  auto bz = ParseBzImage(image_);
  ASSERT_TRUE(bz.ok());
  auto mem = GuestMemory::Create({2 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  std::vector<uint8_t> initrd(3 * 4096 + 5, 0x5a);
  absl::StatusOr<LinuxBootLayout> layout =
      LoadLinux(*bz, InitrdBytes(initrd), "", platform_, **mem);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_LE(layout->initrd_addr + initrd.size(), 1 * kGiB);
  EXPECT_GT(layout->initrd_addr + initrd.size(), 1 * kGiB - 4096);
}

TEST_F(LinuxLoaderTest, NoInitrdMeansZeroRamdiskFields) {
  ASSERT_TRUE(LoadLinux(bz_, {}, "", platform_, *memory_).ok());
  const boot_params bp = ZeroPage();
  EXPECT_EQ(+bp.hdr.ramdisk_image, 0u);
  EXPECT_EQ(+bp.hdr.ramdisk_size, 0u);
  char c = 1;
  ASSERT_TRUE(memory_->Read(kCmdlineAddr, {reinterpret_cast<uint8_t*>(&c), 1}).ok());
  EXPECT_EQ(c, 0);  // an empty, terminated command line
}

TEST_F(LinuxLoaderTest, HighRamIsInTheMap) {
  auto mem = GuestMemory::Create({5 * kGiB, false});
  ASSERT_TRUE(mem.ok());
  absl::StatusOr<LinuxBootLayout> layout = LoadLinux(bz_, {}, "", platform_, **mem);
  ASSERT_TRUE(layout.ok()) << layout.status();
  ASSERT_FALSE(layout->e820.empty());
  const E820Entry& last = layout->e820.back();
  EXPECT_EQ(last.addr, kHighRamStart);
  EXPECT_EQ(last.size, 2 * kGiB);
  EXPECT_EQ(last.type, E820Type::kRam);
  boot_params bp;
  ASSERT_TRUE((*mem)->Read(kZeroPageAddr, {reinterpret_cast<uint8_t*>(&bp), sizeof(bp)}).ok());
  ASSERT_EQ(+bp.e820_entries, layout->e820.size());
  EXPECT_EQ(+bp.e820_table[bp.e820_entries - 1].addr, kHighRamStart);
}

TEST_F(LinuxLoaderTest, RejectsTooLongCommandLine) {
  const std::string cmdline(2048, 'x');  // cmdline_size is 2047
  absl::StatusOr<LinuxBootLayout> layout = LoadLinux(bz_, {}, cmdline, platform_, *memory_);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().message(),
            "-append: the command line is 2048 bytes; this kernel takes at most 2047");
  EXPECT_TRUE(LoadLinux(bz_, {}, std::string(2047, 'x'), platform_, *memory_).ok());
}

TEST_F(LinuxLoaderTest, RejectsInitrdThatDoesNotFit) {
  // 256 MiB of RAM, the kernel's window ends at 24 MiB: 240 MiB do not fit,
  // and nothing is read for an initrd that does not fit.
  bool filled = false;
  InitrdSource initrd{240 * kMiB, [&filled](std::span<uint8_t>) {
                        filled = true;
                        return absl::OkStatus();
                      }};
  absl::StatusOr<LinuxBootLayout> layout = LoadLinux(bz_, initrd, "", platform_, *memory_);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().message().substr(0, 9), "-initrd: ") << layout.status();
  EXPECT_FALSE(filled);
}

TEST_F(LinuxLoaderTest, InitrdIsFilledInPlaceInGuestRam) {
  // The source is handed the guest RAM at the initrd's final address, of
  // exactly its size: no intermediate buffer.
  uint8_t* dest_data = nullptr;
  size_t dest_size = 0;
  InitrdSource initrd{3 * 4096 + 17, [&](std::span<uint8_t> dest) {
                        dest_data = dest.data();
                        dest_size = dest.size();
                        std::fill(dest.begin(), dest.end(), 0xa5);
                        return absl::OkStatus();
                      }};
  absl::StatusOr<LinuxBootLayout> layout = LoadLinux(bz_, initrd, "", platform_, *memory_);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(dest_size, initrd.size);
  EXPECT_EQ(dest_data, memory_->HostAddress(layout->initrd_addr, initrd.size));
  EXPECT_EQ(ZeroPage().hdr.ramdisk_size, initrd.size);
  uint8_t last = 0;
  ASSERT_TRUE(memory_->Read(layout->initrd_addr + initrd.size - 1, {&last, 1}).ok());
  EXPECT_EQ(last, 0xa5);
}

TEST_F(LinuxLoaderTest, InitrdFillErrorIsReturned) {
  InitrdSource initrd{4096, [](std::span<uint8_t>) {
                        return absl::DataLossError("-initrd: 'x' shrank while being read");
                      }};
  absl::StatusOr<LinuxBootLayout> layout = LoadLinux(bz_, initrd, "", platform_, *memory_);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().message(), "-initrd: 'x' shrank while being read");
}

TEST_F(LinuxLoaderTest, RejectsTooLittleRam) {
  Set<uint32_t>(image_, 0x260, 0x10000000);  // init_size 256 MiB from 16 MiB
  auto bz = ParseBzImage(image_);
  ASSERT_TRUE(bz.ok());
  absl::StatusOr<LinuxBootLayout> layout = LoadLinux(*bz, {}, "", platform_, *memory_);
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().message().substr(0, 4), "-m: ") << layout.status();
  EXPECT_NE(layout.status().message().find("-m 272M"), std::string::npos) << layout.status();
}

// --- LoadKernel: dispatch and errors naming the flag ------------------------

class LoadKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/passage-loader-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    auto mem = GuestMemory::Create({256 * kMiB, false});
    ASSERT_TRUE(mem.ok());
    memory_ = std::move(*mem);
  }
  void TearDown() override {
    for (const std::string& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    files_.push_back(path);
    return path;
  }
  absl::StatusOr<LoadedKernel> Load(const VmConfig& config) {
    return LoadKernel(config, LinuxBootPlatform{}, *memory_);
  }

  std::string dir_;
  std::vector<std::string> files_;
  std::unique_ptr<GuestMemory> memory_;
};

TEST_F(LoadKernelTest, BzImageGoesThroughTheLinuxLoader) {
  VmConfig config;
  config.kernel = Write("bzImage", MakeBzImage());
  config.initrd = Write("initrd", std::vector<uint8_t>(5000, 1));
  config.append = "console=ttyS0";
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->linux_layout.has_value());
  EXPECT_EQ(loaded->entry.mode, BootEntry::Mode::kLong);
  EXPECT_EQ(loaded->linux_layout->initrd_size, 5000u);
}

TEST_F(LoadKernelTest, InitrdFileLandsIntactInGuestRam) {
  std::vector<uint8_t> bytes(3 * kMiB + 123);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  VmConfig config;
  config.kernel = Write("bzImage", MakeBzImage());
  config.initrd = Write("initrd", bytes);
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const LinuxBootLayout& layout = *loaded->linux_layout;
  EXPECT_EQ(layout.initrd_size, bytes.size());
  std::vector<uint8_t> back(bytes.size());
  ASSERT_TRUE(memory_->Read(layout.initrd_addr, back).ok());
  EXPECT_EQ(back, bytes);
}

TEST_F(LoadKernelTest, InitrdThatDoesNotFitIsAOneLineError) {
  // A sparse 300 MiB file: rejected from its size, before anything is read.
  VmConfig config;
  config.kernel = Write("bzImage", MakeBzImage());
  config.initrd = Write("initrd", {});
  ASSERT_EQ(truncate(config.initrd.c_str(), 300 * kMiB), 0);
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_FALSE(loaded.ok());
  const std::string msg(loaded.status().message());
  EXPECT_EQ(msg.rfind("-initrd: 314572800 bytes do not fit", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST_F(LoadKernelTest, InitrdThatIsADirectoryNamesTheFlag) {
  VmConfig config;
  config.kernel = Write("bzImage", MakeBzImage());
  config.initrd = dir_;
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(), "-initrd: '" + dir_ + "' is not a regular file");
}

TEST_F(LoadKernelTest, CorruptBzImageIsAOneLineErrorNamingKernel) {
  std::vector<uint8_t> image = MakeBzImage();
  std::memcpy(image.data() + 0x202, "HdrX", 4);
  VmConfig config;
  config.kernel = Write("bad", image);
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_FALSE(loaded.ok());
  const std::string msg(loaded.status().message());
  EXPECT_EQ(msg.rfind("-kernel: '" + config.kernel + "': not a bzImage", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST_F(LoadKernelTest, FlatBinaryStaysFlat) {
  VmConfig config;
  config.kernel = Write("flat", std::vector<uint8_t>(300, 0xf4));
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->linux_layout.has_value());
  EXPECT_EQ(loaded->entry.mode, BootEntry::Mode::kReal);
  config.initrd = Write("initrd", std::vector<uint8_t>(10, 0));
  loaded = Load(config);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().substr(0, 9), "-initrd: ");
  config.initrd.clear();
  config.append = "quiet";
  loaded = Load(config);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().substr(0, 9), "-append: ");
}

TEST_F(LoadKernelTest, ExplicitEntryModeLoadsAKernelAsFlatBinary) {
  VmConfig config;
  config.kernel = Write("bzImage", MakeBzImage());
  config.entry = EntryMode::kLong;
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->linux_layout.has_value());
}

TEST_F(LoadKernelTest, MissingInitrdNamesTheFlag) {
  VmConfig config;
  config.kernel = Write("bzImage", MakeBzImage());
  config.initrd = dir_ + "/nonexistent";
  absl::StatusOr<LoadedKernel> loaded = Load(config);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message().substr(0, 9), "-initrd: ") << loaded.status();
}

}  // namespace
}  // namespace passage

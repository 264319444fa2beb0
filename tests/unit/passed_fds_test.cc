// The command line's fds: one strict number parser, no number twice, and
// total ownership (an fd that no consumer took is closed; an fd that is not
// open fails the adoption and takes the open ones down with it).
#include "vmm/passed_fds.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "vmm/config.h"
#include "vmm/kvm.h"
#include "vmm/vm.h"

namespace passage {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(ParseFdNumber, DigitsOnly) {
  EXPECT_EQ(*ParseFdNumber("0"), 0);
  EXPECT_EQ(*ParseFdNumber("17"), 17);
  EXPECT_EQ(*ParseFdNumber("007"), 7);
  for (const char* bad : {"", " 3", "3 ", "+3", "-3", "3x", "0x3", "2147483648", "99999999999", "\n3"}) {
    auto fd = ParseFdNumber(bad);
    ASSERT_FALSE(fd.ok()) << bad;
    EXPECT_NE(fd.status().message().find("is not a file descriptor number"), absl::string_view::npos);
    EXPECT_EQ(fd.status().message().find('\n'), absl::string_view::npos) << fd.status();
  }
}

TEST(PassedFds, SameNumberTwiceNamesBothPlaces) {
  EXPECT_TRUE(PassedFds::CheckUnique({{3, "-accel kvm"}, {4, "-object iommufd,id=i"}}).ok());
  absl::Status s = PassedFds::CheckUnique({{3, "-accel kvm"}, {4, "-object iommufd,id=i"}, {3, "-device vfio-pci"}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "-device vfio-pci: fd=3 is already used by -accel kvm");
}

TEST(PassedFds, UntakenFdsAreClosedTakenOnesAreTheTakers) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const int e = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(e, 0);
  UniqueFd taken;
  {
    auto fds = PassedFds::Adopt({{p[0], "-device a"}, {p[1], "-device b"}, {e, "-object c"}});
    ASSERT_TRUE(fds.ok()) << fds.status();
    EXPECT_EQ(fds->Held().size(), 3u);
    auto t = fds->Take(p[1]);
    ASSERT_TRUE(t.ok());
    taken = std::move(*t);
    EXPECT_EQ(taken.get(), p[1]);
    EXPECT_FALSE(fds->Take(p[1]).ok()) << "taken once only";
    EXPECT_FALSE(fds->Take(999).ok()) << "never passed";
  }
  EXPECT_FALSE(IsOpen(p[0]));
  EXPECT_FALSE(IsOpen(e));
  EXPECT_TRUE(IsOpen(p[1]));
  taken.reset();
  EXPECT_FALSE(IsOpen(p[1]));
}

TEST(PassedFds, AClosedFdIsAnErrorAndTheOthersAreClosedToo) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const int closed = eventfd(0, EFD_CLOEXEC);
  close(closed);
  auto fds = PassedFds::Adopt({{p[0], "-device a"}, {closed, "-object iommufd,id=i0"}, {p[1], "-accel kvm"}});
  ASSERT_FALSE(fds.ok());
  EXPECT_EQ(fds.status().message(),
            absl::StrCat("-object iommufd,id=i0: fd=", closed, " is not an open file descriptor"));
  EXPECT_FALSE(IsOpen(p[0]));
  EXPECT_FALSE(IsOpen(p[1]));
}

// -accel kvm,fd= on something that is not /dev/kvm: an error, and the fd,
// passage's since the command line, is closed.
TEST(KvmAdopt, WrongKindOfFdIsClosed) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  auto kvm = Kvm::Adopt(UniqueFd(p[0]));
  ASSERT_FALSE(kvm.ok());
  EXPECT_NE(kvm.status().message().find(absl::StrCat("-accel kvm,fd=", p[0], ": not a usable /dev/kvm")),
            absl::string_view::npos) << kvm.status();
  EXPECT_FALSE(IsOpen(p[0]));
  close(p[1]);
}

// main's path with four fds at once: the first consumer (-accel kvm) fails,
// and every fd, taken or not, is closed by the time the VM is given up.
TEST(PassedFds, AFailingVmCreateLeavesNoPassedFdOpen) {
  int kvm[2], rng[2];
  ASSERT_EQ(pipe(kvm), 0);
  ASSERT_EQ(pipe(rng), 0);
  const int iommu = eventfd(0, EFD_CLOEXEC);
  const int cdev = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(iommu, 0);
  ASSERT_GE(cdev, 0);
  const std::string accel = absl::StrCat("kvm,fd=", kvm[0]);
  const std::string object = absl::StrCat("iommufd,id=i0,fd=", iommu);
  const std::string vfio = absl::StrCat("vfio-pci,iommufd=i0,fd=", cdev);
  const std::string rng_arg = absl::StrCat("virtio-rng-pci,fd=", rng[0]);
  auto cl = ParseCommandLine({"-kernel", "k", "-accel", accel, "-object", object, "-device", vfio, "-device", rng_arg});
  ASSERT_TRUE(cl.ok()) << cl.status();
  {
    auto fds = PassedFds::Adopt(PassedFdUses(cl->config));
    ASSERT_TRUE(fds.ok()) << fds.status();
    auto vm = Vm::Create(cl->config, *fds);
    ASSERT_FALSE(vm.ok());
    EXPECT_NE(vm.status().message().find(absl::StrCat("-accel kvm,fd=", kvm[0], ": not a usable /dev/kvm")),
              absl::string_view::npos) << vm.status();
    EXPECT_FALSE(IsOpen(kvm[0])) << "taken by Kvm::Adopt, closed when it failed";
    EXPECT_EQ(fds->Held().size(), 3u);
  }
  for (int fd : {kvm[0], iommu, cdev, rng[0]}) EXPECT_FALSE(IsOpen(fd)) << fd;
  close(kvm[1]);
  close(rng[1]);
}

}  // namespace
}  // namespace passage

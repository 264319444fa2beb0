# The tiny-guest tests (tests/kvm, issue 4's KVM core: real and long mode,
# RAM above 4 GiB, MMIO and port exits, -smp, serial, bad input, virtio-rng
# over PCI/MSI-X) on L1's KVM, which is real (nested SVM), for machines whose
# own /dev/kvm is missing or cannot run them (there they skip). passage and
# the guests are found through PASSAGE_BIN and PASSAGE_TINY_DIR.
# One result per gtest test; a skipped test fails here.
# rig: bin=$PASSAGE_BUILD_DIR/tests/kvm/passage_kvm_tests
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: add=$PASSAGE_BUILD_DIR/guests/tiny:/rig/tiny
# L1 with one vCPU: with two, TCG's int3 race (README "Known limits") hit
# 2 of 3 runs of these eight VM creations.
# rig: smp=1
# rig: timeout=600
# rig: expect=kvm.gtest_exit,kvm.TinyGuest.*

. /rig/lib.sh

PASSAGE_BIN=$(command -v passage) PASSAGE_TINY_DIR=/rig/tiny rig_gtest kvm passage_kvm_tests

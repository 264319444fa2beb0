# iommu/ and devices/vfio/ against the real kernel in L1: edu through the
# iommufd cdev path (one and two iommufd objects, every file passed as an fd)
# and through the legacy container, DMA into "guest RAM" checked both ways,
# error paths, and no leaked fds or pinned pages. One result per gtest test;
# a skipped test fails here, because the rig has everything they need.
# rig: bind=1234:11e8,1b36:0010
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/passthrough/passage_rig_vfio_tests
# rig: timeout=600

. /rig/lib.sh

out=$(passage_rig_vfio_tests 2>&1)
rc=$?
printf '%s\n' "$out"
printf '%s\n' "$out" > /tmp/gtest.out
grep -E '^\[ +(OK|FAILED|SKIPPED) +\] [A-Za-z0-9_]+\.[A-Za-z0-9_/]+ \(' /tmp/gtest.out > /tmp/gtest.ends
while read -r line; do
  name=$(printf '%s' "$line" | sed -E 's/^\[ +[A-Z]+ +\] ([^ ]+) .*/\1/')
  status=$(printf '%s' "$line" | sed -E 's/^\[ +([A-Z]+) +\].*/\1/')
  # The failure messages of this test: lines between its RUN and its end.
  detail=$(sed -n "/^\[ RUN      \] $name\$/,/^\[ *$status *\] $name /p" /tmp/gtest.out |
           grep -v '^\[' | tail -n 6)
  [ "$status" = OK ]
  result "vfio.$name" $? "$status ${detail}"
done < /tmp/gtest.ends
result vfio.gtest_exit "$rc" "passage_rig_vfio_tests exited $rc"

# Issue 15 "Sandbox": hotplug-fds.sh's sequence (hotplug.sh, fds only: /dev/kvm
# as an fd, every device file through getfd, nvme by fd= on a second iommufd
# object) with -sandbox on. The command line names no file by path and a QMP
# monitor exists, so open=auto forbids open after set-up: every getfd,
# object-add, device_add, device_del and object-del runs under the filter,
# and a device_add by host= is refused with a QMP error while passage runs on
# (hotsbx.sandbox_path.*). A forbidden call would end passage with exit 159
# (hotsbx.exit).
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: bin=$PASSAGE_BUILD_DIR/tests/rig/noopen/passage-noopen
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: add=lib/hotplug-l2.sh:/rig/hotplug-l2.sh
# rig: add=../../qmp/qmp-client.py:/usr/local/bin/qmp-client
# rig: python=../../qmp/qmp-client.py
# rig: mem=2G
# rig: smp=1
# rig: stall=90
# rig: timeout=2400
# rig: add=hotplug.sh:/rig/hotplug-body.sh
# rig: expect=client.runs
# rig: expect=hotsbx.noopen_fires,hotsbx.watching,hotsbx.edu1.l2,hotsbx.del1.qmp,hotsbx.edu2.l2,hotsbx.object_del.refused,hotsbx.object_del.pins
# rig: expect=hotsbx.nvme.l2,hotsbx.nvme_del.pins,hotsbx.sandbox_path.refused,hotsbx.sandbox_path.says,hotsbx.sandbox_path.alive
# rig: expect=hotsbx.powerdown.qmp,hotsbx.exit,hotsbx.teardown.pins,hotsbx.teardown.holders,hotsbx.noopen,hotsbx.done
# rig: expect=hotsbx.add.1.edu.dma,hotsbx.add.2.edu.dma,hotsbx.add.3.nvme.data,hotsbx.power_button

HOTPLUG_RUN=sandbox
. /rig/hotplug-body.sh

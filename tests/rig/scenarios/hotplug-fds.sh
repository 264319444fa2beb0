# Issue 12, the fds-only half of hotplug.sh (see there): passage under
# passage-noopen, /dev/kvm as an fd, every device file through getfd, nvme
# by fd= on a second iommufd object. The one path the wrapper lets through is
# glibc's CPU count (NOOPEN in lib/passthrough.sh says why).
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
# rig: expect=hotfds.noopen_fires,hotfds.watching,hotfds.edu1.l2,hotfds.del1.qmp,hotfds.edu2.l2,hotfds.object_del.refused,hotfds.object_del.pins
# rig: expect=hotfds.nvme.l2,hotfds.nvme_del.pins,hotfds.powerdown.qmp,hotfds.exit,hotfds.teardown.pins,hotfds.noopen,hotfds.done
# rig: expect=hotfds.add.1.edu.dma,hotfds.add.2.edu.dma,hotfds.add.3.nvme.data,hotfds.power_button

HOTPLUG_RUN=fds
. /rig/hotplug-body.sh

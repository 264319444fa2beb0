# Issue 15 "Faults", the full form of kill9.sh (see there): 120 kills by
# SIGKILL in one L1 boot (30 per aimed phase, the backends alternating), then
# the graceful stops. ~30 L2 boots, so it is not in the default run: ctest
# label `stress` (`ctest -L stress -R kill9`), or
# `tests/rig/run.py kill9-full`.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: add=../../qmp/qmp-client.py:/usr/local/bin/qmp-client
# rig: python=../../qmp/qmp-client.py
# rig: add=kill9.sh:/rig/kill9-body.sh
# rig: mem=2G
# rig: smp=1
# rig: stall=90
# rig: timeout=7200
# rig: expect=kill9.count,kill9.1.*,kill9.120.*
# rig: expect=stop.term_run.during,stop.quit_run.during,stop.term_hotplug.during,stop.quit_hotplug.during
# rig: expect=stop.term_run.exit,stop.term_run.line,stop.term_run.clean
# rig: expect=stop.quit_run.exit,stop.quit_run.clean
# rig: expect=stop.term_hotplug.exit,stop.term_hotplug.line,stop.term_hotplug.clean
# rig: expect=stop.quit_hotplug.exit,stop.quit_hotplug.clean

KILL9_COUNT=120
. /rig/kill9-body.sh

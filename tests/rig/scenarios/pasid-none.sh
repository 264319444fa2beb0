# Issue 13: edu and nvme have no PASID capability. L1 reads it from their
# config space (no PASID extended capability, ID 0x1b, in the chain from
# 0x100), then passage runs with both on one -object iommufd (VFIO cdevs,
# so both join the VM's PASID space) and a QMP socket:
#   - x-passage-query-pasid: width 0, edu0 and nvme0 each with
#     max-pasid-log2 0 and state no-pasid, no binding, ENQCMD off with its
#     reason;
#   - x-passage-pasid-bind is refused (GenericError) with the reason,
#     naming both devices and their width 0; a query after it shows no
#     binding;
#   - quit: passage exits 0 and nothing holds /dev/iommu or /dev/vfio/*.
# L2 only has to be up (the L2 image with a scenario that says so and
# waits), so the devices are in use when passage is asked.
# rig: bind=1234:11e8,1b36:0010
# rig: l2=yes
# rig: bin=$PASSAGE_BUILD_DIR/vmm/passage
# rig: bin=$PASSAGE_BUILD_DIR/guests/l2tests/edu-test:/rig/l2bin/edu-test
# rig: add=lib/passthrough.sh:/rig/passthrough.sh
# rig: add=../../qmp/qmp-client.py:/usr/local/bin/qmp-client
# rig: python=../../qmp/qmp-client.py
# rig: mem=2G
# One L1 vCPU, as in the passthrough scenarios (README "Known limits").
# rig: smp=1
# rig: stall=90
# rig: timeout=900
# rig: expect=none.l1_no_cap.edu,none.l1_no_cap.nvme,none.l2_ready
# rig: expect=none.query.qmp,none.query.width0,none.bind.refused,none.bind.reason
# rig: expect=none.after.qmp,none.after.unbound,none.quit.qmp,none.exit,none.teardown.holders

. /rig/lib.sh
. /rig/passthrough.sh

# ext_caps BDF: the PCIe extended capability IDs in L1's config space of BDF
# (hex, space-separated; empty when there are none or no extended space).
ext_caps() {
  _e_cfg=/sys/bus/pci/devices/$1/config _e_off=256 _e_out= _e_n=0
  [ "$(wc -c < "$_e_cfg")" -gt 256 ] || return 0
  while [ "$_e_off" -ge 256 ] && [ $_e_n -lt 64 ]; do
    _e_h=$(od -An -tx4 -j "$_e_off" -N 4 "$_e_cfg" | tr -d ' ')
    case $_e_h in ''|00000000|ffffffff) break ;; esac
    _e_out="$_e_out $(printf '%x' $((0x$_e_h & 0xffff)))"
    _e_off=$(( (0x$_e_h >> 20) & 0xffc )) _e_n=$((_e_n + 1))
  done
  echo "${_e_out# }"
}
for dev in edu:$EDU nvme:$NVME; do
  caps=$(ext_caps "${dev#*:}")
  result "none.l1_no_cap.${dev%%:*}" "$(case " $caps " in *' 1b '*) echo 1 ;; *) echo 0 ;; esac)" \
    "${dev#*:}: extended capabilities in L1: ${caps:-none} (config space $(wc -c < "/sys/bus/pci/devices/${dev#*:}/config") bytes, dword at 0x100: $(od -An -tx4 -j 256 -N 4 "/sys/bus/pci/devices/${dev#*:}/config" | tr -d ' ')); PASID is 1b"
done

# L2 up and waiting: the devices are in use while passage is asked.
mkdir -p /tmp/none/rig
printf 'echo "PASID-NONE-READY"\nsleep 600\n' > /tmp/none/rig/scenario.sh
cp /tmp/l2.img /tmp/none.img
cpio_append /tmp/none.img /tmp/none rig

# qmp STEP [qmp-client args]: one client session, result none.STEP; its
# JSON replies in /tmp/none.STEP.out.
qmp() {
  _q_step=$1
  shift
  qmp-client /tmp/none.sock --timeout 60 "$@" > "/tmp/none.$_q_step.out" 2> "/tmp/none.$_q_step.err"
  _q_rc=$?
  result "none.$_q_step" $_q_rc "qmp-client $* -> exit $_q_rc: $(grep -v '"QMP"' "/tmp/none.$_q_step.out" | tail -n 4)$(cat "/tmp/none.$_q_step.err")"
}

# judge STEP PYTHON: runs PYTHON with `r`, the last reply of STEP (parsed
# JSON), and `fail(why)`; prints what it found or why it failed, returns 1 on
# a failure.
judge() {
  python3 - "/tmp/none.$1.out" 2>&1 <<PY
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = [m for m in lines if "return" in m or "error" in m][-1]
def fail(why):
    print(why + ": " + json.dumps(r, separators=(",", ":")))
    sys.exit(1)
$2
PY
}

: > /tmp/none.serial
passage -cpu $CPU -m 200M -smp 1 -kernel $K -initrd /tmp/none.img \
  -append "$APPEND rig.cpus=1 rig.mem=200M" -serial file:/tmp/none.serial \
  -object iommufd,id=io0 -device vfio-pci,host=$EDU,iommufd=io0,id=edu0 \
  -device vfio-pci,host=$NVME,iommufd=io0,id=nvme0 \
  -qmp unix:/tmp/none.sock,server=on,wait=off > /tmp/none.out 2> /tmp/none.err &
pid=$!
wait_l2 none $pid /tmp/none.serial /tmp/none.err '^PASID-NONE-READY' 240
result none.l2_ready $? "L2 up after $WAITED s${L2_DIAG:+
$L2_DIAG}"

qmp query.qmp x-passage-query-pasid
v=$(judge query.qmp '
q = r.get("return") or fail("no return")
if q.get("width") != 0: fail("width is not 0")
devs = {d.get("id"): d for d in q.get("devices", [])}
for want in ("edu0", "nvme0"):
    d = devs.get(want) or fail(want + " not listed")
    if d.get("max-pasid-log2") != 0 or d.get("state") != "no-pasid" or d.get("pasids") != []:
        fail(want + " is not max-pasid-log2 0, state no-pasid, no pasids")
    if d.get("object") != "io0": fail(want + " not on io0")
if q.get("bindings") != []: fail("bindings listed")
if q.get("enqcmd") is not False or not q.get("enqcmd-off-reason"): fail("ENQCMD not off with a reason")
print("width 0; " + "; ".join("%s on %s: max-pasid-log2 %s, %s" % (i, d["object"], d["max-pasid-log2"], d["state"]) for i, d in sorted(devs.items())) + "; no binding; enqcmd off: " + q["enqcmd-off-reason"])
')
result none.query.width0 $? "$v"

qmp bind.refused --expect-error --error-class GenericError 'x-passage-pasid-bind pasid:=5 object=io0'
v=$(judge bind.refused '
e = r.get("error") or fail("not an error")
d = e.get("desc", "")
for part in ("no device in this VM supports PASID", "edu0", "nvme0", "width 0"):
    if part not in d: fail("the reason lacks " + repr(part))
print(d)
')
result none.bind.reason $? "$v"

qmp after.qmp x-passage-query-pasid
v=$(judge after.qmp '
q = r.get("return") or fail("no return")
if q.get("bindings") != [] or any(d.get("pasids") for d in q.get("devices", [])): fail("a binding after the refused bind")
print("no binding, no device with a PASID")
')
result none.after.unbound $? "$v"

qmp quit.qmp quit
stop_within $pid 60
result none.exit "$STOP_RC" "passage exited $STOP_RC after quit; stderr: $(tail -n 3 /tmp/none.err)"
h=$(holders)
result none.teardown.holders "$([ -z "$h" ]; echo $?)" "open /dev/iommu or /dev/vfio/* after exit: ${h:-none}"
exit 0

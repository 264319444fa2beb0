# Shell helpers for rig guests (busybox sh). Sourced by /init of the L1 and L2
# images and by every scenario, so scenarios can use these directly.
#
# Output protocol (one line each, on the serial console):
#   RIG-BOOT {"image":"l1","kernel":"...","uptime":"..."}   init started
#   RIG-RESULT {"name":"...","ok":true|false,"detail":"..."}   one check
#   RIG-DONE {"rc":0,"results":N,"failed":F}                  init finished; powering off
# Every RIG-RESULT line is also appended to $RIG_RESULTS, so init can report
# how many it emitted and the host can tell when one was lost or garbled.

RIG_RESULTS=${RIG_RESULTS:-/tmp/rig-results}
export RIG_RESULTS

# json_str TEXT: TEXT as the inside of a JSON string (no quotes).
json_str() {
  printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037\177' | awk '
    BEGIN { ORS = "" }
    { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, "\\r")
      if (NR > 1) print "\\n"
      print }'
}

# result NAME OK DETAIL...
#   OK: true|ok|pass|yes or false|fail|no, or a number read as an exit
#   status (0 = pass). Returns 0 when the result passed, 1 when it failed.
result() {
  _r_name=$1 _r_ok=$2
  shift 2
  case $_r_ok in
    true|ok|pass|yes) _r_ok=true ;;
    false|fail|no) _r_ok=false ;;
    *[!0-9]*|'') set -- "$* [result: bad OK argument '$_r_ok']"; _r_ok=false ;;
    0) _r_ok=true ;;
    *) _r_ok=false ;;
  esac
  _r_line="RIG-RESULT {\"name\":\"$(json_str "$_r_name")\",\"ok\":$_r_ok,\"detail\":\"$(json_str "$*")\"}"
  echo "$_r_line" >> "$RIG_RESULTS"
  echo "$_r_line"
  [ "$_r_ok" = true ]
}

# check NAME CMD [ARGS...]: runs CMD; passes when it exits 0. The detail is
# the exit status and the last lines of its output.
check() {
  _c_name=$1
  shift
  _c_out=$("$@" 2>&1)
  _c_rc=$?
  result "$_c_name" "$_c_rc" "\`$*\` exited $_c_rc: $(printf '%s\n' "$_c_out" | tail -n 5)"
}

# expect_dev NAME PATH [c|b|d|f]: PATH exists (and is a char device, block
# device, directory or regular file).
expect_dev() {
  _e_type=${3:-e}
  if [ -$_e_type "$2" ]; then
    result "$1" true "$2 exists ($(ls -ld "$2" 2>&1 | awk '{print $1, $5, $6}'))"
  else
    result "$1" false "$2 missing or not of type -$_e_type ($(ls -ld "$2" 2>&1))"
  fi
}

# pci_find VVVV:DDDD: prints the BDFs of matching PCI devices, one a line.
pci_find() {
  _p_v=0x${1%%:*} _p_d=0x${1##*:}
  for _p in /sys/bus/pci/devices/*; do
    [ "$(cat "$_p/vendor")" = "$_p_v" ] && [ "$(cat "$_p/device")" = "$_p_d" ] && echo "${_p##*/}"
  done
  return 0
}

# pci_driver BDF: the bound driver's name, or "none".
pci_driver() {
  if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
    basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
  else
    echo none
  fi
}

# pci_cdev BDF: /dev/vfio/devices/vfioN of the device, or nothing.
pci_cdev() {
  for _p in /sys/bus/pci/devices/"$1"/vfio-dev/vfio*; do
    [ -e "$_p" ] && echo "/dev/vfio/devices/${_p##*/}"
  done
  return 0
}

# pci_group BDF: the device's IOMMU group number, or nothing.
pci_group() {
  [ -e "/sys/bus/pci/devices/$1/iommu_group" ] && basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"
  return 0
}

# rig_bind VVVV:DDDD: binds every matching PCI device to vfio-pci (through
# driver_override + drivers_probe) and emits one bind.VVVV:DDDD result each.
rig_bind() {
  _b_found=
  for _b_bdf in $(pci_find "$1"); do
    _b_found=1
    _b_sys=/sys/bus/pci/devices/$_b_bdf
    _b_was=$(pci_driver "$_b_bdf")
    _b_err=$( { echo vfio-pci > "$_b_sys/driver_override" &&
                if [ -e "$_b_sys/driver" ]; then echo "$_b_bdf" > "$_b_sys/driver/unbind"; fi &&
                echo "$_b_bdf" > /sys/bus/pci/drivers_probe; } 2>&1)
    _b_now=$(pci_driver "$_b_bdf")
    _b_cdev=$(pci_cdev "$_b_bdf")
    if [ "$_b_now" = vfio-pci ] && [ -c "$_b_cdev" ]; then
      result "bind.$1" true "$_b_bdf: $_b_was -> vfio-pci, cdev $_b_cdev, iommu group $(pci_group "$_b_bdf")"
    else
      result "bind.$1" false "$_b_bdf: $_b_was -> $_b_now, cdev '${_b_cdev}' ${_b_err}"
    fi
  done
  [ -n "$_b_found" ] || result "bind.$1" false "no PCI device $1 in /sys/bus/pci/devices"
}

# cpio_append IMG DIR PATH...: appends PATH... (found under DIR) to the
# initramfs IMG as a newc cpio, IMG padded to 4 bytes first. Linux unpacks
# concatenated archives in order, so a later file overrides an earlier one.
cpio_append() {
  _ca_img=$1 _ca_dir=$2
  shift 2
  _ca_pad=$(( (4 - $(wc -c < "$_ca_img") % 4) % 4 ))
  if [ $_ca_pad -gt 0 ]; then head -c $_ca_pad /dev/zero >> "$_ca_img"; fi
  (cd "$_ca_dir" && find "$@" | cpio -o -H newc 2> /dev/null) >> "$_ca_img"
}

# rig_import PREFIX LOGFILE: re-emits the RIG-RESULT lines a nested guest
# wrote to LOGFILE (e.g. L2's serial console) with PREFIX added to their
# names, then one PREFIX.done result: passes when LOGFILE has a RIG-DONE line
# whose count matches the RIG-RESULT lines found and whose rc is 0.
rig_import() {
  _i_n=0
  _i_tmp=/tmp/rig-import.$$
  tr -d '\r' < "$2" | sed -n 's/^.*\(RIG-RESULT {"name":"\)/\1/p' > "$_i_tmp"
  while IFS= read -r _i_line; do
    _i_line=$(printf '%s' "$_i_line" | sed "s/^RIG-RESULT {\"name\":\"/RIG-RESULT {\"name\":\"$1./")
    echo "$_i_line" >> "$RIG_RESULTS"
    echo "$_i_line"
    _i_n=$((_i_n + 1))
  done < "$_i_tmp"
  rm -f "$_i_tmp"
  _i_done=$(tr -d '\r' < "$2" | sed -n 's/^.*RIG-DONE //p' | tail -n 1)
  case $_i_done in
    *'"rc":0,'*'"results":'$_i_n','*) result "$1.done" true "imported $_i_n results; $_i_done" ;;
    '') # The guest's last words say why (a panic, a triple fault, a hang).
        _i_tail=$(tr -d '\r' < "$2" | grep -v '^[[:space:]]*$' | tail -n 3 | tr '\n' '|' | cut -c1-400)
        result "$1.done" false "imported $_i_n results; no RIG-DONE line in $2; its last lines: ${_i_tail:-(empty)}" ;;
    *) result "$1.done" false "imported $_i_n results; $_i_done" ;;
  esac
}

# rig_run_scenario SCRIPT PREFIX: runs SCRIPT in a subshell that has these
# helpers (cwd /tmp). Its stdout goes to the console; each stderr line is
# shown as "PREFIX-stderr: ..." and, since scenarios report through results,
# any stderr output (a missing command, a shell error, a tool's complaint)
# fails the run with a PREFIX.scenario.stderr result. A non-zero exit status
# gives a failing PREFIX.scenario.exit result. Returns the exit status.
rig_run_scenario() {
  : > /tmp/rig-scenario.stderr
  echo 1 > /tmp/rig-scenario.rc
  { ( (cd /tmp && . "$1"); echo $? > /tmp/rig-scenario.rc ) 2>&1 1>&3 3>&- |
      while IFS= read -r _s_line; do
        echo "$_s_line" >> /tmp/rig-scenario.stderr
        echo "$2-stderr: $_s_line"
      done
  } 3>&1
  _s_rc=$(cat /tmp/rig-scenario.rc)
  if [ -s /tmp/rig-scenario.stderr ]; then
    result "$2.scenario.stderr" false "$(wc -l < /tmp/rig-scenario.stderr) line(s) on stderr: $(head -n 5 /tmp/rig-scenario.stderr)"
  fi
  [ "$_s_rc" = 0 ] || result "$2.scenario.exit" false "$1 exited $_s_rc"
  return "$_s_rc"
}

# rig_done RC: prints the RIG-DONE line.
rig_done() {
  _d_n=0 _d_f=0
  if [ -f "$RIG_RESULTS" ]; then
    _d_n=$(grep -c '^RIG-RESULT ' "$RIG_RESULTS")
    _d_f=$(grep -c '^RIG-RESULT {"name":"[^"]*","ok":false,' "$RIG_RESULTS")
  fi
  echo "RIG-DONE {\"rc\":$1,\"results\":$_d_n,\"failed\":$_d_f}"
}

# bounded SECS CMD [ARGS...]: timeout(1) that says what it found. Runs CMD;
# every 60 s a "rig: still running" line on the console (so a silent console
# means a frozen L1, not a slow command); at SECS, the state and kernel stack
# of each of CMD's threads on the console, SIGTERM, and 15 s later SIGKILL
# with a second dump if it is still there. Returns CMD's status, or 124 when
# the deadline ended it. RIG_BOUNDED_HOOK, when set, runs (with CMD's pid
# appended) at the deadline before the dump. RIG_BOUNDED_PROBE, when set, runs
# the same way at each minute's wake-up: when it returns 0 (CMD is stuck in a
# way it recognises, e.g. l2_probe), the deadline comes now. The caller's
# redirections apply to CMD; these lines go to $RIG_CONSOLE (default
# /dev/console). The shell just waits; a watchdog subshell wakes once a
# minute (RIG_BOUNDED_TICK seconds; no fork and exec every second in L1).
bounded() {
  _b_secs=$1
  shift
  # An asynchronous command reads /dev/null unless its stdin is redirected
  # from elsewhere (POSIX; ash even for <&0), and CMD may be fed through a
  # pipe (passage's virtio-rng with fd=0): hand it the caller's stdin via fd 8.
  if [ -e /proc/$$/fd/0 ]; then
    { "$@" <&8 8<&- & } 8<&0
  else
    "$@" &
  fi
  _b_pid=$!
  _b_mark=/tmp/.bounded.$_b_pid
  rm -f "$_b_mark"
  (
    # Ended early (CMD done): take the pending sleep along.
    _w_sleep=
    trap '[ -n "$_w_sleep" ] && kill $_w_sleep 2>/dev/null; exit 0' TERM
    _w_t=0
    _w_tick=${RIG_BOUNDED_TICK:-60}
    while [ $_w_t -lt $_b_secs ]; do
      _w_step=$((_b_secs - _w_t))
      [ $_w_step -gt $_w_tick ] && _w_step=$_w_tick
      sleep $_w_step &
      _w_sleep=$!
      wait $_w_sleep
      _w_sleep=
      _w_t=$((_w_t + _w_step))
      kill -0 $_b_pid 2>/dev/null || exit 0
      [ $_w_t -lt $_b_secs ] || break
      if [ -n "${RIG_BOUNDED_PROBE:-}" ] && $RIG_BOUNDED_PROBE $_b_pid; then
        echo "rig: $1 (pid $_b_pid) stuck at $_w_t s of $_b_secs (${RIG_BOUNDED_PROBE%% *}): the deadline comes now" \
          > "${RIG_CONSOLE:-/dev/console}"
        break
      fi
      echo "rig: still running: $1 (pid $_b_pid), $_w_t s of $_b_secs" > "${RIG_CONSOLE:-/dev/console}"
    done
    : > "$_b_mark"
    # The caller's own look first, while CMD still runs (e.g. l2_diag: a
    # VMM's state dump), as "$RIG_BOUNDED_HOOK PID".
    [ -n "${RIG_BOUNDED_HOOK:-}" ] && $RIG_BOUNDED_HOOK $_b_pid
    bounded_dump $_b_pid "$1 (pid $_b_pid) still running after $_b_secs s; SIGTERM"
    kill -TERM $_b_pid 2>/dev/null
    sleep 15 &
    _w_sleep=$!
    wait $_w_sleep
    kill -0 $_b_pid 2>/dev/null || exit 0
    bounded_dump $_b_pid "$1 (pid $_b_pid) survived SIGTERM for 15 s; SIGKILL"
    kill -KILL $_b_pid 2>/dev/null
  ) < /dev/null > /dev/null 2>&1 &  # a stray sleep must not hold the caller's pipes
  _b_watch=$!
  wait $_b_pid
  _b_rc=$?
  kill $_b_watch 2>/dev/null
  wait $_b_watch 2>/dev/null
  if [ -e "$_b_mark" ]; then
    rm -f "$_b_mark"
    return 124
  fi
  return $_b_rc
}

# bounded_dump PID WHY: each thread's state, wait channel and kernel stack.
bounded_dump() {
  {
    echo "rig: $2"
    for _d_t in /proc/$1/task/*; do
      [ -e "$_d_t/stat" ] || continue
      echo "rig:   thread ${_d_t##*/} $(cut -d' ' -f2,3 "$_d_t/stat" 2>/dev/null) wchan=$(cat "$_d_t/wchan" 2>/dev/null)"
      sed 's/^/rig:     /' "$_d_t/stack" 2>/dev/null
    done
  } > "${RIG_CONSOLE:-/dev/console}"
  # A wrapper's child (passage under passage-noopen) is dumped too.
  for _d_c in $(cat /proc/$1/task/*/children 2>/dev/null); do
    bounded_dump "$_d_c" "child $_d_c of $1 ($(cat /proc/$_d_c/comm 2>/dev/null))"
  done
}

# rig_gtest PREFIX CMD [ARGS...]: runs a GoogleTest binary and turns each test
# into a result PREFIX.Suite.Test (passes only when the test passed: a skipped
# test fails, since the rig has what the tests need), plus PREFIX.gtest_exit.
# The failure messages of a test are its detail.
rig_gtest() {
  _g_prefix=$1
  shift
  _g_out=$("$@" 2>&1)
  _g_rc=$?
  printf '%s\n' "$_g_out"
  printf '%s\n' "$_g_out" > /tmp/gtest.out
  grep -E '^\[ +(OK|FAILED|SKIPPED) +\] [A-Za-z0-9_]+\.[A-Za-z0-9_/]+ \(' /tmp/gtest.out > /tmp/gtest.ends
  while read -r _g_line; do
    _g_name=$(printf '%s' "$_g_line" | sed -E 's/^\[ +[A-Z]+ +\] ([^ ]+) .*/\1/')
    _g_status=$(printf '%s' "$_g_line" | sed -E 's/^\[ +([A-Z]+) +\].*/\1/')
    _g_detail=$(sed -n "/^\[ RUN      \] $_g_name\$/,/^\[ *$_g_status *\] $_g_name /p" /tmp/gtest.out |
                grep -v '^\[' | tail -n 6)
    [ "$_g_status" = OK ]
    result "$_g_prefix.$_g_name" $? "$_g_status ${_g_detail}"
  done < /tmp/gtest.ends
  result "$_g_prefix.gtest_exit" "$_g_rc" "$1 exited $_g_rc"
}

# ---- What a guest was asked to be (L2 image; tests/rig/README.md) ----------
# The VMM's caller puts its expectations on the guest's kernel command line:
#   rig.cpus=N                 -smp N
#   rig.mem=SIZE               -m SIZE (NNN, NNNM or NG; MiB by default)
#   rig.pci=BDF=VVVV:DDDD,...  exactly these PCI functions at these addresses
# and the L2 /init checks the guest against them.

# rig_arg NAME [CMDLINE]: prints the value of NAME= on CMDLINE (default
# /proc/cmdline); returns 1 when it is not there.
rig_arg() {
  for _a_w in ${2:-$(cat /proc/cmdline)}; do
    case $_a_w in "$1="*) echo "${_a_w#*=}"; return 0 ;; esac
  done
  return 1
}

# rig_mem_kb SIZE: SIZE (NNN, NNNM, NNNG) in kB, or nothing when malformed.
rig_mem_kb() {
  case $1 in
    *[!0-9MG]* | '' | [MG]* | *[MG]?*) return 1 ;;
    *G) echo $(( ${1%G} * 1024 * 1024 )) ;;
    *M) echo $(( ${1%M} * 1024 )) ;;
    *) echo $(( $1 * 1024 )) ;;
  esac
}

# rig_mem_bounds KB: "LOW HIGH", the MemTotal (kB) a Linux 7.3 guest with KB
# of RAM reports. Measured with passage in the rig: 200M -> 169880 kB,
# 512M -> 484888 kB, 1G -> 1000000 kB, 16G -> 16393744 kB: the kernel keeps
# ~31 MiB (its image, early allocations) plus the struct page array (64
# bytes per 4 KiB page, 1/64); past 4 GiB also the 64 MiB SWIOTLB bounce
# buffer and ~24 MiB more at 16G. LOW allows 40 MiB plus 1/64, and above
# 3 GiB another 64 MiB plus 1/512. HIGH is the RAM itself.
rig_mem_bounds() {
  _mb_low=$(( $1 - $1 / 64 - 40 * 1024 ))
  [ "$1" -gt $((3 * 1024 * 1024)) ] && _mb_low=$((_mb_low - 64 * 1024 - $1 / 512))
  echo "$_mb_low $1"
}

# rig_check_guest CMDLINE CPUS MEMTOTAL_KB SYSFS: one result each for
# l2.cpus, l2.memtotal and (with rig.pci=) l2.pci.<BDF> per expected or found
# function, against the expectations on CMDLINE. SYSFS is /sys (a fake tree
# in the selftest). A missing rig.cpus= or rig.mem= fails l2.cpus/l2.memtotal:
# the guest cannot judge what it was not told.
rig_check_guest() {
  _g_cmd=$1 _g_cpus=$2 _g_kb=$3 _g_sys=$4
  if _g_want=$(rig_arg rig.cpus "$_g_cmd"); then
    result l2.cpus "$([ "$_g_cpus" = "$_g_want" ]; echo $?)" "$_g_cpus online CPU(s), rig.cpus=$_g_want"
  else
    result l2.cpus false "$_g_cpus online CPU(s); no rig.cpus= on the command line to check them against"
  fi
  if _g_want=$(rig_arg rig.mem "$_g_cmd"); then
    if _g_ram=$(rig_mem_kb "$_g_want"); then
      set -- $(rig_mem_bounds "$_g_ram")
      result l2.memtotal "$([ "${_g_kb:-0}" -ge "$1" ] && [ "${_g_kb:-0}" -le "$2" ]; echo $?)" \
        "MemTotal $_g_kb kB, rig.mem=$_g_want: expect $1..$2 kB"
    else
      result l2.memtotal false "MemTotal $_g_kb kB; rig.mem='$_g_want' is not NNN, NNNM or NNNG"
    fi
  else
    result l2.memtotal false "MemTotal $_g_kb kB; no rig.mem= on the command line to check it against"
  fi
  _g_n=0
  _g_pci=$(rig_arg rig.pci "$_g_cmd")
  _g_has_pci=$?
  # Every function present: expected (when rig.pci= is given) with its IDs.
  for _g_d in "$_g_sys"/bus/pci/devices/*; do
    [ -e "$_g_d/vendor" ] || continue
    _g_n=$((_g_n + 1))
    _g_bdf=${_g_d##*/}
    _g_id="$(cat "$_g_d/vendor" | sed 's/^0x//'):$(cat "$_g_d/device" | sed 's/^0x//')"
    _g_what="vendor=$(cat "$_g_d/vendor") device=$(cat "$_g_d/device") class=$(cat "$_g_d/class") driver=$(pci_driver_in "$_g_sys" "$_g_bdf") irq=$(cat "$_g_d/irq" 2>/dev/null) $(describe_bars "$_g_d")"
    if [ $_g_has_pci = 0 ]; then
      _g_exp=
      for _g_e in $(echo "$_g_pci" | tr ',' ' '); do
        case $_g_bdf in *"${_g_e%%=*}") _g_exp=${_g_e#*=} ;; esac
      done
      if [ -z "$_g_exp" ]; then
        result "l2.pci.$_g_bdf" false "not expected (rig.pci=$_g_pci): $_g_what"
      else
        result "l2.pci.$_g_bdf" "$([ "$_g_id" = "$_g_exp" ]; echo $?)" "expected $_g_exp: $_g_what"
      fi
    else
      result "l2.pci.$_g_bdf" true "$_g_what"
    fi
  done
  # Every expected function present.
  _g_missing=
  for _g_e in $(echo "$_g_pci" | tr ',' ' '); do
    _g_found=
    for _g_d in "$_g_sys"/bus/pci/devices/*"${_g_e%%=*}"; do [ -e "$_g_d/vendor" ] && _g_found=1; done
    [ -n "$_g_found" ] || _g_missing="$_g_missing ${_g_e}"
  done
  if [ $_g_has_pci = 0 ]; then
    result l2.pci "$([ -z "$_g_missing" ]; echo $?)" \
      "$_g_n PCI function(s); rig.pci=$_g_pci${_g_missing:+; missing:$_g_missing}"
  else
    result l2.pci "$([ $_g_n -gt 0 ]; echo $?)" "$_g_n PCI function(s); no rig.pci= (functions not checked)"
  fi
}

# pci_driver_in SYSFS BDF: pci_driver under another sysfs root.
pci_driver_in() {
  if [ -e "$1/bus/pci/devices/$2/driver" ]; then
    basename "$(readlink "$1/bus/pci/devices/$2/driver")"
  else
    echo none
  fi
}

# describe_bars DIR: "bar0=mem64,pref 0xfe000000+0x4000 ..." from DIR/resource.
describe_bars() {
  _db_i=0
  _db_out=
  while read -r _db_start _db_end _db_flags; do
    if [ "$_db_i" -le 6 ] && [ $((_db_start)) -ne 0 -o $((_db_end)) -ne 0 ]; then
      _db_f=$((_db_flags))
      if [ $((_db_f & 0x100)) -ne 0 ]; then _db_kind=io
      elif [ $((_db_f & 0x200)) -ne 0 ]; then _db_kind=mem; [ $((_db_f & 0x100000)) -ne 0 ] && _db_kind=mem64
      else _db_kind=other; fi
      [ $((_db_f & 0x2000)) -ne 0 ] && _db_kind=$_db_kind,pref
      _db_name=bar$_db_i
      [ "$_db_i" = 6 ] && _db_name=rom
      _db_out="$_db_out $_db_name=$_db_kind $(printf '0x%x+0x%x' $((_db_start)) $((_db_end - _db_start + 1)))"
    fi
    _db_i=$((_db_i + 1))
  done < "$1/resource" 2>/dev/null
  echo "${_db_out# }"
}

# rig_check_interrupts FILE: l2.interrupts passes when every CPU took local
# timer interrupts (LOC) and the serial port's line (ttyS0) fired: the two
# interrupt sources every guest has, so a VMM that delivers none fails.
rig_check_interrupts() {
  _ci_loc=$(awk '$1 == "LOC:" { z = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) if ($i == 0) z++; print (i > 2 && z == 0) ? "ok" : "zero" }' "$1")
  _ci_tty=$(awk '/ttyS0/ { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; print s }' "$1" | head -n 1)
  result l2.interrupts "$([ "$_ci_loc" = ok ] && [ "${_ci_tty:-0}" -gt 0 ]; echo $?)" \
    "local timer on every CPU: ${_ci_loc:-no LOC line}; ttyS0: ${_ci_tty:-no line} interrupts
$(cat "$1")"
}

# ---- A nested guest (L2) that does not get where it should ----

# l2_symbol ADDR...: "SYMBOL+0xOFF" for each L2 kernel address, one a line,
# from the map run.py puts beside the L2 kernel (/rig/l2/System.map, L2
# booted nokaslr), or why it cannot be named. ADDR: hex, with or without 0x.
# One pass over the map for all of them (it has ~100k lines; L1 is slow).
l2_symbol() {
  _y_map=${L2_SYSTEM_MAP:-/rig/l2/System.map}
  for _y_a in "$@"; do
    _y_r=$(echo "${_y_a#0x}" | tr 'A-F' 'a-f')
    case $_y_r in ''|*[!0-9a-f]*) _y_r=bad ;; esac
    while [ ${#_y_r} -lt 16 ]; do _y_r=0$_y_r; done
    echo "$_y_r"
  done | {
    if [ -f "$_y_map" ]; then cat - "$_y_map"; else cat; fi
  } | awk -v nmap="$([ -f "$_y_map" ] && echo 1 || echo 0)" -v map="$_y_map" '
    # The addresses come first (one field), then the map ("ADDR TYPE NAME",
    # sorted by address). Compare as strings ("x" prefix: never as numbers,
    # which lose the low bits of a 64-bit address).
    NF == 1 { want[++n] = $1; next }
    $2 ~ /^[tTwW]$/ { for (i = 1; i <= n; i++) if (("x" $1) <= ("x" want[i])) { at[i] = $1; sym[i] = $3 } }
    END {
      for (i = 1; i <= n; i++) {
        if (want[i] ~ /bad/) print "unnamed (not a hex address)"
        else if (!nmap) print "unnamed (no " map ": kernel built without it)"
        else if (sym[i] == "" || sym[i] == "_etext" || sym[i] == "__entry_text_end")
          print "not in the kernel'"'"'s text (user space or outside the map)"
        else printf "%s+0x%x\n", sym[i], hexval(want[i]) - hexval(at[i])
      }
    }
    # The offset only: the low 32 bits are enough (functions are small).
    function hexval(h,   v, k, c) {
      v = 0; h = substr(h, length(h) - 7)
      for (k = 1; k <= length(h); k++) { c = index("0123456789abcdef", substr(h, k, 1)) - 1; v = v * 16 + c }
      return v
    }'
}

# child_named PID COMM: PID if its command name is COMM, else its child of
# that name (passage-noopen and bench-vmrun run their VMM as a child), else
# PID. Found by parent pid in /proc/*/stat: the rig kernel has no
# CONFIG_PROC_CHILDREN (/proc/PID/task/TID/children). COMM is what
# /proc/PID/comm shows (at most 15 characters: qemu-system-x86).
child_named() {
  if [ "$(cat /proc/$1/comm 2> /dev/null)" = "$2" ]; then echo "$1"; return 0; fi
  for _po_s in /proc/[0-9]*/stat; do
    # (a process can end between the glob and the read: no message then)
    { read -r _po_line < "$_po_s"; } 2> /dev/null || continue
    _po_comm=${_po_line#*\(} _po_rest=${_po_line##*\) }
    _po_comm=${_po_comm%\)*}
    set -- "$1" "$2" $_po_rest
    if [ "$4" = "$1" ] && [ "$_po_comm" = "$2" ]; then
      _po_c=${_po_s#/proc/}
      echo "${_po_c%/stat}"
      return 0
    fi
  done
  echo "$1"
}

# passage_of PID: PID if it is passage, else its passage child.
passage_of() { child_named "$1" passage; }

# l2_dump PID ERR: asks passage (PID) for its SIGUSR1 state dump and prints
# it once complete (it ends with the IOAPIC line; a vCPU that does not
# answer in 2 s is reported as such, so 5 s is enough), or nothing.
l2_dump() {
  _d_from=$(( $(wc -l < "$2" 2> /dev/null || echo 0) + 1 ))
  kill -USR1 "$1" 2> /dev/null || return 0
  _d_n=0
  while [ $_d_n -lt 25 ]; do
    _d_dump=$(tail -n +$_d_from "$2" | sed -n '/^passage: state dump/,/^passage: ioapic pin/p')
    case $_d_dump in *"passage: ioapic pin"*) echo "$_d_dump"; return 0 ;; esac
    sleep 0.2
    _d_n=$((_d_n + 1))
  done
}

# l2_names DUMP KASLR: for each vCPU line of DUMP, its rip and the return
# address candidates on its stack (stack=[...]) named from System.map.
l2_names() {
  echo "$1" | sed -n 's/.*vCPU \([0-9]*\): rip=\(0x[0-9a-f]*\) .*/\1 \2/p' | while read -r _n_v _n_rip; do
    if [ -n "$2" ]; then printf ' vCPU %s rip %s = unnamed (L2 booted without nokaslr);' "$_n_v" "$_n_rip"; continue; fi
    printf ' vCPU %s rip %s = %s;' "$_n_v" "$_n_rip" "$(l2_symbol "$_n_rip")"
    _n_stack=$(echo "$1" | sed -n "s/.*vCPU $_n_v: .* stack=\[\([0-9a-fx ]*\)\].*/\1/p")
    [ -n "$_n_stack" ] && printf ' stack: %s;' "$(l2_symbol $_n_stack | tr '\n' ' ' | sed 's/ $//')"
  done
}

# l2_kaslr PID: "yes" unless passage PID's command line has nokaslr (the
# map names addresses of a kernel that was not moved), else nothing.
l2_kaslr() {
  case " $(tr '\0' ' ' < "/proc/$1/cmdline" 2> /dev/null) " in *' nokaslr '*) ;; *) echo yes ;; esac
}

# l2_diag TAG PID SERIAL ERR: what a stuck L2 was doing, for a result's
# detail (stdout) and on L1's console ("rig: TAG stuck| ..." lines): the last
# 5 lines of L2's serial and two of passage's SIGUSR1 state dumps 3 s apart
# (each vCPU's rip and registers, local APIC, last exit and the kernel-text
# words on its stack; the 8250; IOAPIC pin 4; passage writes them to ERR),
# with each rip and stack word named from L2's System.map (if passage's
# command line has nokaslr, else the map does not apply). The same rip in
# both says where L2 is stuck; the stack words say how it got there. PID:
# passage, or the wrapper it runs under. Passage keeps running.
l2_diag() {
  _g_pid=$(passage_of "$2")
  _g_dump=$(l2_dump "$_g_pid" "$4")
  [ -n "$_g_dump" ] && sleep 3 && _g_dump2=$(l2_dump "$_g_pid" "$4")
  _g_kaslr=$(l2_kaslr "$_g_pid")
  {
    echo "L2 serial, last 5 lines (each cut at 300 characters):"
    tr -d '\r' < "$3" 2> /dev/null | tail -n 5 | cut -c1-300 | sed 's/RIG-/rig-/; s/^/  /'
    if [ -n "$_g_dump" ]; then
      echo "passage's state dump (SIGUSR1):"
      echo "$_g_dump" | sed 's/^/  /'
      echo "L2 kernel:$(l2_names "$_g_dump" "$_g_kaslr")"
      if [ -n "$_g_dump2" ]; then
        echo "3 s later:"
        echo "$_g_dump2" | grep 'vCPU' | sed 's/^/  /'
        echo "L2 kernel:$(l2_names "$_g_dump2" "$_g_kaslr")"
      fi
    else
      echo "passage's state dump (SIGUSR1): none (pid $_g_pid $(kill -0 "$_g_pid" 2> /dev/null && echo 'did not answer in 5 s' || echo 'is gone'))"
    fi
  } > "/tmp/$1.diag"
  sed "s/^/rig: $1 stuck| /" "/tmp/$1.diag" > "${RIG_CONSOLE:-/dev/console}"
  cat "/tmp/$1.diag"
}

# l2_diag_quiet TAG PID: l2_diag for bounded's deadline hook (l2_boot's
# files; the account goes to the console and /tmp/TAG.diag).
l2_diag_quiet() { l2_diag "$1" "$2" "/tmp/$1.serial" "/tmp/$1.err" > /dev/null; }

# l2_timer_deadlock NAMES: NAMES (l2_names' output) shows a vCPU in L2's
# timer deadlock (a local APIC timer interrupt taken with IF=0 inside
# hrtimer_interrupt or hrtimer_run_queues, which holds the lock the nested
# handler spins on), the emulator's fault that run.py retries (its
# L2_TIMER_DEADLOCK_RE; tests/rig/README.md, "Known limits").
l2_timer_deadlock() {
  for _t_f in hrtimer_interrupt hrtimer_run_queues; do
    echo "$1" | grep -qE "rip 0x[0-9a-f]+ = queued_spin_lock_slowpath\\+0x[0-9a-f]+; stack: _raw_spin_lock_irqsave\\+0x[0-9a-f]+ $_t_f\\+0x[0-9a-f]+ .*asm_sysvec_apic_timer_interrupt\\+0x[0-9a-f]+ .*$_t_f\\+0x[0-9a-f]+" && return 0
  done
  # hrtick's runqueue lock (one L2 vCPU: run.py's L2_HRTICK_DEADLOCK_RE).
  echo "$1" | grep -qE 'vCPU 0 rip 0x[0-9a-f]+ = queued_spin_lock_slowpath\+0x[0-9a-f]+; stack: hrtick\+0x[0-9a-f]+ .*__hrtimer_run_queues\+0x[0-9a-f]+ hrtimer_interrupt\+0x[0-9a-f]+ __sysvec_apic_timer_interrupt\+0x[0-9a-f]+'
}

# l2_deadlocked TAG PID SERIAL ERR: true when L2's serial (SERIAL) has not
# grown since this was last asked for TAG (the first call only notes its
# size) and passage's state dump (PID, its stderr ERR), twice 3 s apart,
# shows L2's timer deadlock: such a run never ends, and waiting for its
# deadline costs minutes (300 s in l2_boot) before run.py retries it. Each
# dump adds its lines to ERR, as at the deadline.
l2_deadlocked() {
  _k_size=$(wc -c < "$3" 2> /dev/null || echo 0)
  _k_prev=$(cat "/tmp/.l2probe.$1" 2> /dev/null || echo none)
  echo "$_k_size" > "/tmp/.l2probe.$1"
  [ "$_k_size" = "$_k_prev" ] || return 1
  _k_pid=$(passage_of "$2")
  _k_kaslr=$(l2_kaslr "$_k_pid")
  _k_dump=$(l2_dump "$_k_pid" "$4")
  l2_timer_deadlock "$(l2_names "$_k_dump" "$_k_kaslr")" || return 1
  sleep 3
  _k_dump=$(l2_dump "$_k_pid" "$4")
  l2_timer_deadlock "$(l2_names "$_k_dump" "$_k_kaslr")"
}

# l2_probe TAG PID: l2_deadlocked for bounded's RIG_BOUNDED_PROBE (l2_boot's
# files, as l2_diag_quiet).
l2_probe() { l2_deadlocked "$1" "$2" "/tmp/$1.serial" "/tmp/$1.err"; }

# wait_l2 TAG PID SERIAL ERR PATTERN SECS: waits until L2's serial (SERIAL)
# has a line matching PATTERN (grep -E; SERIAL's lines end in \r, so do not
# anchor with $), while PID (passage) runs, at most SECS s of L1's clock, with
# a console line every 30 s (the stall watch wants one at least every 90 s,
# and a loaded L1 is slow). Sets WAITED to the seconds it waited and L2_DIAG
# to "" when PATTERN came, else to l2_diag's account (or, when passage exited
# first, the tails of SERIAL and ERR). Returns 0 when PATTERN came.
wait_l2() {
  WAITED=0 L2_DIAG=
  rm -f "/tmp/.l2probe.$1"
  read -r _w_t0 _ < /proc/uptime
  _w_t0=${_w_t0%.*} _w_said=0
  while ! grep -qE "$5" "$3" 2> /dev/null; do
    if ! kill -0 "$2" 2> /dev/null; then
      L2_DIAG="passage exited before L2 printed /$5/; stderr: $(tail -n 5 "$4" 2> /dev/null)
L2 serial, last 5 lines: $(tr -d '\r' < "$3" 2> /dev/null | tail -n 5 | sed 's/RIG-/rig-/')"
      return 1
    fi
    if [ "$WAITED" -ge "$6" ]; then
      L2_DIAG=$(l2_diag "$1" "$2" "$3" "$4")
      return 1
    fi
    sleep 1
    read -r _w_now _ < /proc/uptime
    WAITED=$((${_w_now%.*} - _w_t0))
    if [ $((WAITED - _w_said)) -ge 30 ]; then
      _w_said=$WAITED
      # Every 60 s: L2 silent since the last look and in its timer
      # deadlock: PATTERN never comes.
      if [ $((WAITED / 30 % 2)) = 0 ] && l2_deadlocked "$1" "$2" "$3" "$4"; then
        echo "rig: $1: L2 stuck in its timer deadlock after $WAITED s of $6" > "${RIG_CONSOLE:-/dev/console}"
        L2_DIAG=$(l2_diag "$1" "$2" "$3" "$4")
        return 1
      fi
      echo "rig: $1: waiting for L2 (/$5/), $WAITED s of $6" > "${RIG_CONSOLE:-/dev/console}"
    fi
  done
  return 0
}

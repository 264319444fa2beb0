#!/bin/bash
# selftest.sh GUARD PROBE: passage-noopen refuses and reports a path under
# /dev or /sys however it is reached (each libc route, a raw system call, a
# relative path, a dirfd, "..", a symlink, another thread, a second execve),
# lets everything else through, and exits with the command's status or 99.
# Each refusable call is first made without the guard, where it must work:
# a probe that could not open the file anyway would prove nothing.
set -u
guard=$(realpath "$1") probe=$(realpath "$2")  # run() changes directory
fails=0 n=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

check() {  # check WHAT CONDITION...
  local what=$1
  shift
  n=$((n + 1))
  if "$@"; then
    echo "ok   $what"
  else
    echo "FAIL $what"
    sed 's/^/     stdout: /' "$out"
    sed 's/^/     stderr: /' "$err"
    fails=$((fails + 1))
  fi
}

# run DIR CMD...: CMD in DIR, its status in $rc, its output in $out/$err.
run() {
  local dir=$1
  shift
  (cd "$dir" && "$@") > "$out" 2> "$err"
  rc=$?
}

# refused MODE DIR SYSCALL [GUARD ARGS...]: MODE works without the guard
# (probe exit 3); under it, exit 99, one noopen line naming SYSCALL and the
# probe, and the probe saw EPERM (it exited 0).
refused() {
  local mode=$1 dir=$2 call=$3
  shift 3
  run "$dir" "$probe" "$mode"
  check "$mode: works without the guard (probe exit 3, got $rc)" test "$rc" = 3
  run "$dir" "$guard" "$@" -- "$probe" "$mode"
  check "$mode: guarded exit 99 (got $rc)" test "$rc" = 99
  check "$mode: one line 'noopen: $call(...) by noopen_probe'" \
    test "$(grep -c "^noopen: $call(\".*\") by noopen_probe" "$err")" = 1
  check "$mode: the probe got EPERM" grep -q 'Operation not permitted' "$out"
  check "$mode: summary says the probe exited 0" grep -q "refused; .* exited 0; exit 99" "$err"
}

refused fopen64 /tmp openat
refused open_2 /tmp openat
refused syscall /tmp openat
refused statx /tmp statx
refused relative /dev openat
check "relative: the line names the path it resolves to" grep -q '^noopen: openat("null") by noopen_probe (/dev/null)$' "$err"
refused dirfd /tmp openat
check "dirfd: the line names the path it resolves to" grep -q '^noopen: openat("sys/kernel") by noopen_probe (/sys/kernel)$' "$err"
refused dotdot /tmp openat
refused symlink /tmp openat
refused thread /tmp openat

# A second execve, refused by --deny (nothing executable lives in /dev).
run /tmp "$probe" exec
check "exec: /bin/true runs without the guard (exit 0, got $rc)" test "$rc" = 0 -a ! -s "$out"
run /tmp "$guard" --deny /bin -- "$probe" exec
check "exec: guarded with --deny /bin, exit 99 (got $rc)" test "$rc" = 99
check "exec: 'noopen: execve(\"/bin/true\") by noopen_probe'" grep -q '^noopen: execve("/bin/true") by noopen_probe$' "$err"

# /tmp files by every route, /proc/self, and fd 3 on /dev/null used as an fd.
run /tmp "$guard" -- "$probe" allowed 3< /dev/null
check "allowed: exit 0 (got $rc)" test "$rc" = 0
check "allowed: no noopen line" test "$(grep -c noopen "$err")" = 0
check "allowed: every call worked" test "$(grep -c ': ok$' "$out")" = 12

# --allow lets exactly that path through, and only that one.
run /dev "$guard" --allow /dev/null -- "$probe" relative
check "--allow /dev/null: open null in /dev works, exit 3 (got $rc)" test "$rc" = 3 -a ! -s "$err"
run /tmp "$guard" --allow /dev/null -- "$probe" statx
check "--allow /dev/null: statx /sys/kernel still refused, exit 99 (got $rc)" test "$rc" = 99

run /tmp "$guard" -- "$probe" exit 7
check "exit 7 passes through (got $rc)" test "$rc" = 7
run /tmp "$guard" -- /nonexistent/cmd
check "a command that cannot run: exit 127 (got $rc)" test "$rc" = 127
run /tmp "$guard" "$probe"
check "no '--': usage error, exit 2 (got $rc)" test "$rc" = 2

echo "$((n - fails)) of $n checks passed"
[ "$fails" = 0 ]

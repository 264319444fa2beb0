// The selftest's victim (selftest.sh): each mode makes one kind of call that
// passage-noopen must refuse, printing what the call returned, or ("allowed")
// calls it must let through. Exit status for a refusable call: 0 if it failed
// with EPERM, 3 if it worked, 4 if it failed otherwise; for "allowed", 1 if
// any call failed; for "exit N", N.
#define _GNU_SOURCE
#define _LARGEFILE64_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// glibc's fortified open(): what open() with a non-constant flags argument
// becomes under _FORTIFY_SOURCE.
extern int __open_2(const char* path, int flags);

static int report(const char* what, long rc) {
  printf("%s: %s\n", what, rc < 0 ? strerror(errno) : "ok");
  return rc < 0 ? 1 : 0;
}

static int refused(const char* what, long rc) {
  report(what, rc);
  return rc >= 0 ? 3 : errno == EPERM ? 0 : 4;
}

static void* thread_open(void* arg) {
  (void)arg;
  return (void*)(long)refused("thread open /dev/null", open("/dev/null", O_RDONLY));
}

static char tmp_dir[] = "/tmp/passage-noopen-XXXXXX";

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: noopen_probe MODE\n");
    return 2;
  }
  const char* mode = argv[1];
  if (strcmp(mode, "fopen64") == 0) {
    FILE* f = fopen64("/dev/null", "r");
    return refused("fopen64 /dev/null", f == NULL ? -1 : 0);
  }
  if (strcmp(mode, "open_2") == 0) return refused("__open_2 /dev/null", __open_2("/dev/null", O_RDONLY));
  if (strcmp(mode, "syscall") == 0) {
    return refused("syscall(SYS_openat) /dev/null", syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY));
  }
  if (strcmp(mode, "statx") == 0) {
    struct statx stx;
    return refused("statx /sys/kernel", statx(AT_FDCWD, "/sys/kernel", 0, STATX_BASIC_STATS, &stx));
  }
  if (strcmp(mode, "relative") == 0) {
    // Run in /dev (a chdir here would be refused itself).
    return refused("open null (in the cwd)", open("null", O_RDONLY));
  }
  if (strcmp(mode, "dirfd") == 0) {
    int root = open("/", O_PATH | O_DIRECTORY);
    if (root < 0) return report("open /", -1);
    return refused("openat(/, sys/kernel)", openat(root, "sys/kernel", O_RDONLY | O_DIRECTORY));
  }
  if (strcmp(mode, "dotdot") == 0) return refused("open /tmp/../dev/null", open("/tmp/../dev/null", O_RDONLY));
  if (strcmp(mode, "symlink") == 0) {
    if (mkdtemp(tmp_dir) == NULL) return report("mkdtemp", -1);
    char link[64];
    snprintf(link, sizeof(link), "%s/null", tmp_dir);
    if (symlink("/dev/null", link) != 0) return report("symlink", -1);
    const int rc = refused("open symlink to /dev/null", open(link, O_RDONLY));
    unlink(link);
    rmdir(tmp_dir);
    return rc;
  }
  if (strcmp(mode, "thread") == 0) {
    pthread_t t;
    void* rc;
    if (pthread_create(&t, NULL, thread_open, NULL) != 0) return 1;
    pthread_join(t, &rc);
    return (int)(long)rc;
  }
  if (strcmp(mode, "exec") == 0) {
    // Run with --deny /bin: the guard's own exec of this probe is the first
    // execve it sees, this one the second. Without the guard /bin/true
    // replaces the probe: exit 0 and no line.
    char* args[] = {"true", NULL};
    return refused("execve /bin/true", execv("/bin/true", args));
  }
  if (strcmp(mode, "allowed") == 0) {
    // Files under /tmp by every route above, /proc/self, and fd 3 (given
    // open by the caller, a file under /dev) used through the fd only.
    int bad = 0;
    if (mkdtemp(tmp_dir) == NULL) return report("mkdtemp", -1);
    char path[64], link[64], self[64];
    snprintf(path, sizeof(path), "%s/file", tmp_dir);
    snprintf(link, sizeof(link), "%s/link", tmp_dir);
    FILE* f = fopen64(path, "w");
    bad |= report("fopen64 tmp file", f == NULL ? -1 : 0);
    if (f != NULL) fclose(f);
    int fd = __open_2(path, O_RDONLY);
    bad |= report("__open_2 tmp file", fd);
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    bad |= report("open /proc/self/fd/N (a tmp file)", open(self, O_RDONLY));
    bad |= report("syscall(SYS_openat) tmp file", syscall(SYS_openat, AT_FDCWD, path, O_RDONLY));
    struct statx stx;
    bad |= report("statx tmp file", statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx));
    bad |= report("symlink", symlink(path, link));
    bad |= report("open symlink to tmp file", open(link, O_RDONLY));
    if (chdir(tmp_dir) != 0) bad |= report("chdir", -1);
    bad |= report("open relative", open("file", O_RDONLY));
    char buf[64];
    bad |= report("readlink /proc/self/fd/3", readlink("/proc/self/fd/3", buf, sizeof(buf)));
    struct stat st;
    bad |= report("fstat fd 3", fstat(3, &st));
    bad |= report("statx fd 3, \"\", AT_EMPTY_PATH", statx(3, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx));
    bad |= report("read fd 3", read(3, buf, 1));
    unlink(link);
    unlink(path);
    rmdir(tmp_dir);
    return bad;
  }
  if (strcmp(mode, "exit") == 0 && argc == 3) return atoi(argv[2]);
  fprintf(stderr, "noopen_probe: unknown mode '%s'\n", mode);
  return 2;
}

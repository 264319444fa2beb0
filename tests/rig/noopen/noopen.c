// LD_PRELOAD guard for "every file passed as an fd": any attempt by the
// process to open, list, stat or read a link under /dev or /sys ends it at
// once with a message naming the path (exit status 99). The rig's fd-passing
// scenarios run passage under it.
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void check(const char* what, const char* path) {
  if (path == NULL) return;
  if (strncmp(path, "/dev/", 5) == 0 || strcmp(path, "/dev") == 0 ||
      strncmp(path, "/sys/", 5) == 0 || strcmp(path, "/sys") == 0) {
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "noopen: %s(\"%s\") refused: every file must come as an fd\n",
                     what, path);
    if (n > 0) (void)!write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    _exit(99);
  }
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

int open(const char* path, int flags, ...) {
  check("open", path);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_arg(ap, mode_t);
  va_end(ap);
  return REAL(open)(path, flags, mode);
}
int open64(const char* path, int flags, ...) {
  check("open64", path);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_arg(ap, mode_t);
  va_end(ap);
  return REAL(open64)(path, flags, mode);
}
int openat(int dirfd, const char* path, int flags, ...) {
  check("openat", path);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_arg(ap, mode_t);
  va_end(ap);
  return REAL(openat)(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char* path, int flags, ...) {
  check("openat64", path);
  va_list ap;
  va_start(ap, flags);
  mode_t mode = va_arg(ap, mode_t);
  va_end(ap);
  return REAL(openat64)(dirfd, path, flags, mode);
}
FILE* fopen(const char* path, const char* mode) {
  check("fopen", path);
  return REAL(fopen)(path, mode);
}
DIR* opendir(const char* path) {
  check("opendir", path);
  return REAL(opendir)(path);
}
ssize_t readlink(const char* path, char* buf, size_t len) {
  check("readlink", path);
  return REAL(readlink)(path, buf, len);
}
int stat(const char* path, struct stat* st) {
  check("stat", path);
  return REAL(stat)(path, st);
}
int access(const char* path, int mode) {
  check("access", path);
  return REAL(access)(path, mode);
}

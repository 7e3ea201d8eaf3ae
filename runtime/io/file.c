/*
 * io/file.c -- what the file formats share: a bounded reader over a file
 * or a memory buffer, checked size arithmetic, byte order, and the
 * atomic writer (temporary file in the same directory, fsync, rename,
 * fsync of the directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

int lg_source_open(lg_source *src, const char *path) {
  memset(src, 0, sizeof *src);
  src->what = path;
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    lg_seterr("%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(fp), &st) < 0) {
    lg_seterr("%s: %s", path, strerror(errno));
    fclose(fp);
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    lg_seterr("%s: is a directory", path);
    fclose(fp);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    lg_seterr("%s: not a regular file", path);
    fclose(fp);
    return -1;
  }
  src->fp = fp;
  src->size = (uint64_t)st.st_size;
  return 0;
}

void lg_source_mem(lg_source *src, const void *buf, size_t n,
                   const char *what) {
  memset(src, 0, sizeof *src);
  src->what = what ? what : "<memory>";
  src->mem = buf;
  src->memlen = n;
  src->size = n;
}

void lg_source_close(lg_source *src) {
  if (src->fp)
    fclose(src->fp);
  src->fp = NULL;
}

int lg_source_read(lg_source *src, uint64_t off, void *buf, size_t n,
                   const char *part) {
  if (off > src->size || n > src->size - off) {
    lg_seterr("%s: truncated %s (needs %llu bytes at offset %llu, file "
              "has %llu)",
              src->what, part, (unsigned long long)n, (unsigned long long)off,
              (unsigned long long)src->size);
    return -1;
  }
  if (n == 0)
    return 0;
  if (src->mem) {
    memcpy(buf, src->mem + off, n);
    return 0;
  }
  FILE *fp = src->fp;
  if (fseeko(fp, (off_t)off, SEEK_SET) < 0) {
    lg_seterr("%s: %s", src->what, strerror(errno));
    return -1;
  }
  size_t got = fread(buf, 1, n, fp);
  if (got != n) {
    if (ferror(fp))
      lg_seterr("%s: read error: %s", src->what, strerror(errno));
    else
      lg_seterr("%s: truncated %s (file shrank while reading)", src->what,
                part);
    return -1;
  }
  return 0;
}

int lg_io_nbytes(const char *what, int ndim, const int64_t *shape, size_t elem,
                 uint64_t *nbytes) {
  uint64_t total = elem;
  bool zero = false;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      lg_seterr("%s: negative size %lld in shape", what, (long long)shape[i]);
      return -1;
    }
    if (shape[i] == 0)
      zero = true;
  }
  /* the product of the nonzero sizes must fit too, as the tensor code
   * multiplies them when it computes strides */
  for (int i = 0; i < ndim; i++) {
    uint64_t d = (uint64_t)shape[i];
    if (d == 0)
      continue;
    if (total > (uint64_t)INT64_MAX / d) {
      lg_seterr("%s: shape's element count overflows", what);
      return -1;
    }
    total *= d;
  }
  *nbytes = zero ? 0 : total;
  return 0;
}

void lg_io_prefix_error(const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s", lg_errmsg());
  if (strncmp(msg, what, strlen(what)) != 0)
    lg_seterr("%s: %s", what, msg);
}

bool lg_host_little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

void lg_bswap(void *data, size_t elem, size_t count) {
  unsigned char *p = data;
  if (elem <= 1)
    return;
  for (size_t i = 0; i < count; i++, p += elem)
    for (size_t a = 0, b = elem - 1; a < b; a++, b--) {
      unsigned char t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
}

float lg_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0 && man == 0) {
    bits = sign;
  } else if (exp == 0) { /* subnormal: renormalize */
    exp = 127 - 15 + 1;
    while (!(man & 0x400)) {
      man <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((man & 0x3FF) << 13);
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

int lg_write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
    ssize_t k = write(fd, p, chunk);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (k == 0) {
      errno = EIO;
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* "dir/.name.tmp-PID-N" beside path */
static char *temp_name(const char *path, unsigned attempt) {
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
  const char *base = path + dirlen;
  size_t n = strlen(path) + 64;
  char *tmp = malloc(n);
  if (!tmp)
    return NULL;
  static unsigned counter;
  snprintf(tmp, n, "%.*s.%s.tmp-%ld-%u-%u", (int)dirlen, path, base,
           (long)getpid(), __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED),
           attempt);
  return tmp;
}

static void fsync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (!slash) {
    dir = strdup(".");
  } else if (slash == path) {
    dir = strdup("/");
  } else {
    dir = strndup(path, (size_t)(slash - path));
  }
  if (!dir)
    return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd); /* best effort: some file systems refuse it */
    close(fd);
  }
  free(dir);
}

int lg_atomic_write(const char *path, int (*emit)(void *ctx, int fd),
                    void *ctx) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    lg_seterr("%s: is a directory", path);
    return -1;
  }
  char *tmp = NULL;
  int fd = -1;
  for (unsigned attempt = 0; attempt < 100 && fd < 0; attempt++) {
    free(tmp);
    tmp = temp_name(path, attempt);
    if (!tmp) {
      lg_seterr("%s: out of memory", path);
      return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) {
      lg_seterr("%s: cannot create a temporary file: %s", path,
                strerror(errno));
      free(tmp);
      return -1;
    }
  }
  if (fd < 0) {
    lg_seterr("%s: cannot create a temporary file", path);
    free(tmp);
    return -1;
  }
  errno = 0;
  int rc = emit(ctx, fd); /* -2: emit has set the message */
  bool own_msg = rc == -2;
  const char *stage = "write";
  if (rc == 0 && fsync(fd) < 0) {
    rc = -1;
    stage = "fsync";
  }
  int saved = errno;
  if (close(fd) < 0 && rc == 0) {
    rc = -1;
    stage = "close";
    saved = errno;
  }
  if (rc == 0 && rename(tmp, path) < 0) {
    rc = -1;
    stage = "rename";
    saved = errno;
  }
  if (rc < 0) {
    unlink(tmp);
    free(tmp);
    if (!own_msg || strcmp(stage, "write"))
      lg_seterr("%s: %s failed: %s", path, stage,
                strerror(saved ? saved : EIO));
    return -1;
  }
  free(tmp);
  fsync_dir(path);
  return 0;
}

/*
 * io/idx.c -- the IDX format of MNIST and Fashion-MNIST: two zero bytes,
 * a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64),
 * the number of dimensions, each dimension as a big-endian u32, then the
 * big-endian data.  Files are read through zlib, so gzip-compressed and
 * plain files are both read in place.
 *
 * Memory stays bounded by the file: the data the header promises must fit
 * in the bytes left (plain) or in what deflate can expand them to (at
 * most 1032 to 1, gzip) before anything is allocated.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io.h"

#define DEFLATE_MAX_RATIO 1032
#define IDX_CHUNK 65536

/* a byte stream: a gzFile, plain memory, or inflate over memory */
typedef struct {
  const char *what;
  gzFile gz;
  const unsigned char *mem;
  size_t memlen, mempos;
  z_stream zs;
  bool inflating, zs_ready, ended;
  uint64_t insize; /* compressed (or plain) size, for the bound */
  bool compressed;
} idx_stream;

/* reads up to n bytes; returns the count, or -1 with an error */
static long long stream_read(idx_stream *s, void *buf, size_t n) {
  if (s->gz) {
    size_t got = 0;
    while (got < n) {
      unsigned want = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
      int k = gzread(s->gz, (char *)buf + got, want);
      if (k < 0) {
        int code;
        const char *msg = gzerror(s->gz, &code);
        /* zlib's message already starts with the path */
        if (code == Z_ERRNO)
          lg_seterr("%s: %s", s->what, strerror(errno));
        else
          lg_seterr("%s", msg);
        return -1;
      }
      if (k == 0) {
        int code;
        gzerror(s->gz, &code);
        if (code == Z_BUF_ERROR) {
          lg_seterr("%s: truncated gzip stream", s->what);
          return -1;
        }
        break;
      }
      got += (size_t)k;
    }
    return (long long)got;
  }
  if (!s->inflating) {
    size_t k = s->memlen - s->mempos < n ? s->memlen - s->mempos : n;
    memcpy(buf, s->mem + s->mempos, k);
    s->mempos += k;
    return (long long)k;
  }
  s->zs.next_out = buf;
  s->zs.avail_out = (uInt)n;
  while (s->zs.avail_out > 0 && !s->ended) {
    if (s->zs.avail_in == 0 && s->mempos < s->memlen) {
      s->zs.next_in = (Bytef *)(s->mem + s->mempos);
      s->zs.avail_in = (uInt)(s->memlen - s->mempos);
      s->mempos = s->memlen;
    }
    int rc = inflate(&s->zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      /* another gzip member may follow; anything else after a member is
       * ignored, as zlib's gzread (and so the file reader) does */
      if (s->zs.avail_in < 2 || s->zs.next_in[0] != 0x1f ||
          s->zs.next_in[1] != 0x8b) {
        s->ended = true;
        break;
      }
      inflateReset(&s->zs);
      continue;
    }
    if (rc == Z_BUF_ERROR && s->zs.avail_in == 0) {
      lg_seterr("%s: truncated gzip stream", s->what);
      return -1;
    }
    if (rc != Z_OK) {
      lg_seterr("%s: corrupt gzip data (%s)", s->what,
                s->zs.msg ? s->zs.msg : "inflate failed");
      return -1;
    }
  }
  return (long long)(n - s->zs.avail_out);
}

static int stream_exact(idx_stream *s, void *buf, size_t n, const char *part) {
  long long k = stream_read(s, buf, n);
  if (k < 0)
    return -1;
  if ((size_t)k != n) {
    lg_seterr("%s: truncated %s", s->what, part);
    return -1;
  }
  return 0;
}

static void stream_close(idx_stream *s) {
  if (s->gz)
    gzclose(s->gz);
  if (s->zs_ready)
    inflateEnd(&s->zs);
  s->gz = NULL;
  s->zs_ready = false;
}

static int elem_size(int type) {
  switch (type) {
  case 0x08:
  case 0x09:
    return 1;
  case 0x0B:
    return 2;
  case 0x0C:
  case 0x0D:
    return 4;
  case 0x0E:
    return 8;
  default:
    return 0;
  }
}

static double raw_value(int type, const unsigned char *p) {
  switch (type) {
  case 0x08:
    return p[0];
  case 0x09:
    return (int8_t)p[0];
  case 0x0B:
    return (int16_t)(uint16_t)(p[0] << 8 | p[1]);
  case 0x0C:
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                     (uint32_t)p[2] << 8 | p[3]);
  case 0x0D: {
    uint32_t b = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                 (uint32_t)p[2] << 8 | p[3];
    float f;
    memcpy(&f, &b, 4);
    return f;
  }
  default: {
    uint64_t b = 0;
    for (int i = 0; i < 8; i++)
      b = b << 8 | p[i];
    double d;
    memcpy(&d, &b, 8);
    return d;
  }
  }
}

static void store(lg_dtype d, void *base, size_t i, double v) {
  switch (d) {
  case LG_FLOAT32:
    ((float *)base)[i] = (float)v;
    break;
  case LG_FLOAT64:
    ((double *)base)[i] = v;
    break;
  case LG_INT64:
    /* IDX values are at most 32-bit integers or floats: clamp floats */
    if (v != v)
      v = 0;
    if (v > 9.2e18)
      v = 9.2e18;
    if (v < -9.2e18)
      v = -9.2e18;
    ((int64_t *)base)[i] = (int64_t)v;
    break;
  case LG_BOOL:
    ((unsigned char *)base)[i] = v != 0;
    break;
  default:
    break;
  }
}

static lg_tensor *idx_load(idx_stream *s, int as_dtype, double scale,
                           double shift, int64_t limit) {
  const char *what = s->what;
  unsigned char magic[4];
  long long k = stream_read(s, magic, 4);
  if (k < 0)
    return NULL;
  if (k < 4 || magic[0] || magic[1] || !elem_size(magic[2])) {
    lg_seterr("%s: not an IDX file (bad magic)", what);
    return NULL;
  }
  int type = magic[2], ndim = magic[3];
  if (ndim > LG_MAX_DIMS) {
    lg_seterr("%s: IDX file has %d dimensions (at most %d)", what, ndim,
              LG_MAX_DIMS);
    return NULL;
  }
  int64_t shape[LG_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    unsigned char b[4];
    if (stream_exact(s, b, 4, "header") < 0)
      return NULL;
    shape[i] = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                         (uint32_t)b[2] << 8 | b[3]);
  }
  bool truncated = false;
  if (limit >= 0 && ndim > 0 && shape[0] > limit) {
    shape[0] = limit;
    truncated = true;
  }
  size_t esz = (size_t)elem_size(type);
  uint64_t nbytes;
  if (lg_io_nbytes(what, ndim, shape, esz, &nbytes) < 0)
    return NULL;
  uint64_t header = 4 + 4 * (uint64_t)ndim;
  uint64_t avail = s->insize > header ? s->insize - header : 0;
  if (s->compressed)
    avail = s->insize > UINT64_MAX / DEFLATE_MAX_RATIO
                ? UINT64_MAX
                : s->insize * DEFLATE_MAX_RATIO;
  if (nbytes > avail) {
    lg_seterr("%s: truncated data (shape needs %llu bytes, the file "
              "%s %llu)",
              what, (unsigned long long)nbytes,
              s->compressed ? "can hold at most" : "has",
              (unsigned long long)avail);
    return NULL;
  }
  lg_dtype natural = type == 0x0D   ? LG_FLOAT32
                     : type == 0x0E ? LG_FLOAT64
                                    : LG_INT64;
  lg_dtype out = as_dtype < 0 ? natural : (lg_dtype)as_dtype;
  if (as_dtype < 0) {
    scale = 1;
    shift = 0;
  }
  if (as_dtype >= (int)LG_NDTYPES) {
    lg_seterr("%s: bad dtype for IDX", what);
    return NULL;
  }
  lg_tensor *t = lg_empty(out, ndim, shape);
  if (!t) {
    lg_io_prefix_error(what);
    return NULL;
  }
  size_t count = (size_t)(nbytes / esz);
  void *dst = lg_data_ptr(t);
  unsigned char *chunk = malloc(IDX_CHUNK);
  if (!chunk) {
    lg_release(t);
    lg_seterr("%s: out of memory", what);
    return NULL;
  }
  /* u8 to float32: a table, as images are the common case */
  float lut[256];
  bool use_lut = type == 0x08 && out == LG_FLOAT32;
  if (use_lut)
    for (int v = 0; v < 256; v++)
      lut[v] = (float)(v * scale + shift);
  size_t per = IDX_CHUNK / esz, done = 0;
  while (done < count) {
    size_t n = count - done < per ? count - done : per;
    if (stream_exact(s, chunk, n * esz, "data") < 0) {
      free(chunk);
      lg_release(t);
      return NULL;
    }
    if (use_lut) {
      float *f = (float *)dst + done;
      for (size_t i = 0; i < n; i++)
        f[i] = lut[chunk[i]];
    } else if (out == LG_INT64 && natural == LG_INT64 && scale == 1 &&
               shift == (double)(int64_t)shift) {
      int64_t *o = (int64_t *)dst + done, sh = (int64_t)shift;
      for (size_t i = 0; i < n; i++)
        o[i] = (int64_t)raw_value(type, chunk + i * esz) + sh;
    } else {
      for (size_t i = 0; i < n; i++)
        store(out, dst, done + i,
              raw_value(type, chunk + i * esz) * scale + shift);
    }
    done += n;
  }
  /* a complete file: read on to the end, so zlib checks every gzip
   * trailer (CRC and length) and reports a truncated or corrupt stream
   * wherever it is, from memory as from a file */
  if (s->compressed && !truncated) {
    long long k;
    do
      k = stream_read(s, chunk, IDX_CHUNK);
    while (k > 0);
    if (k < 0) {
      free(chunk);
      lg_release(t);
      return NULL;
    }
  }
  free(chunk);
  return t;
}

lg_tensor *lg_idx_load(const char *path, int as_dtype, double scale,
                       double shift, int64_t limit) {
  idx_stream s;
  memset(&s, 0, sizeof s);
  s.what = path;
  struct stat st;
  if (stat(path, &st) < 0) {
    lg_seterr("%s: %s", path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    lg_seterr("%s: not a regular file", path);
    return NULL;
  }
  s.insize = (uint64_t)st.st_size;
  s.gz = gzopen(path, "rb");
  if (!s.gz) {
    lg_seterr("%s: %s", path, errno ? strerror(errno) : "cannot open");
    return NULL;
  }
  gzbuffer(s.gz, 1 << 17);
  s.compressed = !gzdirect(s.gz);
  lg_tensor *t = idx_load(&s, as_dtype, scale, shift, limit);
  stream_close(&s);
  return t;
}

lg_tensor *lg_idx_load_mem(const void *buf, size_t n, const char *what,
                           int as_dtype, double scale, double shift,
                           int64_t limit) {
  idx_stream s;
  memset(&s, 0, sizeof s);
  s.what = what ? what : "<memory>";
  s.mem = buf;
  s.memlen = n;
  s.insize = n;
  if (n >= 2 && s.mem[0] == 0x1f && s.mem[1] == 0x8b) {
    if (n > (size_t)UINT32_MAX) {
      lg_seterr("%s: gzip buffer too large", s.what);
      return NULL;
    }
    if (inflateInit2(&s.zs, 15 + 16) != Z_OK) {
      lg_seterr("%s: cannot start inflate", s.what);
      return NULL;
    }
    s.zs_ready = true;
    s.inflating = true;
    s.compressed = true;
  }
  lg_tensor *t = idx_load(&s, as_dtype, scale, shift, limit);
  stream_close(&s);
  return t;
}

/*
 * io/npy.c -- NumPy's .npy format: "\x93NUMPY", a version (1.0, 2.0 or
 * 3.0), a little-endian header length (2 bytes in 1.0, else 4), and a
 * header holding a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a newline; then the raw data.  The header is
 * read by a small tokenizer that accepts exactly that kind of literal:
 * nothing in it is evaluated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define NPY_MAX_HEADER ((uint64_t)1 << 20)

typedef struct {
  char order; /* '<' or '>' ('|' and '=' resolved) */
  char kind;  /* 'f', 'i', 'u', 'b' */
  int size;
  lg_dtype dtype; /* as loaded */
} npy_descr;

typedef struct {
  const char *p, *end;
  const char *what;
} tok;

static void skip_space(tok *t) {
  while (t->p < t->end &&
         (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
    t->p++;
}

static int expect(tok *t, char c) {
  skip_space(t);
  if (t->p >= t->end || *t->p != c) {
    lg_seterr("%s: bad .npy header (expected '%c')", t->what, c);
    return -1;
  }
  t->p++;
  return 0;
}

static bool peek(tok *t, char c) {
  skip_space(t);
  return t->p < t->end && *t->p == c;
}

/* a quoted string without escapes (all the format needs) */
static int read_str(tok *t, const char **s, size_t *n) {
  skip_space(t);
  if (t->p >= t->end || (*t->p != '\'' && *t->p != '"')) {
    lg_seterr("%s: bad .npy header (expected a string)", t->what);
    return -1;
  }
  char q = *t->p++;
  const char *start = t->p;
  while (t->p < t->end && *t->p != q) {
    if (*t->p == '\\') {
      lg_seterr("%s: bad .npy header (escape in a string)", t->what);
      return -1;
    }
    t->p++;
  }
  if (t->p >= t->end) {
    lg_seterr("%s: bad .npy header (unterminated string)", t->what);
    return -1;
  }
  *s = start;
  *n = (size_t)(t->p - start);
  t->p++;
  return 0;
}

static int read_int(tok *t, int64_t *v) {
  skip_space(t);
  const char *s = t->p;
  int64_t x = 0;
  while (t->p < t->end && *t->p >= '0' && *t->p <= '9') {
    int dgt = *t->p - '0';
    if (x > (INT64_MAX - dgt) / 10) {
      lg_seterr("%s: bad .npy header (size too large)", t->what);
      return -1;
    }
    x = x * 10 + dgt;
    t->p++;
  }
  if (t->p == s) {
    lg_seterr("%s: bad .npy header (expected a size)", t->what);
    return -1;
  }
  if (t->p < t->end && *t->p == 'L') /* Python 2's long */
    t->p++;
  *v = x;
  return 0;
}

static int parse_descr(const char *what, const char *s, size_t n,
                       npy_descr *d) {
  if (n < 3 || n > 4)
    goto bad;
  char order = s[0], kind = s[1];
  int size = 0;
  for (size_t i = 2; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      goto bad;
    size = size * 10 + (s[i] - '0');
  }
  if (order == '=' || order == '|')
    order = lg_host_little_endian() ? '<' : '>';
  if (order != '<' && order != '>')
    goto bad;
  d->order = order;
  d->kind = kind;
  d->size = size;
  if (kind == 'f' && size == 4)
    d->dtype = LG_FLOAT32;
  else if (kind == 'f' && size == 2)
    d->dtype = LG_FLOAT32;
  else if (kind == 'f' && size == 8)
    d->dtype = LG_FLOAT64;
  else if (kind == 'i' && (size == 1 || size == 2 || size == 4 || size == 8))
    d->dtype = LG_INT64;
  else if (kind == 'u' && (size == 1 || size == 2 || size == 4))
    d->dtype = LG_INT64;
  else if (kind == 'b' && size == 1)
    d->dtype = LG_BOOL;
  else
    goto bad;
  return 0;
bad:
  lg_seterr("%s: unsupported .npy dtype '%.*s'", what, (int)(n > 40 ? 40 : n),
            s);
  return -1;
}

static int parse_header(const char *what, const char *h, size_t n, npy_descr *d,
                        bool *fortran, int *ndim, int64_t *shape) {
  tok t = {h, h + n, what};
  bool have_descr = false, have_order = false, have_shape = false;
  if (expect(&t, '{') < 0)
    return -1;
  while (!peek(&t, '}')) {
    const char *key;
    size_t klen;
    if (read_str(&t, &key, &klen) < 0 || expect(&t, ':') < 0)
      return -1;
    if (klen == 5 && !memcmp(key, "descr", 5)) {
      const char *s;
      size_t sl;
      if (peek(&t, '[')) {
        lg_seterr("%s: structured .npy arrays are not supported", what);
        return -1;
      }
      if (read_str(&t, &s, &sl) < 0 || parse_descr(what, s, sl, d) < 0)
        return -1;
      have_descr = true;
    } else if (klen == 13 && !memcmp(key, "fortran_order", 13)) {
      skip_space(&t);
      if ((size_t)(t.end - t.p) >= 4 && !memcmp(t.p, "True", 4)) {
        *fortran = true;
        t.p += 4;
      } else if ((size_t)(t.end - t.p) >= 5 && !memcmp(t.p, "False", 5)) {
        *fortran = false;
        t.p += 5;
      } else {
        lg_seterr("%s: bad .npy header (fortran_order)", what);
        return -1;
      }
      have_order = true;
    } else if (klen == 5 && !memcmp(key, "shape", 5)) {
      if (expect(&t, '(') < 0)
        return -1;
      *ndim = 0;
      while (!peek(&t, ')')) {
        if (*ndim >= LG_MAX_DIMS) {
          lg_seterr("%s: .npy array has more than %d dimensions", what,
                    LG_MAX_DIMS);
          return -1;
        }
        if (read_int(&t, &shape[*ndim]) < 0)
          return -1;
        (*ndim)++;
        if (peek(&t, ','))
          t.p++;
        else if (!peek(&t, ')')) {
          lg_seterr("%s: bad .npy header (shape)", what);
          return -1;
        }
      }
      t.p++;
      have_shape = true;
    } else {
      lg_seterr("%s: bad .npy header (unknown key '%.*s')", what,
                (int)(klen > 40 ? 40 : klen), key);
      return -1;
    }
    if (peek(&t, ','))
      t.p++;
    else if (!peek(&t, '}')) {
      lg_seterr("%s: bad .npy header (expected ',' or '}')", what);
      return -1;
    }
  }
  t.p++;
  skip_space(&t);
  if (t.p != t.end) {
    lg_seterr("%s: bad .npy header (trailing characters)", what);
    return -1;
  }
  if (!have_descr || !have_order || !have_shape) {
    lg_seterr("%s: bad .npy header (needs descr, fortran_order and "
              "shape)",
              what);
    return -1;
  }
  return 0;
}

static void convert(const npy_descr *d, const unsigned char *src, void *dst,
                    size_t count) {
  bool swap = (d->order == '<') != lg_host_little_endian();
  for (size_t i = 0; i < count; i++) {
    unsigned char b[8];
    memcpy(b, src + i * (size_t)d->size, (size_t)d->size);
    if (swap)
      lg_bswap(b, (size_t)d->size, 1);
    switch (d->kind) {
    case 'f':
      if (d->size == 2) {
        uint16_t h;
        memcpy(&h, b, 2);
        ((float *)dst)[i] = lg_half_to_float(h);
      } else {
        memcpy((char *)dst + i * (size_t)d->size, b, (size_t)d->size);
      }
      break;
    case 'i': {
      int64_t v = 0;
      if (d->size == 1)
        v = (int8_t)b[0];
      else if (d->size == 2) {
        int16_t x;
        memcpy(&x, b, 2);
        v = x;
      } else if (d->size == 4) {
        int32_t x;
        memcpy(&x, b, 4);
        v = x;
      } else
        memcpy(&v, b, 8);
      ((int64_t *)dst)[i] = v;
      break;
    }
    case 'u': {
      int64_t v = 0;
      if (d->size == 1)
        v = b[0];
      else if (d->size == 2) {
        uint16_t x;
        memcpy(&x, b, 2);
        v = x;
      } else {
        uint32_t x;
        memcpy(&x, b, 4);
        v = x;
      }
      ((int64_t *)dst)[i] = v;
      break;
    }
    case 'b':
      ((unsigned char *)dst)[i] = b[0] != 0;
      break;
    }
  }
}

/* copies a Fortran-ordered array (src) into C order (dst) */
static void fortran_to_c(const char *src, char *dst, int ndim,
                         const int64_t *shape, size_t elem, size_t count) {
  int64_t fstride[LG_MAX_DIMS], idx[LG_MAX_DIMS] = {0};
  int64_t s = 1;
  for (int k = 0; k < ndim; k++) {
    fstride[k] = s;
    s *= shape[k];
  }
  for (size_t i = 0; i < count; i++) {
    int64_t off = 0;
    for (int k = 0; k < ndim; k++)
      off += idx[k] * fstride[k];
    memcpy(dst + i * elem, src + (size_t)off * elem, elem);
    for (int k = ndim - 1; k >= 0; k--) {
      if (++idx[k] < shape[k])
        break;
      idx[k] = 0;
    }
  }
}

static lg_tensor *npy_load(lg_source *src) {
  const char *what = src->what;
  unsigned char pre[12];
  if (src->size < 10 || lg_source_read(src, 0, pre, 10, "header") < 0 ||
      memcmp(pre, "\x93NUMPY", 6)) {
    lg_seterr("%s: not a .npy file (bad magic)", what);
    return NULL;
  }
  int major = pre[6];
  uint64_t hlen, start;
  if (major == 1) {
    hlen = pre[8] | (uint64_t)pre[9] << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (lg_source_read(src, 10, pre + 10, 2, "header") < 0)
      return NULL;
    hlen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
           (uint64_t)pre[11] << 24;
    start = 12;
  } else {
    lg_seterr("%s: unsupported .npy version %d.%d", what, major, pre[7]);
    return NULL;
  }
  if (hlen > src->size - start) {
    lg_seterr("%s: header length %llu larger than the file (%llu bytes)", what,
              (unsigned long long)hlen, (unsigned long long)src->size);
    return NULL;
  }
  if (hlen > NPY_MAX_HEADER) {
    lg_seterr("%s: .npy header of %llu bytes exceeds the limit of %llu", what,
              (unsigned long long)hlen, (unsigned long long)NPY_MAX_HEADER);
    return NULL;
  }
  char *h = malloc((size_t)hlen + 1);
  if (!h) {
    lg_seterr("%s: out of memory", what);
    return NULL;
  }
  if (lg_source_read(src, start, h, (size_t)hlen, "header") < 0) {
    free(h);
    return NULL;
  }
  npy_descr d = {0, 0, 0, LG_FLOAT32};
  bool fortran = false;
  int ndim = 0;
  int64_t shape[LG_MAX_DIMS];
  int rc = parse_header(what, h, (size_t)hlen, &d, &fortran, &ndim, shape);
  free(h);
  if (rc < 0)
    return NULL;
  uint64_t nbytes;
  if (lg_io_nbytes(what, ndim, shape, (size_t)d.size, &nbytes) < 0)
    return NULL;
  start += hlen;
  if (nbytes > src->size - start) {
    lg_seterr("%s: truncated data (shape needs %llu bytes, file has %llu)",
              what, (unsigned long long)nbytes,
              (unsigned long long)(src->size - start));
    return NULL;
  }
  lg_tensor *t = lg_empty(d.dtype, ndim, shape);
  if (!t) {
    lg_io_prefix_error(what);
    return NULL;
  }
  size_t count = (size_t)(nbytes / (uint64_t)d.size);
  size_t elem = lg_dtype_size(d.dtype);
  bool direct = elem == (size_t)d.size && d.kind != 'b' &&
                (d.order == '<') == lg_host_little_endian() && !fortran;
  void *raw = direct ? lg_data_ptr(t) : malloc(nbytes ? nbytes : 1);
  void *conv = NULL;
  if (!raw)
    goto oom;
  if (lg_source_read(src, start, raw, (size_t)nbytes, "data") < 0)
    goto fail;
  if (!direct) {
    void *dst = lg_data_ptr(t);
    if (fortran) {
      conv = malloc(count ? count * elem : 1);
      if (!conv)
        goto oom;
      dst = conv;
    }
    convert(&d, raw, dst, count);
    if (fortran)
      fortran_to_c(conv, lg_data_ptr(t), ndim, shape, elem, count);
    free(raw);
    free(conv);
  }
  return t;
oom:
  lg_seterr("%s: out of memory", what);
fail:
  if (!direct)
    free(raw);
  free(conv);
  lg_release(t);
  return NULL;
}

lg_tensor *lg_npy_load(const char *path) {
  lg_source src;
  if (lg_source_open(&src, path) < 0)
    return NULL;
  lg_tensor *t = npy_load(&src);
  lg_source_close(&src);
  return t;
}

lg_tensor *lg_npy_load_mem(const void *buf, size_t n, const char *what) {
  lg_source src;
  lg_source_mem(&src, buf, n, what);
  return npy_load(&src);
}

/* ---- writing ---- */

typedef struct {
  lg_strbuf head;
  lg_tensor *t;
} npy_writer;

static int npy_emit(void *ctx, int fd) {
  npy_writer *w = ctx;
  if (lg_write_all(fd, w->head.data, w->head.len) < 0)
    return -1;
  size_t elem = lg_dtype_size(w->t->dtype);
  size_t nbytes = (size_t)lg_numel(w->t) * elem;
  const unsigned char *p = lg_data_ptr(w->t);
  if (lg_host_little_endian() || elem == 1)
    return lg_write_all(fd, p, nbytes);
  unsigned char chunk[1 << 16];
  for (size_t off = 0; off < nbytes; off += sizeof chunk) {
    size_t k = nbytes - off < sizeof chunk ? nbytes - off : sizeof chunk;
    memcpy(chunk, p + off, k);
    lg_bswap(chunk, elem, k / elem);
    if (lg_write_all(fd, chunk, k) < 0)
      return -1;
  }
  return 0;
}

int lg_npy_save(const char *path, lg_tensor *t) {
  const char *descr;
  switch (t->dtype) {
  case LG_FLOAT32:
    descr = "<f4";
    break;
  case LG_FLOAT64:
    descr = "<f8";
    break;
  case LG_INT64:
    descr = "<i8";
    break;
  case LG_BOOL:
    descr = "|b1";
    break;
  default:
    lg_seterr("%s: dtype cannot be stored in .npy", path);
    return -1;
  }
  npy_writer w;
  lg_sb_init(&w.head);
  w.t = lg_contiguous(t);
  if (!w.t)
    return -1;
  lg_strbuf dict;
  lg_sb_init(&dict);
  lg_sb_adds(&dict, "{'descr': '");
  lg_sb_adds(&dict, descr);
  lg_sb_adds(&dict, "', 'fortran_order': False, 'shape': (");
  for (int d = 0; d < w.t->ndim; d++) {
    if (d)
      lg_sb_adds(&dict, ", ");
    lg_sb_addint(&dict, w.t->shape[d]);
  }
  if (w.t->ndim == 1)
    lg_sb_addc(&dict, ',');
  lg_sb_adds(&dict, "), }");
  /* pad with spaces and a newline so the data starts 64-aligned */
  size_t pre = 10; /* version 1.0: magic, version, 2-byte length */
  size_t pad = (64 - (pre + dict.len + 1) % 64) % 64;
  if (dict.len + 1 + pad > 65535) {
    pre = 12; /* version 2.0: a 4-byte length */
    pad = (64 - (pre + dict.len + 1) % 64) % 64;
  }
  uint64_t hlen = dict.len + pad + 1;
  lg_sb_add(&w.head, "\x93NUMPY", 6);
  lg_sb_addc(&w.head, pre == 10 ? 1 : 2);
  lg_sb_addc(&w.head, 0);
  for (size_t i = 0; i < pre - 8; i++)
    lg_sb_addc(&w.head, (char)(hlen >> (8 * i)));
  lg_sb_add(&w.head, dict.data, dict.len);
  for (size_t i = 0; i < pad; i++)
    lg_sb_addc(&w.head, ' ');
  lg_sb_addc(&w.head, '\n');
  int rc = -1;
  if (dict.failed || w.head.failed)
    lg_seterr("%s: out of memory", path);
  else
    rc = lg_atomic_write(path, npy_emit, &w);
  lg_sb_free(&dict);
  lg_sb_free(&w.head);
  lg_release(w.t);
  return rc;
}

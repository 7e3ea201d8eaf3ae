/*
 * io/safetensors.c -- the safetensors format: an 8-byte little-endian
 * header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
 *    "__metadata__": {"key": "value"}}
 * then the data, each tensor's bytes in C order at [b, e) of the data
 * region.  As the reference reader does, the loader insists that the
 * tensors tile the data region exactly (no overlap, no hole, nothing
 * after the last one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

typedef struct {
  const char *name;
  lg_dtype dtype; /* as loaded */
  size_t file_elem;
  int kind; /* file dtype, below */
} st_dtype;

enum {
  K_F32,
  K_F64,
  K_I64,
  K_BOOL,
  K_F16,
  K_BF16,
  K_I8,
  K_I16,
  K_I32,
  K_U8,
  K_U16,
  K_U32
};

static const st_dtype st_dtypes[] = {
    {"F32", LG_FLOAT32, 4, K_F32}, {"F64", LG_FLOAT64, 8, K_F64},
    {"I64", LG_INT64, 8, K_I64},   {"BOOL", LG_BOOL, 1, K_BOOL},
    {"F16", LG_FLOAT32, 2, K_F16}, {"BF16", LG_FLOAT32, 2, K_BF16},
    {"I8", LG_INT64, 1, K_I8},     {"I16", LG_INT64, 2, K_I16},
    {"I32", LG_INT64, 4, K_I32},   {"U8", LG_INT64, 1, K_U8},
    {"U16", LG_INT64, 2, K_U16},   {"U32", LG_INT64, 4, K_U32},
};

static const st_dtype *find_dtype(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
    if (strlen(st_dtypes[i].name) == n && !memcmp(st_dtypes[i].name, s, n))
      return &st_dtypes[i];
  return NULL;
}

static const char *save_dtype_name(lg_dtype d) {
  switch (d) {
  case LG_FLOAT32:
    return "F32";
  case LG_FLOAT64:
    return "F64";
  case LG_INT64:
    return "I64";
  case LG_BOOL:
    return "BOOL";
  default:
    return NULL;
  }
}

/* converts count little-endian file elements at src into dst (native) */
static void convert_in(int kind, const unsigned char *src, void *dst,
                       size_t count) {
  for (size_t i = 0; i < count; i++) {
    const unsigned char *p = src + i * 4; /* overwritten per kind below */
    switch (kind) {
    case K_F16:
      p = src + i * 2;
      ((float *)dst)[i] = lg_half_to_float((uint16_t)(p[0] | p[1] << 8));
      break;
    case K_BF16: {
      p = src + i * 2;
      uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
      memcpy((float *)dst + i, &bits, 4);
      break;
    }
    case K_I8:
      ((int64_t *)dst)[i] = (int8_t)src[i];
      break;
    case K_U8:
      ((int64_t *)dst)[i] = src[i];
      break;
    case K_I16:
      p = src + i * 2;
      ((int64_t *)dst)[i] = (int16_t)(uint16_t)(p[0] | p[1] << 8);
      break;
    case K_U16:
      p = src + i * 2;
      ((int64_t *)dst)[i] = (uint16_t)(p[0] | p[1] << 8);
      break;
    case K_I32:
    case K_U32: {
      uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24;
      ((int64_t *)dst)[i] = kind == K_I32 ? (int64_t)(int32_t)v : v;
      break;
    }
    }
  }
}

typedef struct {
  const lg_json *member;
  const st_dtype *dt;
  int ndim;
  int64_t shape[LG_MAX_DIMS];
  uint64_t begin, end;
} st_entry;

static int cmp_offsets(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

typedef struct {
  const char *s;
  size_t n;
} name_ref;

static int cmp_names(const void *a, const void *b) {
  const name_ref *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  if (c)
    return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* index of a repeated name in names[0..n) (sorted in place), or -1 */
static long find_duplicate(name_ref *names, size_t n) {
  if (n < 2)
    return -1;
  qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 1; i < n; i++)
    if (!cmp_names(&names[i - 1], &names[i]))
      return (long)i;
  return -1;
}

static int parse_entry(const char *what, const lg_json *m, st_entry *e,
                       uint64_t datasize) {
  const char *name = m->key;
  if (m->type != LG_JSON_OBJ) {
    lg_seterr("%s: tensor '%.100s': entry is not an object", what, name);
    return -1;
  }
  const lg_json *dt = lg_json_get(m, "dtype");
  const lg_json *shape = lg_json_get(m, "shape");
  const lg_json *offs = lg_json_get(m, "data_offsets");
  if (!dt || dt->type != LG_JSON_STR) {
    lg_seterr("%s: tensor '%.100s': missing or bad \"dtype\"", what, name);
    return -1;
  }
  e->dt = find_dtype(dt->s, dt->len);
  if (!e->dt) {
    lg_seterr("%s: tensor '%.100s': unsupported dtype '%.40s'", what, name,
              dt->s);
    return -1;
  }
  if (!shape || shape->type != LG_JSON_ARR) {
    lg_seterr("%s: tensor '%.100s': missing or bad \"shape\"", what, name);
    return -1;
  }
  if (shape->n > LG_MAX_DIMS) {
    lg_seterr("%s: tensor '%.100s': %zu dimensions (at most %d)", what, name,
              shape->n, LG_MAX_DIMS);
    return -1;
  }
  e->ndim = (int)shape->n;
  for (int i = 0; i < e->ndim; i++) {
    const lg_json *d = &shape->items[i];
    if (d->type != LG_JSON_INT || d->i < 0) {
      lg_seterr("%s: tensor '%.100s': shape entries must be non-negative "
                "integers",
                what, name);
      return -1;
    }
    e->shape[i] = d->i;
  }
  uint64_t nbytes;
  char ctx[300];
  snprintf(ctx, sizeof ctx, "%s: tensor '%.100s'", what, name);
  if (lg_io_nbytes(ctx, e->ndim, e->shape, e->dt->file_elem, &nbytes) < 0)
    return -1;
  if (!offs || offs->type != LG_JSON_ARR || offs->n != 2 ||
      offs->items[0].type != LG_JSON_INT ||
      offs->items[1].type != LG_JSON_INT || offs->items[0].i < 0 ||
      offs->items[1].i < offs->items[0].i) {
    lg_seterr("%s: tensor '%.100s': \"data_offsets\" must be [begin, end] "
              "with 0 <= begin <= end",
              what, name);
    return -1;
  }
  e->begin = (uint64_t)offs->items[0].i;
  e->end = (uint64_t)offs->items[1].i;
  if (e->end > datasize) {
    lg_seterr("%s: tensor '%.100s': data_offsets [%llu, %llu] outside the "
              "data (%llu bytes)",
              what, name, (unsigned long long)e->begin,
              (unsigned long long)e->end, (unsigned long long)datasize);
    return -1;
  }
  if (e->end - e->begin != nbytes) {
    lg_seterr("%s: tensor '%.100s': data_offsets span %llu bytes but dtype "
              "and shape need %llu",
              what, name, (unsigned long long)(e->end - e->begin),
              (unsigned long long)nbytes);
    return -1;
  }
  e->member = m;
  return 0;
}

static int parse_metadata(const char *what, const lg_json *m, lg_st_file *out) {
  if (m->type == LG_JSON_NULL)
    return 0;
  if (m->type != LG_JSON_OBJ) {
    lg_seterr("%s: \"__metadata__\" is not an object", what);
    return -1;
  }
  if (m->n == 0)
    return 0;
  out->meta = calloc(m->n, sizeof *out->meta);
  name_ref *keys = calloc(m->n, sizeof *keys);
  if (!out->meta || !keys) {
    free(keys);
    lg_seterr("%s: out of memory", what);
    return -1;
  }
  for (size_t i = 0; i < m->n; i++) {
    const lg_json *v = &m->items[i];
    if (v->type != LG_JSON_STR) {
      free(keys);
      lg_seterr("%s: metadata '%.100s' is not a string", what, v->key);
      return -1;
    }
    out->meta[i].key = (char *)v->key;
    out->meta[i].key_len = v->keylen;
    out->meta[i].value = (char *)v->s;
    out->meta[i].value_len = v->len;
    keys[i].s = v->key;
    keys[i].n = v->keylen;
  }
  out->nmeta = m->n;
  long dup = find_duplicate(keys, m->n);
  if (dup >= 0) {
    lg_seterr("%s: metadata key '%.100s' appears twice", what, keys[dup].s);
    free(keys);
    return -1;
  }
  free(keys);
  return 0;
}

void lg_st_file_clear(lg_st_file *f) {
  for (size_t i = 0; i < f->ntensors; i++) {
    free(f->tensors[i].name);
    lg_release(f->tensors[i].tensor);
  }
  free(f->tensors);
  free(f->meta);
  lg_json_free(f->doc);
  memset(f, 0, sizeof *f);
}

static int load_tensor(lg_source *src, uint64_t data_start, const st_entry *e,
                       lg_tensor **out) {
  lg_tensor *t = lg_empty(e->dt->dtype, e->ndim, e->shape);
  if (!t) {
    lg_io_prefix_error(src->what);
    return -1;
  }
  size_t count = (size_t)lg_numel(t);
  size_t nbytes = (size_t)(e->end - e->begin);
  void *dst = lg_data_ptr(t);
  bool native = e->dt->kind <= K_BOOL;
  void *buf = dst;
  if (!native && nbytes) {
    buf = malloc(nbytes);
    if (!buf) {
      lg_release(t);
      lg_seterr("%s: out of memory", src->what);
      return -1;
    }
  }
  char part[300];
  snprintf(part, sizeof part, "data of tensor '%.100s'", e->member->key);
  if (lg_source_read(src, data_start + e->begin, buf, nbytes, part) < 0) {
    if (buf != dst)
      free(buf);
    lg_release(t);
    return -1;
  }
  if (!native) {
    convert_in(e->dt->kind, buf, dst, count);
    if (buf != dst)
      free(buf);
  } else if (e->dt->kind == K_BOOL) {
    unsigned char *b = dst;
    for (size_t i = 0; i < count; i++)
      b[i] = b[i] != 0;
  } else if (!lg_host_little_endian()) {
    lg_bswap(dst, e->dt->file_elem, count);
  }
  *out = t;
  return 0;
}

static int st_load(lg_source *src, lg_st_file *out) {
  const char *what = src->what;
  memset(out, 0, sizeof *out);
  unsigned char lenbuf[8];
  if (src->size < 8) {
    lg_seterr("%s: not a safetensors file (%llu bytes, shorter than the "
              "8-byte header length)",
              what, (unsigned long long)src->size);
    return -1;
  }
  if (lg_source_read(src, 0, lenbuf, 8, "header length") < 0)
    return -1;
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--)
    hlen = hlen << 8 | lenbuf[i];
  if (hlen > src->size - 8) {
    lg_seterr("%s: header length %llu larger than the file (%llu bytes)", what,
              (unsigned long long)hlen, (unsigned long long)src->size);
    return -1;
  }
  if (hlen > LG_ST_MAX_HEADER) {
    lg_seterr("%s: header of %llu bytes exceeds the limit of %llu", what,
              (unsigned long long)hlen, (unsigned long long)LG_ST_MAX_HEADER);
    return -1;
  }
  if (hlen < 2) {
    lg_seterr("%s: header of %llu bytes is too short", what,
              (unsigned long long)hlen);
    return -1;
  }
  char *header = malloc((size_t)hlen);
  if (!header) {
    lg_seterr("%s: out of memory", what);
    return -1;
  }
  if (lg_source_read(src, 8, header, (size_t)hlen, "header") < 0) {
    free(header);
    return -1;
  }
  if (header[0] != '{') {
    free(header);
    lg_seterr("%s: not a safetensors file (header does not start with "
              "'{')",
              what);
    return -1;
  }
  /* an entry is some 60 bytes of text for 8 + ndim values: allowing a
   * value per 8 bytes keeps the tree within about ten times the header */
  out->doc =
      lg_json_parse(header, (size_t)hlen, 16, (size_t)hlen / 8 + 1024, what);
  free(header);
  if (!out->doc)
    return -1;
  const lg_json *root = lg_json_root(out->doc);
  if (root->type != LG_JSON_OBJ) {
    lg_seterr("%s: header is not a JSON object", what);
    goto fail;
  }
  uint64_t data_start = 8 + hlen;
  uint64_t datasize = src->size - data_start;
  size_t n = 0;
  bool seen_meta = false;
  for (size_t i = 0; i < root->n; i++) {
    if (!strcmp(root->items[i].key, "__metadata__") &&
        root->items[i].keylen == 12) {
      if (seen_meta) {
        lg_seterr("%s: \"__metadata__\" appears twice", what);
        goto fail;
      }
      seen_meta = true;
      if (parse_metadata(what, &root->items[i], out) < 0)
        goto fail;
    } else {
      n++;
    }
  }
  st_entry *entries = n ? calloc(n, sizeof *entries) : NULL;
  name_ref *names = n ? calloc(n, sizeof *names) : NULL;
  if (n && (!entries || !names)) {
    free(entries);
    free(names);
    lg_seterr("%s: out of memory", what);
    goto fail;
  }
  size_t k = 0;
  for (size_t i = 0; i < root->n; i++) {
    const lg_json *m = &root->items[i];
    if (m->keylen == 12 && !strcmp(m->key, "__metadata__"))
      continue;
    if (parse_entry(what, m, &entries[k], datasize) < 0)
      goto fail_entries;
    names[k].s = m->key;
    names[k].n = m->keylen;
    k++;
  }
  long dup = find_duplicate(names, n);
  if (dup >= 0) {
    lg_seterr("%s: tensor name '%.100s' appears twice", what, names[dup].s);
    goto fail_entries;
  }
  if (n > 1)
    qsort(entries, n, sizeof *entries, cmp_offsets);
  uint64_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    if (entries[i].begin < pos) {
      lg_seterr("%s: tensor '%.100s' overlaps the tensor before it", what,
                entries[i].member->key);
      goto fail_entries;
    }
    if (entries[i].begin > pos) {
      lg_seterr("%s: hole in the data before tensor '%.100s' (bytes %llu to "
                "%llu are not part of any tensor)",
                what, entries[i].member->key, (unsigned long long)pos,
                (unsigned long long)entries[i].begin);
      goto fail_entries;
    }
    pos = entries[i].end;
  }
  if (pos != datasize) {
    lg_seterr("%s: %llu bytes of data after the last tensor", what,
              (unsigned long long)(datasize - pos));
    goto fail_entries;
  }
  out->tensors = n ? calloc(n, sizeof *out->tensors) : NULL;
  if (n && !out->tensors) {
    lg_seterr("%s: out of memory", what);
    goto fail_entries;
  }
  for (size_t i = 0; i < n; i++) {
    lg_named_tensor *nt = &out->tensors[i];
    const lg_json *m = entries[i].member;
    nt->name = malloc(m->keylen + 1);
    if (!nt->name) {
      lg_seterr("%s: out of memory", what);
      goto fail_entries;
    }
    memcpy(nt->name, m->key, m->keylen + 1);
    nt->name_len = m->keylen;
    out->ntensors = i + 1;
    if (load_tensor(src, data_start, &entries[i], &nt->tensor) < 0)
      goto fail_entries;
  }
  free(entries);
  free(names);
  return 0;
fail_entries:
  free(entries);
  free(names);
fail:
  lg_st_file_clear(out);
  return -1;
}

int lg_safetensors_load(const char *path, lg_st_file *out) {
  lg_source src;
  memset(out, 0, sizeof *out);
  if (lg_source_open(&src, path) < 0)
    return -1;
  int rc = st_load(&src, out);
  lg_source_close(&src);
  return rc;
}

int lg_safetensors_load_mem(const void *buf, size_t n, const char *what,
                            lg_st_file *out) {
  lg_source src;
  lg_source_mem(&src, buf, n, what);
  return st_load(&src, out);
}

/* ---- writing ---- */

typedef struct {
  lg_strbuf header;
  size_t n;
  lg_tensor **contig;
} st_writer;

static int st_emit(void *ctx, int fd) {
  st_writer *w = ctx;
  unsigned char lenbuf[8];
  uint64_t hlen = w->header.len;
  for (int i = 0; i < 8; i++)
    lenbuf[i] = (unsigned char)(hlen >> (8 * i));
  if (lg_write_all(fd, lenbuf, 8) < 0 ||
      lg_write_all(fd, w->header.data, w->header.len) < 0)
    return -1;
  bool swap = !lg_host_little_endian();
  for (size_t i = 0; i < w->n; i++) {
    lg_tensor *t = w->contig[i];
    size_t elem = lg_dtype_size(t->dtype);
    size_t nbytes = (size_t)lg_numel(t) * elem;
    if (!swap || elem == 1) {
      if (lg_write_all(fd, lg_data_ptr(t), nbytes) < 0)
        return -1;
      continue;
    }
    unsigned char chunk[1 << 16];
    const unsigned char *p = lg_data_ptr(t);
    for (size_t off = 0; off < nbytes; off += sizeof chunk) {
      size_t k = nbytes - off < sizeof chunk ? nbytes - off : sizeof chunk;
      memcpy(chunk, p + off, k);
      lg_bswap(chunk, elem, k / elem);
      if (lg_write_all(fd, chunk, k) < 0)
        return -1;
    }
  }
  return 0;
}

int lg_safetensors_save(const char *path, size_t n,
                        const lg_named_tensor *tensors, size_t nmeta,
                        const lg_meta_entry *meta) {
  int rc = -1;
  st_writer w;
  memset(&w, 0, sizeof w);
  lg_sb_init(&w.header);
  name_ref *names = NULL;
  if (n) {
    w.contig = calloc(n, sizeof *w.contig);
    names = calloc(n, sizeof *names);
    if (!w.contig || !names) {
      lg_seterr("%s: out of memory", path);
      goto done;
    }
  }
  for (size_t i = 0; i < n; i++) {
    const lg_named_tensor *nt = &tensors[i];
    if (!lg_utf8_valid(nt->name, nt->name_len)) {
      lg_seterr("%s: tensor name is not valid UTF-8", path);
      goto done;
    }
    if (nt->name_len == 12 && !memcmp(nt->name, "__metadata__", 12)) {
      lg_seterr("%s: \"__metadata__\" cannot name a tensor", path);
      goto done;
    }
    if (!nt->tensor || !save_dtype_name(nt->tensor->dtype)) {
      lg_seterr("%s: tensor '%.100s' has no storable dtype", path, nt->name);
      goto done;
    }
    names[i].s = nt->name;
    names[i].n = nt->name_len;
  }
  if (n) {
    long dup = find_duplicate(names, n);
    if (dup >= 0) {
      lg_seterr("%s: tensor name '%.100s' given twice", path, names[dup].s);
      goto done;
    }
  }
  for (size_t i = 0; i < nmeta; i++)
    if (!lg_utf8_valid(meta[i].key, meta[i].key_len) ||
        !lg_utf8_valid(meta[i].value, meta[i].value_len)) {
      lg_seterr("%s: metadata is not valid UTF-8", path);
      goto done;
    }
  lg_strbuf *h = &w.header;
  lg_sb_addc(h, '{');
  bool first = true;
  if (nmeta) {
    lg_sb_adds(h, "\"__metadata__\":{");
    for (size_t i = 0; i < nmeta; i++) {
      if (i)
        lg_sb_addc(h, ',');
      lg_sb_json_string(h, meta[i].key, meta[i].key_len);
      lg_sb_addc(h, ':');
      lg_sb_json_string(h, meta[i].value, meta[i].value_len);
    }
    lg_sb_addc(h, '}');
    first = false;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < n; i++) {
    lg_tensor *t = lg_contiguous(tensors[i].tensor);
    if (!t)
      goto done;
    w.contig[i] = t;
    w.n = i + 1;
    if (!first)
      lg_sb_addc(h, ',');
    first = false;
    lg_sb_json_string(h, tensors[i].name, tensors[i].name_len);
    lg_sb_adds(h, ":{\"dtype\":\"");
    lg_sb_adds(h, save_dtype_name(t->dtype));
    lg_sb_adds(h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      if (d)
        lg_sb_addc(h, ',');
      lg_sb_addint(h, t->shape[d]);
    }
    uint64_t nbytes = (uint64_t)lg_numel(t) * lg_dtype_size(t->dtype);
    lg_sb_adds(h, "],\"data_offsets\":[");
    lg_sb_addint(h, (int64_t)offset);
    lg_sb_addc(h, ',');
    offset += nbytes;
    lg_sb_addint(h, (int64_t)offset);
    lg_sb_adds(h, "]}");
  }
  lg_sb_addc(h, '}');
  while (h->len % 8) /* data starts 8-aligned, as other writers do */
    lg_sb_addc(h, ' ');
  if (h->failed) {
    lg_seterr("%s: out of memory", path);
    goto done;
  }
  rc = lg_atomic_write(path, st_emit, &w);
done:
  for (size_t i = 0; i < w.n; i++)
    lg_release(w.contig[i]);
  free(w.contig);
  free(names);
  lg_sb_free(&w.header);
  return rc;
}

/*
 * io.h -- file formats of the lgrad runtime: strict JSON, safetensors,
 * NumPy .npy, IDX (plain or gzip) and numeric CSV.  No Lua here.
 *
 * Overview
 *   Every reader checks each length, offset and shape product for
 *   overflow and against the bytes really present before it allocates,
 *   so a hostile file costs at most memory proportional to its own size
 *   (for gzip, to its decompressed size, bounded by deflate's ratio).
 *   Nothing in a file is ever executed or evaluated.
 *
 *   Writers go to a temporary file in the target's directory, fsync it
 *   and rename it over the target: a crash leaves either the old file or
 *   the new one, never half of one, and a failed write leaves the old
 *   file as it was.
 *
 *   Errors follow the runtime's rule (NULL or -1, and lg_errmsg()), with
 *   the message starting with the file's path: "ckpt.st: truncated data
 *   (tensor 'w' ends at 400, file has 96 bytes of data)".
 *
 *   Example:
 *     lg_st_file f;
 *     if (lg_safetensors_load("model.safetensors", &f) < 0)
 *       fprintf(stderr, "%s\n", lg_errmsg());
 *     for (size_t i = 0; i < f.ntensors; i++)
 *       use(f.tensors[i].name, f.tensors[i].tensor);
 *     lg_st_file_clear(&f);
 */
#ifndef LGRAD_IO_H
#define LGRAD_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lgrad.h"

/* ---- growable byte buffer (writers) ---- */
typedef struct {
  char *data;
  size_t len, cap;
  int failed; /* an allocation failed: every later add is ignored */
} lg_strbuf;

void lg_sb_init(lg_strbuf *sb);
void lg_sb_free(lg_strbuf *sb);
void lg_sb_add(lg_strbuf *sb, const void *p, size_t n);
void lg_sb_addc(lg_strbuf *sb, char c);
void lg_sb_adds(lg_strbuf *sb, const char *s);
void lg_sb_addint(lg_strbuf *sb, int64_t v);
/* s (n bytes, valid UTF-8) as a quoted, escaped JSON string */
void lg_sb_json_string(lg_strbuf *sb, const char *s, size_t n);

/* ---- strict JSON (RFC 8259) ---- */
#define LG_JSON_MAX_DEPTH 64

typedef enum {
  LG_JSON_NULL,
  LG_JSON_FALSE,
  LG_JSON_TRUE,
  LG_JSON_INT, /* an integer token that fits int64: .i (and .d) */
  LG_JSON_NUM, /* any other number: .d */
  LG_JSON_STR, /* .s, .len (NUL-terminated, may hold \0) */
  LG_JSON_ARR, /* .items[0 .. n-1] */
  LG_JSON_OBJ  /* .items[0 .. n-1], each with .key, .keylen */
} lg_json_type;

typedef struct lg_json lg_json;
struct lg_json {
  lg_json_type type;
  int64_t i;
  double d;
  const char *s;
  size_t len;
  const char *key; /* member name when inside an object */
  size_t keylen;
  size_t n;
  lg_json *items;
};

typedef struct lg_json_doc lg_json_doc;

bool lg_utf8_valid(const char *s, size_t n);
/* parses text[0..len) as one JSON value, at most max_depth deep (or
 * LG_JSON_MAX_DEPTH when 0) and with at most max_values values (no limit
 * but the text's length when 0; a value costs about 80 bytes, so this
 * bounds the tree's memory); what names the source in errors */
lg_json_doc *lg_json_parse(const char *text, size_t len, int max_depth,
                           size_t max_values, const char *what);
const lg_json *lg_json_root(const lg_json_doc *doc);
void lg_json_free(lg_json_doc *doc);
/* the member named key of an object (first match), or NULL */
const lg_json *lg_json_get(const lg_json *obj, const char *key);

/* ---- safetensors ---- */
#define LG_ST_MAX_HEADER ((uint64_t)100000000) /* as the reference reader */

typedef struct {
  char *name; /* NUL-terminated copy; name_len bytes (may hold \0) */
  size_t name_len;
  lg_tensor *tensor; /* owned */
} lg_named_tensor;

typedef struct {
  char *key;
  size_t key_len;
  char *value;
  size_t value_len;
} lg_meta_entry;

typedef struct {
  size_t ntensors;
  lg_named_tensor *tensors; /* in the order of their data in the file */
  size_t nmeta;
  lg_meta_entry *meta; /* "__metadata__", in the header's order */
  lg_json_doc *doc;    /* holds the strings */
} lg_st_file;

/* F32, F64, I64 and BOOL load as such; F16 and BF16 as float32; I8, I16,
 * I32, U8, U16, U32 as int64.  Anything else is an error. */
int lg_safetensors_load(const char *path, lg_st_file *out);
int lg_safetensors_load_mem(const void *buf, size_t n, const char *what,
                            lg_st_file *out);
void lg_st_file_clear(lg_st_file *f);
/* names must be distinct valid UTF-8 and not "__metadata__"; tensors of
 * any layout (written in C order) */
int lg_safetensors_save(const char *path, size_t n,
                        const lg_named_tensor *tensors, size_t nmeta,
                        const lg_meta_entry *meta);

/* ---- NumPy .npy (format versions 1, 2 and 3) ---- */
/* '<f4' '<f8' '<i8' '|b1' load as such; other integer kinds (i1 i2 i4
 * u1 u2 u4), '<f2' and big-endian ones are converted (to int64,
 * float32, native order); fortran_order arrays are loaded transposed
 * into C order. */
lg_tensor *lg_npy_load(const char *path);
lg_tensor *lg_npy_load_mem(const void *buf, size_t n, const char *what);
int lg_npy_save(const char *path, lg_tensor *t);

/* ---- IDX (MNIST-style; gzip or plain, detected) ---- */
/* Integer types load as int64 and float types as float32/float64 when
 * as_dtype < 0; otherwise values become value * scale + shift in
 * as_dtype.  limit >= 0 keeps only the first limit items of dim 0. */
lg_tensor *lg_idx_load(const char *path, int as_dtype, double scale,
                       double shift, int64_t limit);
lg_tensor *lg_idx_load_mem(const void *buf, size_t n, const char *what,
                           int as_dtype, double scale, double shift,
                           int64_t limit);

/* ---- numeric CSV ---- */
typedef struct {
  char delimiter; /* ',' when 0 */
  bool header;    /* first row holds column names */
  lg_dtype dtype; /* float32, float64 or int64 */
} lg_csv_opts;

typedef struct {
  lg_tensor *tensor; /* rows x columns */
  size_t ncols;
  char **names; /* ncols names when header, else NULL */
} lg_csv_result;

int lg_csv_load(const char *path, const lg_csv_opts *opts, lg_csv_result *out);
int lg_csv_load_mem(const char *buf, size_t n, const char *what,
                    const lg_csv_opts *opts, lg_csv_result *out);
void lg_csv_result_clear(lg_csv_result *r);

/* ---- shared by the readers (internal) ---- */
/* a reader over a FILE or a memory buffer */
typedef struct {
  const char *what; /* path or a name for errors */
  const unsigned char *mem;
  size_t memlen;
  void *fp; /* FILE * */
  uint64_t size;
} lg_source;

int lg_source_open(lg_source *src, const char *path);
void lg_source_mem(lg_source *src, const void *buf, size_t n, const char *what);
void lg_source_close(lg_source *src);
/* reads exactly n bytes at off; -1 with "what: truncated ..." otherwise */
int lg_source_read(lg_source *src, uint64_t off, void *buf, size_t n,
                   const char *part);
/* checked product of dims times elem; -1 with an error on overflow or a
 * negative dim */
int lg_io_nbytes(const char *what, int ndim, const int64_t *shape, size_t elem,
                 uint64_t *nbytes);
/* puts "what: " before the current error (a core function's, such as
 * lg_empty's "out of memory") unless it starts so already */
void lg_io_prefix_error(const char *what);
/* writes data to path atomically (temp file, fsync, rename) by calling
 * emit(ctx, fd) which returns 0 or -1 with errno set */
int lg_atomic_write(const char *path, int (*emit)(void *ctx, int fd),
                    void *ctx);
int lg_write_all(int fd, const void *buf, size_t n);
bool lg_host_little_endian(void);
void lg_bswap(void *data, size_t elem, size_t count);
float lg_half_to_float(uint16_t h); /* IEEE binary16 */

#endif

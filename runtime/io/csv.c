/*
 * io/csv.c -- numeric CSV: rows of numbers separated by a delimiter,
 * optionally preceded by a header row of column names.  Fields may be
 * quoted ("1.5"; names may hold the delimiter and "" for a quote); an
 * empty field is NaN for float dtypes; blank lines are skipped; "\r\n"
 * line ends are accepted.  Every row must have as many fields as the
 * first.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define CSV_MAX_FIELD 512

typedef struct {
  const char *p, *end, *what;
  char delim;
  size_t line;
} csv_reader;

typedef struct {
  char *text; /* decoded field (quotes removed), NUL-terminated */
  size_t len, cap;
} field_buf;

/* reads one field at r->p into f; sets *eol when the row ends after it */
static int read_field(csv_reader *r, field_buf *f, bool *eol) {
  f->len = 0;
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t') && *r->p != r->delim)
    r->p++;
  bool quoted = r->p < r->end && *r->p == '"';
  if (quoted)
    r->p++;
  for (;;) {
    if (r->p >= r->end) {
      if (quoted) {
        lg_seterr("%s: line %zu: unterminated quoted field", r->what, r->line);
        return -1;
      }
      *eol = true;
      break;
    }
    char c = *r->p;
    if (quoted) {
      if (c == '"') {
        if (r->p + 1 < r->end && r->p[1] == '"') {
          r->p += 2;
        } else {
          r->p++;
          quoted = false;
          /* only spaces may follow the closing quote */
          while (r->p < r->end && (*r->p == ' ' || *r->p == '\t'))
            r->p++;
          if (r->p < r->end && *r->p != r->delim && *r->p != '\n' &&
              *r->p != '\r') {
            lg_seterr("%s: line %zu: text after a closing quote", r->what,
                      r->line);
            return -1;
          }
          continue;
        }
      } else {
        if (c == '\n')
          r->line++;
        r->p++;
      }
    } else if (c == r->delim) {
      r->p++;
      *eol = false;
      break;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && r->p + 1 < r->end && r->p[1] == '\n')
        r->p++;
      r->p++;
      r->line++;
      *eol = true;
      break;
    } else {
      r->p++;
    }
    if (f->len + 2 > f->cap) {
      size_t cap = f->cap ? f->cap * 2 : 64;
      char *t = realloc(f->text, cap);
      if (!t) {
        lg_seterr("%s: out of memory", r->what);
        return -1;
      }
      f->text = t;
      f->cap = cap;
    }
    f->text[f->len++] = c;
  }
  if (!f->text) {
    f->text = malloc(64);
    if (!f->text) {
      lg_seterr("%s: out of memory", r->what);
      return -1;
    }
    f->cap = 64;
  }
  while (f->len && (f->text[f->len - 1] == ' ' || f->text[f->len - 1] == '\t'))
    f->len--;
  f->text[f->len] = '\0';
  return 0;
}

/* true when the rest of the line at p is blank (skips it) */
static bool skip_blank_line(csv_reader *r) {
  const char *q = r->p;
  while (q < r->end && (*q == ' ' || *q == '\t' || *q == '\r'))
    q++;
  if (q < r->end && *q != '\n')
    return false;
  if (q < r->end) {
    q++;
    r->line++;
  }
  r->p = q;
  return true;
}

typedef struct {
  void *data;
  size_t n, cap, elem;
} vec;

static int vec_push(vec *v, const void *x, const char *what) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 256;
    void *d = realloc(v->data, cap * v->elem);
    if (!d) {
      lg_seterr("%s: out of memory", what);
      return -1;
    }
    v->data = d;
    v->cap = cap;
  }
  memcpy((char *)v->data + v->n * v->elem, x, v->elem);
  v->n++;
  return 0;
}

static int parse_number(csv_reader *r, size_t line, const field_buf *f,
                        size_t col, lg_dtype dtype, vec *values) {
  if (dtype == LG_INT64) {
    char *endp;
    errno = 0;
    long long x = f->len ? strtoll(f->text, &endp, 10) : 0;
    if (!f->len || *endp || errno) {
      lg_seterr("%s: line %zu, column %zu: '%.40s' is not an integer", r->what,
                line, col, f->text);
      return -1;
    }
    int64_t v = x;
    return vec_push(values, &v, r->what);
  }
  double v = NAN;
  if (f->len) {
    char *endp;
    v = strtod(f->text, &endp);
    if (*endp || f->len > CSV_MAX_FIELD) {
      lg_seterr("%s: line %zu, column %zu: '%.40s' is not a number", r->what,
                line, col, f->text);
      return -1;
    }
  }
  return vec_push(values, &v, r->what);
}

void lg_csv_result_clear(lg_csv_result *res) {
  if (res->names)
    for (size_t i = 0; i < res->ncols; i++)
      free(res->names[i]);
  free(res->names);
  lg_release(res->tensor);
  memset(res, 0, sizeof *res);
}

int lg_csv_load_mem(const char *buf, size_t n, const char *what,
                    const lg_csv_opts *opts, lg_csv_result *out) {
  memset(out, 0, sizeof *out);
  lg_csv_opts o = {',', false, LG_FLOAT32};
  if (opts)
    o = *opts;
  if (!o.delimiter)
    o.delimiter = ',';
  if (o.delimiter == '"' || o.delimiter == '\n' || o.delimiter == '\r') {
    lg_seterr("%s: bad CSV delimiter", what);
    return -1;
  }
  if (o.dtype != LG_FLOAT32 && o.dtype != LG_FLOAT64 && o.dtype != LG_INT64) {
    lg_seterr("%s: CSV dtype must be float32, float64 or int64", what);
    return -1;
  }
  csv_reader r = {buf, buf + n, what ? what : "<memory>", o.delimiter, 1};
  field_buf f = {NULL, 0, 0};
  vec values = {NULL, 0, 0, o.dtype == LG_INT64 ? 8 : sizeof(double)};
  vec names = {NULL, 0, 0, sizeof(char *)};
  size_t ncols = 0, rows = 0;
  int rc = -1;
  /* a UTF-8 byte order mark is skipped */
  if (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3))
    r.p += 3;
  while (r.p < r.end && skip_blank_line(&r)) {
  }
  if (o.header && r.p < r.end) {
    bool eol = false;
    while (!eol) {
      if (read_field(&r, &f, &eol) < 0)
        goto done;
      char *name = malloc(f.len + 1);
      if (!name) {
        lg_seterr("%s: out of memory", r.what);
        goto done;
      }
      memcpy(name, f.text, f.len + 1);
      if (vec_push(&names, &name, r.what) < 0) {
        free(name);
        goto done;
      }
    }
    ncols = names.n;
  }
  while (r.p < r.end) {
    if (skip_blank_line(&r))
      continue;
    size_t row_line = r.line, col = 0;
    bool eol = false;
    while (!eol) {
      if (read_field(&r, &f, &eol) < 0)
        goto done;
      col++;
      if (ncols && col > ncols) {
        lg_seterr("%s: line %zu has more than %zu fields", r.what, row_line,
                  ncols);
        goto done;
      }
      if (parse_number(&r, row_line, &f, col, o.dtype, &values) < 0)
        goto done;
    }
    if (!ncols)
      ncols = col;
    if (col != ncols) {
      lg_seterr("%s: line %zu has %zu field%s, expected %zu", r.what, row_line,
                col, col == 1 ? "" : "s", ncols);
      goto done;
    }
    rows++;
  }
  int64_t shape[2] = {(int64_t)rows, (int64_t)ncols};
  out->tensor = lg_empty(o.dtype, 2, shape);
  if (!out->tensor) {
    lg_io_prefix_error(r.what);
    goto done;
  }
  if (o.dtype == LG_FLOAT32) {
    float *d = lg_data_ptr(out->tensor);
    for (size_t i = 0; i < values.n; i++)
      d[i] = (float)((double *)values.data)[i];
  } else if (values.n) {
    memcpy(lg_data_ptr(out->tensor), values.data, values.n * values.elem);
  }
  out->ncols = ncols;
  if (o.header) {
    out->names = names.data;
    names.data = NULL;
    if (!out->names) { /* an empty file: no columns */
      out->ncols = 0;
    }
  }
  rc = 0;
done:
  if (names.data) {
    for (size_t i = 0; i < names.n; i++)
      free(((char **)names.data)[i]);
    free(names.data);
  }
  free(values.data);
  free(f.text);
  if (rc < 0)
    lg_csv_result_clear(out);
  return rc;
}

int lg_csv_load(const char *path, const lg_csv_opts *opts, lg_csv_result *out) {
  memset(out, 0, sizeof *out);
  lg_source src;
  if (lg_source_open(&src, path) < 0)
    return -1;
  if (src.size > (uint64_t)SIZE_MAX / 2) {
    lg_source_close(&src);
    lg_seterr("%s: file too large", path);
    return -1;
  }
  char *buf = malloc((size_t)src.size + 1);
  if (!buf) {
    lg_source_close(&src);
    lg_seterr("%s: out of memory (%llu bytes)", path,
              (unsigned long long)src.size);
    return -1;
  }
  int rc = lg_source_read(&src, 0, buf, (size_t)src.size, "file");
  lg_source_close(&src);
  if (rc == 0)
    rc = lg_csv_load_mem(buf, (size_t)src.size, path, opts, out);
  free(buf);
  return rc;
}

/*
 * json.c -- a strict JSON reader (RFC 8259, UTF-8 checked, depth and
 * size bounded) and the string buffer the writers use.
 *
 * The reader builds a tree in one arena freed at once.  Children of an
 * array or object are collected on a shared scratch stack while they
 * are parsed and copied into the arena when their container closes, so
 * the tree costs a constant factor of the text's size.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

/* ---- string buffer ---- */

void lg_sb_init(lg_strbuf *sb) { memset(sb, 0, sizeof *sb); }

void lg_sb_free(lg_strbuf *sb) {
  free(sb->data);
  memset(sb, 0, sizeof *sb);
}

static int sb_reserve(lg_strbuf *sb, size_t extra) {
  if (sb->failed)
    return -1;
  if (extra > SIZE_MAX / 2 - sb->len) {
    sb->failed = 1;
    return -1;
  }
  if (sb->len + extra + 1 <= sb->cap)
    return 0;
  size_t cap = sb->cap ? sb->cap : 64;
  while (cap < sb->len + extra + 1)
    cap *= 2;
  char *p = realloc(sb->data, cap);
  if (!p) {
    sb->failed = 1;
    return -1;
  }
  sb->data = p;
  sb->cap = cap;
  return 0;
}

void lg_sb_add(lg_strbuf *sb, const void *p, size_t n) {
  if (sb_reserve(sb, n) < 0)
    return;
  if (n)
    memcpy(sb->data + sb->len, p, n);
  sb->len += n;
  sb->data[sb->len] = '\0';
}

void lg_sb_addc(lg_strbuf *sb, char c) { lg_sb_add(sb, &c, 1); }

void lg_sb_adds(lg_strbuf *sb, const char *s) { lg_sb_add(sb, s, strlen(s)); }

void lg_sb_addint(lg_strbuf *sb, int64_t v) {
  char tmp[32];
  int k = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  lg_sb_add(sb, tmp, (size_t)k);
}

void lg_sb_json_string(lg_strbuf *sb, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  lg_sb_addc(sb, '"');
  size_t run = 0; /* start of the pending run of plain bytes */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    lg_sb_add(sb, s + run, i - run);
    run = i + 1;
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t k = 2;
    switch (c) {
    case '"':
      esc[1] = '"';
      break;
    case '\\':
      esc[1] = '\\';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      k = 6;
    }
    lg_sb_add(sb, esc, k);
  }
  lg_sb_add(sb, s + run, n - run);
  lg_sb_addc(sb, '"');
}

/* ---- UTF-8 ---- */

/* length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

bool lg_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t k = utf8_seq(p + i, n - i);
    if (!k)
      return false;
    i += k;
  }
  return true;
}

/* ---- arena ---- */

typedef union {
  long double ld;
  void *p;
  int64_t i;
  double d;
} arena_align;

typedef struct arena_chunk {
  struct arena_chunk *next;
  size_t used, cap;
  arena_align data[];
} arena_chunk;

struct lg_json_doc {
  arena_chunk *chunks;
  lg_json root;
};

static void *arena_alloc(lg_json_doc *doc, size_t n) {
  n = (n + sizeof(arena_align) - 1) / sizeof(arena_align) * sizeof(arena_align);
  arena_chunk *c = doc->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    c = malloc(sizeof *c + cap);
    if (!c)
      return NULL;
    c->used = 0;
    c->cap = cap;
    c->next = doc->chunks;
    doc->chunks = c;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

void lg_json_free(lg_json_doc *doc) {
  if (!doc)
    return;
  arena_chunk *c = doc->chunks;
  while (c) {
    arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  free(doc);
}

const lg_json *lg_json_root(const lg_json_doc *doc) { return &doc->root; }

const lg_json *lg_json_get(const lg_json *obj, const char *key) {
  if (!obj || obj->type != LG_JSON_OBJ)
    return NULL;
  size_t kl = strlen(key);
  for (size_t i = 0; i < obj->n; i++)
    if (obj->items[i].keylen == kl && !memcmp(obj->items[i].key, key, kl))
      return &obj->items[i];
  return NULL;
}

/* ---- parser ---- */

typedef struct {
  const char *p, *end, *start;
  const char *what;
  int max_depth;
  size_t values_left;
  lg_json_doc *doc;
  lg_json *stack; /* scratch for children being parsed */
  size_t sp, scap;
  int failed;
} parser;

static int perr(parser *ps, const char *fmt, ...) {
  if (ps->failed)
    return -1;
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lg_seterr("%s: bad JSON at byte %zu: %s", ps->what,
            (size_t)(ps->p - ps->start), msg);
  ps->failed = 1;
  return -1;
}

static int oom(parser *ps) {
  if (!ps->failed)
    lg_seterr("%s: out of memory parsing JSON", ps->what);
  ps->failed = 1;
  return -1;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static int push_scratch(parser *ps, const lg_json *v) {
  if (ps->sp == ps->scap) {
    size_t cap = ps->scap ? ps->scap * 2 : 64;
    lg_json *s = realloc(ps->stack, cap * sizeof *s);
    if (!s)
      return oom(ps);
    ps->stack = s;
    ps->scap = cap;
  }
  ps->stack[ps->sp++] = *v;
  return 0;
}

static int hex4(parser *ps, uint32_t *out) {
  if (ps->end - ps->p < 4)
    return perr(ps, "truncated \\u escape");
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    char c = ps->p[k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (uint32_t)(c - 'A' + 10);
    else
      return perr(ps, "bad \\u escape");
  }
  ps->p += 4;
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* a string token at ps->p (the opening quote); the decoded bytes go to
 * the arena (never longer than the token) */
static int parse_string(parser *ps, const char **out, size_t *outlen) {
  const char *q = ps->p + 1;
  /* find the closing quote to size the copy */
  while (q < ps->end && *q != '"') {
    if (*q == '\\')
      q++;
    q++;
  }
  if (q >= ps->end)
    return perr(ps, "unterminated string");
  size_t cap = (size_t)(q - ps->p);
  char *o = arena_alloc(ps->doc, cap + 1);
  if (!o)
    return oom(ps);
  size_t n = 0;
  ps->p++;
  for (;;) {
    unsigned char c = (unsigned char)*ps->p;
    if (c == '"') {
      ps->p++;
      break;
    }
    if (c < 0x20)
      return perr(ps, "control character in string");
    if (c == '\\') {
      ps->p++;
      char e = *ps->p++;
      switch (e) {
      case '"':
        o[n++] = '"';
        break;
      case '\\':
        o[n++] = '\\';
        break;
      case '/':
        o[n++] = '/';
        break;
      case 'b':
        o[n++] = '\b';
        break;
      case 'f':
        o[n++] = '\f';
        break;
      case 'n':
        o[n++] = '\n';
        break;
      case 'r':
        o[n++] = '\r';
        break;
      case 't':
        o[n++] = '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (hex4(ps, &cp) < 0)
          return -1;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return perr(ps, "lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
            return perr(ps, "lone high surrogate");
          ps->p += 2;
          if (hex4(ps, &lo) < 0)
            return -1;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return perr(ps, "bad surrogate pair");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        /* \uXXXX is 6 bytes of text for at most 3 of UTF-8, a pair 12
         * for 4: the copy never outgrows cap */
        n += put_utf8(o + n, cp);
        break;
      }
      default:
        ps->p--;
        return perr(ps, "bad escape");
      }
      continue;
    }
    size_t k =
        utf8_seq((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
    if (!k)
      return perr(ps, "invalid UTF-8 in string");
    memcpy(o + n, ps->p, k);
    n += k;
    ps->p += k;
  }
  o[n] = '\0';
  *out = o;
  *outlen = n;
  return 0;
}

static int parse_number(parser *ps, lg_json *v) {
  const char *s = ps->p;
  const char *q = s;
  bool is_int = true;
  if (q < ps->end && *q == '-')
    q++;
  if (q >= ps->end)
    return perr(ps, "bad number");
  if (*q == '0') {
    q++;
  } else if (*q >= '1' && *q <= '9') {
    while (q < ps->end && *q >= '0' && *q <= '9')
      q++;
  } else {
    return perr(ps, "bad number");
  }
  if (q < ps->end && *q == '.') {
    is_int = false;
    q++;
    if (q >= ps->end || *q < '0' || *q > '9')
      return perr(ps, "bad number");
    while (q < ps->end && *q >= '0' && *q <= '9')
      q++;
  }
  if (q < ps->end && (*q == 'e' || *q == 'E')) {
    is_int = false;
    q++;
    if (q < ps->end && (*q == '+' || *q == '-'))
      q++;
    if (q >= ps->end || *q < '0' || *q > '9')
      return perr(ps, "bad number");
    while (q < ps->end && *q >= '0' && *q <= '9')
      q++;
  }
  size_t len = (size_t)(q - s);
  if (len > 400)
    return perr(ps, "number too long");
  char tmp[402];
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  v->d = strtod(tmp, NULL);
  v->type = LG_JSON_NUM;
  if (is_int) {
    errno = 0;
    long long i = strtoll(tmp, NULL, 10);
    if (errno == 0) {
      v->type = LG_JSON_INT;
      v->i = (int64_t)i;
    }
  }
  ps->p = q;
  return 0;
}

static int parse_value(parser *ps, lg_json *v, int depth);

static int parse_container(parser *ps, lg_json *v, int depth, bool obj) {
  if (depth >= ps->max_depth)
    return perr(ps, "nesting deeper than %d", ps->max_depth);
  char close = obj ? '}' : ']';
  size_t base = ps->sp;
  ps->p++;
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
  } else {
    for (;;) {
      lg_json child;
      memset(&child, 0, sizeof child);
      skip_ws(ps);
      if (obj) {
        if (ps->p >= ps->end || *ps->p != '"')
          return perr(ps, "expected a member name");
        if (parse_string(ps, &child.key, &child.keylen) < 0)
          return -1;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':')
          return perr(ps, "expected ':'");
        ps->p++;
        skip_ws(ps);
      }
      if (parse_value(ps, &child, depth + 1) < 0)
        return -1;
      if (push_scratch(ps, &child) < 0)
        return -1;
      skip_ws(ps);
      if (ps->p >= ps->end)
        return perr(ps, "unterminated %s", obj ? "object" : "array");
      if (*ps->p == ',') {
        ps->p++;
        continue;
      }
      if (*ps->p == close) {
        ps->p++;
        break;
      }
      return perr(ps, "expected ',' or '%c'", close);
    }
  }
  size_t n = ps->sp - base;
  v->type = obj ? LG_JSON_OBJ : LG_JSON_ARR;
  v->n = n;
  v->items = NULL;
  if (n) {
    v->items = arena_alloc(ps->doc, n * sizeof(lg_json));
    if (!v->items)
      return oom(ps);
    memcpy(v->items, ps->stack + base, n * sizeof(lg_json));
  }
  ps->sp = base;
  return 0;
}

static int literal(parser *ps, const char *word, lg_json_type t, lg_json *v) {
  size_t k = strlen(word);
  if ((size_t)(ps->end - ps->p) < k || memcmp(ps->p, word, k))
    return perr(ps, "unexpected character");
  ps->p += k;
  v->type = t;
  return 0;
}

static int parse_value(parser *ps, lg_json *v, int depth) {
  if (ps->values_left == 0)
    return perr(ps, "more values than the limit");
  ps->values_left--;
  skip_ws(ps);
  if (ps->p >= ps->end)
    return perr(ps, "unexpected end");
  switch (*ps->p) {
  case '{':
    return parse_container(ps, v, depth, true);
  case '[':
    return parse_container(ps, v, depth, false);
  case '"':
    v->type = LG_JSON_STR;
    return parse_string(ps, &v->s, &v->len);
  case 't':
    return literal(ps, "true", LG_JSON_TRUE, v);
  case 'f':
    return literal(ps, "false", LG_JSON_FALSE, v);
  case 'n':
    return literal(ps, "null", LG_JSON_NULL, v);
  default:
    if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
      return parse_number(ps, v);
    return perr(ps, "unexpected character");
  }
}

lg_json_doc *lg_json_parse(const char *text, size_t len, int max_depth,
                           size_t max_values, const char *what) {
  parser ps;
  memset(&ps, 0, sizeof ps);
  ps.p = ps.start = text;
  ps.end = text + len;
  ps.what = what ? what : "JSON";
  ps.max_depth = max_depth > 0 ? max_depth : LG_JSON_MAX_DEPTH;
  ps.values_left = max_values ? max_values : len + 1;
  ps.doc = calloc(1, sizeof *ps.doc);
  if (!ps.doc) {
    lg_seterr("%s: out of memory parsing JSON", ps.what);
    return NULL;
  }
  int rc = parse_value(&ps, &ps.doc->root, 0);
  if (rc == 0) {
    skip_ws(&ps);
    if (ps.p != ps.end)
      rc = perr(&ps, "trailing characters");
  }
  free(ps.stack);
  if (rc < 0) {
    lg_json_free(ps.doc);
    return NULL;
  }
  return ps.doc;
}

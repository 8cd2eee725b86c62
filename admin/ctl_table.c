/*
 * ctl_table.c - making registry strings safe to print and laying them out
 * in aligned tables. Strings in the registry come from sites and are
 * hostile: a terminal must never receive their control characters, and a
 * 10 KB cell must not push a table off the screen.
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The ellipsis that ends a cut cell (U+2026, one column). */
#define FF_CTL_ELLIPSIS "\xe2\x80\xa6"

/* Decodes one UTF-8 sequence at s; returns its length (0 when invalid or
 * overlong) and the code point in *cp. */
static size_t
utf8_decode(const unsigned char *s, unsigned long *cp)
{
    size_t n;
    unsigned long min;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2, min = 0x80, *cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3, min = 0x800, *cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4, min = 0x10000, *cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return n;
}

/* Code points a terminal may act on: C1 controls, bidirectional marks,
 * embeddings, overrides and isolates, line and paragraph separators. */
static int
invisible_control(unsigned long cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
           (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/*
 * Renders the unit at s (one code point, or one byte that is not valid
 * UTF-8) into out (16 bytes); returns the bytes written, sets *used to
 * the bytes of s consumed and *cols to the columns the rendering takes.
 */
static size_t
escape_unit(const unsigned char *s, char *out, size_t *used, size_t *cols)
{
    unsigned long cp = 0;
    size_t n;

    /* ASCII: printable as is, a few named escapes, the rest in hex. */
    if (s[0] < 0x80) {
        *used = 1;
        if (s[0] == '\\')
            n = (size_t)snprintf(out, 16, "\\\\");
        else if (s[0] == '\n')
            n = (size_t)snprintf(out, 16, "\\n");
        else if (s[0] == '\t')
            n = (size_t)snprintf(out, 16, "\\t");
        else if (s[0] == '\r')
            n = (size_t)snprintf(out, 16, "\\r");
        else if (s[0] < 0x20 || s[0] == 0x7f)
            n = (size_t)snprintf(out, 16, "\\x%02x", s[0]);
        else
            out[0] = (char)s[0], out[1] = '\0', n = 1;
        *cols = n;
        return n;
    }

    /* Multi-byte: invalid bytes in hex, terminal controls as \u, the
     * rest copied (one column each). */
    size_t len = utf8_decode(s, &cp);
    if (len == 0) {
        *used = 1;
        n = (size_t)snprintf(out, 16, "\\x%02x", s[0]);
        *cols = n;
        return n;
    }
    *used = len;
    if (invisible_control(cp)) {
        n = (size_t)snprintf(out, 16, "\\u%04lx", cp);
        *cols = n;
        return n;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    *cols = 1;
    return len;
}

char *
ff_ctl_escape(const char *s, size_t max_cols)
{
    const unsigned char *p;
    char unit[16];
    size_t used, cols, total = 0;

    if (s == NULL)
        s = "-";

    /* Pass 1: the full width decides whether to cut. */
    for (p = (const unsigned char *)s; *p; p += used) {
        escape_unit(p, unit, &used, &cols);
        total += cols;
    }
    int cut = max_cols > 0 && total > max_cols;
    size_t budget = cut ? max_cols - 1 : total;

    /* Pass 2: render up to the budget (an escape is never split). */
    char *out = malloc(4 * strlen(s) + sizeof(FF_CTL_ELLIPSIS) + 1);
    if (out == NULL)
        return NULL;
    size_t len = 0, width = 0;
    for (p = (const unsigned char *)s; *p; p += used) {
        size_t n = escape_unit(p, unit, &used, &cols);
        if (width + cols > budget)
            break;
        memcpy(out + len, unit, n);
        len += n;
        width += cols;
    }
    if (cut) {
        memcpy(out + len, FF_CTL_ELLIPSIS, sizeof(FF_CTL_ELLIPSIS) - 1);
        len += sizeof(FF_CTL_ELLIPSIS) - 1;
    }
    out[len] = '\0';
    return out;
}

size_t
ff_ctl_width(const char *s)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

void
ff_ctl_time(const char *iso, char *out, size_t cap)
{
    if (iso == NULL) {
        snprintf(out, cap, "-");
        return;
    }
    /* "2026-12-03T16:03:19.035517+00:00": the session runs in UTC. */
    if (strlen(iso) >= 19 && iso[10] == 'T' && iso[4] == '-' &&
        iso[13] == ':') {
        snprintf(out, cap, "%.19sZ", iso);
        return;
    }
    char *safe = ff_ctl_escape(iso, 30);
    snprintf(out, cap, "%s", safe ? safe : "?");
    free(safe);
}

void
ff_ctl_epsilon(const json_t *v, char *out, size_t cap)
{
    if (v == NULL)
        snprintf(out, cap, "-");
    else if (json_is_null(v))
        snprintf(out, cap, "inf");
    else if (!json_is_number(v))
        snprintf(out, cap, "?");
    else if (json_number_value(v) == 0 || json_number_value(v) >= 1e-3)
        snprintf(out, cap, "%.4f", json_number_value(v));
    else
        snprintf(out, cap, "%.4g", json_number_value(v));
}

void
ff_ctl_age(double seconds, char *out, size_t cap)
{
    long s = seconds > 0 ? (long)(seconds + 0.5) : 0;

    if (s < 60)
        snprintf(out, cap, "%lds", s);
    else if (s < 3600)
        snprintf(out, cap, "%ldm%02lds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%ldh%02ldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, cap, "%ldd%02ldh", s / 86400, s % 86400 / 3600);
}

void
ff_ctl_table_init(ff_ctl_table *t, size_t ncols, const char *const *headers,
                  size_t max_cols)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->headers = headers;
    t->max_cols = max_cols;
}

void
ff_ctl_table_cleanup(ff_ctl_table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->ncells = t->cap = 0;
}

void
ff_ctl_table_cell(ff_ctl_table *t, const char *text)
{
    if (t->failed)
        return;
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **cells = realloc(t->cells, cap * sizeof(*cells));
        if (cells == NULL) {
            t->failed = 1;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    char *cell = ff_ctl_escape(text, t->max_cols);
    if (cell == NULL) {
        t->failed = 1;
        return;
    }
    t->cells[t->ncells++] = cell;
}

void
ff_ctl_table_cellf(ff_ctl_table *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ff_ctl_table_cell(t, buf);
}

/* Prints one row: text padded to each column's width. */
static void
print_row(const ff_ctl_table *t, FILE *out, const char *indent,
          const char *const *row, const size_t *widths)
{
    fputs(indent, out);
    for (size_t c = 0; c < t->ncols; c++) {
        size_t pad = widths[c] - ff_ctl_width(row[c]);
        int right = (t->right >> c) & 1u;
        int last = c + 1 == t->ncols;
        if (right)
            fprintf(out, "%*s", (int)pad, "");
        fputs(row[c], out);
        if (!right && !last)
            fprintf(out, "%*s", (int)pad, "");
        fputs(last ? "\n" : "  ", out);
    }
}

ff_status
ff_ctl_table_print(const ff_ctl_table *t, FILE *out, const char *indent,
                   ff_error *err)
{
    if (t->failed)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for a table");
    size_t *widths = calloc(t->ncols, sizeof(*widths));
    if (widths == NULL)
        return ff_error_set(err, FF_ERR_NOMEM, "out of memory for a table");

    /* Column widths: the widest of header and cells. */
    for (size_t c = 0; c < t->ncols; c++)
        widths[c] = ff_ctl_width(t->headers[c]);
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = ff_ctl_width(t->cells[i]);
        if (w > widths[i % t->ncols])
            widths[i % t->ncols] = w;
    }

    print_row(t, out, indent, t->headers, widths);
    for (size_t i = 0; i + t->ncols <= t->ncells; i += t->ncols)
        print_row(t, out, indent, (const char *const *)&t->cells[i], widths);
    free(widths);
    if (ferror(out))
        return ff_error_set(err, FF_ERR_IO, "writing to stdout failed");
    return FF_OK;
}

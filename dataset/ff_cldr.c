/*
 * ff_cldr.c - takes the words for the digits 0-9 out of the CLDR RBNF
 * files. A small hand parser: it looks only at the <ruleset> elements of
 * the SpelloutRules grouping and at their <rbnfrule value="N">...;
 * </rbnfrule> lines for N = 0..9, which is all this needs.
 */
#include "ff_sources.h"
#include "ff_dataset_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RBNF files are small (the largest is ~60 kB). */
#define CLDR_FILE_MAX (4 * 1024 * 1024)
#define CLDR_MAX_LOCALES 1024

static const char *const preferred[] = {
    "spellout-numbering", "spellout-cardinal", "spellout-cardinal-masculine",
    "spellout-cardinal-feminine"};
#define NPREFERRED (sizeof(preferred) / sizeof(preferred[0]))

/* A word is plain when it holds none of RBNF's syntax characters: rule
 * set references (%, =), substitutions (<, >, arrows), optional parts
 * ([, ]), quoting ('), plural forms ($) or XML entities (&). */
static int
word_plain(const char *w, size_t n)
{
    static const char *const bad[] = {"=", "%", "[", "]", "'", "$", "&",
                                      "<", ">", ";", "\xe2\x86\x90",
                                      "\xe2\x86\x92"}; /* arrows */

    if (n == 0 || n >= FF_CLDR_WORD_MAX)
        return 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t k = strlen(bad[i]);
        for (size_t j = 0; j + k <= n; j++)
            if (memcmp(w + j, bad[i], k) == 0)
                return 0;
    }
    return 1;
}

/* Extracts the plain words for 0..9 from the body of one <ruleset>
 * (between its start tag and </ruleset>). Returns 1 when all ten are
 * present and plain. */
static int
ruleset_words(const char *body, const char *end,
              char words[10][FF_CLDR_WORD_MAX])
{
    int found = 0;
    const char *p = body;

    while ((p = strstr(p, "<rbnfrule value=\"")) != NULL && p < end) {
        const char *v = p + strlen("<rbnfrule value=\"");
        p = v;
        /* Only value="d" with one digit and nothing else in the tag. */
        if (v[0] < '0' || v[0] > '9' || v[1] != '"' || v[2] != '>')
            continue;
        const char *w = v + 3;
        const char *close = strstr(w, "</rbnfrule>");
        if (close == NULL || close > end || close == w || close[-1] != ';')
            return 0;
        size_t n = (size_t)(close - 1 - w);
        if (!word_plain(w, n))
            return 0;
        int d = v[0] - '0';
        memcpy(words[d], w, n);
        words[d][n] = '\0';
        found |= 1 << d;
    }
    return found == 0x3FF;
}

/* Whether [p, end) contains needle. */
static int
span_has(const char *p, const char *end, const char *needle)
{
    size_t k = strlen(needle);

    for (; p + k <= end; p++)
        if (memcmp(p, needle, k) == 0)
            return 1;
    return 0;
}

/* Finds the ruleset named type (public only) in the SpelloutRules
 * grouping [g, gend) and takes its words. */
static int
try_ruleset(const char *g, const char *gend, const char *type,
            char words[10][FF_CLDR_WORD_MAX])
{
    char tag[96];
    const char *p = g;

    snprintf(tag, sizeof(tag), "<ruleset type=\"%s\"", type);
    while ((p = strstr(p, tag)) != NULL && p < gend) {
        const char *gt = strchr(p, '>');
        const char *body_end = strstr(p, "</ruleset>");
        p += strlen(tag);
        if (*p != ' ' && *p != '>')
            continue; /* a longer type with this prefix */
        if (gt == NULL || body_end == NULL || body_end > gend)
            return 0;
        if (span_has(p, gt, "private"))
            return 0;
        return ruleset_words(gt + 1, body_end, words);
    }
    return 0;
}

/* Tries the other public spellout-cardinal-* rule sets in file order. */
static int
try_other_cardinals(const char *g, const char *gend, char *chosen,
                    size_t cap, char words[10][FF_CLDR_WORD_MAX])
{
    const char *tag = "<ruleset type=\"spellout-cardinal-";
    const char *p = g;

    while ((p = strstr(p, tag)) != NULL && p < gend) {
        const char *name = p + strlen("<ruleset type=\"");
        const char *q = strchr(name, '"');
        p = name;
        if (q == NULL || (size_t)(q - name) >= cap)
            continue;
        memcpy(chosen, name, (size_t)(q - name));
        chosen[q - name] = '\0';
        if (try_ruleset(g, gend, chosen, words))
            return 1;
    }
    return 0;
}

/* Fills loc from the text of one RBNF file; returns 1 when usable. */
static int
parse_locale(const char *text, ff_cldr_locale *loc)
{
    const char *g = strstr(text, "<rulesetGrouping type=\"SpelloutRules\">");
    const char *gend;

    if (g == NULL)
        return 0;
    gend = strstr(g, "</rulesetGrouping>");
    if (gend == NULL)
        return 0;
    for (size_t i = 0; i < NPREFERRED; i++)
        if (try_ruleset(g, gend, preferred[i], loc->words)) {
            snprintf(loc->ruleset, sizeof(loc->ruleset), "%s", preferred[i]);
            return 1;
        }
    return try_other_cardinals(g, gend, loc->ruleset, sizeof(loc->ruleset),
                               loc->words);
}

static int
cmp_locale(const void *a, const void *b)
{
    return strcmp(((const ff_cldr_locale *)a)->code,
                  ((const ff_cldr_locale *)b)->code);
}

/* Reads one file and appends its locale to c when usable. */
static ff_status
load_file(const char *rbnf, const char *name, ff_cldr *c, ff_error *err)
{
    char path[4096];
    unsigned char *text;
    size_t len, n = strlen(name);
    ff_cldr_locale loc;
    ff_status st;

    if (n < 5 || n - 4 >= sizeof(loc.code) || strcmp(name + n - 4, ".xml"))
        return FF_OK;
    st = ff_path_join(path, sizeof(path), rbnf, name, err);
    if (st != FF_OK)
        return st;
    st = ff_file_read_all(path, CLDR_FILE_MAX, &text, &len, err);
    if (st != FF_OK)
        return st;
    memset(&loc, 0, sizeof(loc));
    memcpy(loc.code, name, n - 4);
    if (parse_locale((const char *)text, &loc) &&
        c->count < CLDR_MAX_LOCALES)
        c->locales[c->count++] = loc;
    else
        c->skipped++;
    free(text);
    return FF_OK;
}

ff_status
ff_cldr_load(const char *dir, ff_cldr *c, ff_error *err)
{
    char rbnf[4096];
    struct dirent *e;
    ff_status st = FF_OK;
    DIR *d;

    memset(c, 0, sizeof(*c));
    if (snprintf(rbnf, sizeof(rbnf), "%s/common/rbnf", dir) >=
        (int)sizeof(rbnf))
        return ff_error_set(err, FF_ERR_TOO_LARGE, "CLDR: path too long");
    d = opendir(rbnf);
    if (d == NULL)
        return ff_error_set(err, FF_ERR_IO, "%s: cannot open", rbnf);
    c->locales = calloc(CLDR_MAX_LOCALES, sizeof(ff_cldr_locale));
    if (c->locales == NULL)
        st = ff_error_set(err, FF_ERR_NOMEM, "CLDR: no memory");
    while (st == FF_OK && (e = readdir(d)) != NULL)
        st = load_file(rbnf, e->d_name, c, err);
    closedir(d);
    if (st == FF_OK && c->count == 0)
        st = ff_error_set(err, FF_ERR_FORMAT, "%s: no usable locale", rbnf);
    if (st != FF_OK) {
        ff_cldr_cleanup(c);
        return st;
    }
    qsort(c->locales, c->count, sizeof(ff_cldr_locale), cmp_locale);
    return FF_OK;
}

const ff_cldr_locale *
ff_cldr_find(const ff_cldr *c, const char *code)
{
    for (size_t i = 0; i < c->count; i++)
        if (strcmp(c->locales[i].code, code) == 0)
            return &c->locales[i];
    return NULL;
}

void
ff_cldr_cleanup(ff_cldr *c)
{
    if (c == NULL)
        return;
    free(c->locales);
    memset(c, 0, sizeof(*c));
}

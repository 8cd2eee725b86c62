/*
 * ff_text.c - text harmonisation: hashed character n-grams.
 *
 * Each whitespace-separated word w becomes "<" w ">"; every run of 1, 2
 * and 3 consecutive code points of it is hashed (FNV-1a, 32 bit, over the
 * UTF-8 bytes after ASCII lower-casing) into [0, FF_TEXT_BUCKETS). Ids are
 * emitted word by word, position by position, n = 1..3, and the first
 * FF_TEXT_MAX_NGRAMS are kept.
 */
#include "ff_dataset.h"
#include "ff_dataset_util.h"

#include <string.h>

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

/* Longest n-gram in code points, and the most code points per word that
 * we look at (longer words are cut: the id budget runs out long before). */
#define NGRAM_MAX 3
#define WORD_MAX_CP 128

/* Length of the UTF-8 sequence starting at s (at most n bytes available),
 * or 0 when it is not a valid, shortest-form, non-surrogate sequence. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n);

size_t
ff_utf8_check(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t len = utf8_seq_len(u + i, n - i);
        if (len == 0)
            return i;
        i += len;
    }
    return n;
}

static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Reject overlong forms, surrogates and values past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return len;
}

static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

/* FNV-1a of the code points [from, from + n) of a word held as byte
 * offsets; ASCII upper case is folded to lower case. */
static uint16_t
hash_ngram(const unsigned char *word, const size_t *cp_off, size_t from,
           size_t n)
{
    uint32_t h = FNV_OFFSET;

    for (size_t b = cp_off[from]; b < cp_off[from + n]; b++) {
        unsigned char c = word[b];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h ^= c;
        h *= FNV_PRIME;
    }
    return (uint16_t)(h % FF_TEXT_BUCKETS);
}

/* Emits the n-grams of one padded word; returns the new count. */
static int
word_ngrams(const unsigned char *padded, const size_t *cp_off, size_t ncp,
            uint16_t *ids, int count)
{
    for (size_t i = 0; i < ncp && count < FF_TEXT_MAX_NGRAMS; i++)
        for (size_t n = 1; n <= NGRAM_MAX && i + n <= ncp; n++) {
            if (count >= FF_TEXT_MAX_NGRAMS)
                break;
            ids[count++] = hash_ngram(padded, cp_off, i, n);
        }
    return count;
}

int
ff_text_features(const char *text, uint16_t ids[FF_TEXT_MAX_NGRAMS])
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned char padded[WORD_MAX_CP * 4 + 2];
    size_t cp_off[WORD_MAX_CP + 3];
    size_t n, pos = 0;
    int count = 0;

    if (text == NULL)
        return -1;
    n = strlen(text);

    /* Validate the whole string first: a bad byte anywhere is an error,
     * even past the point where the id budget runs out. */
    if (ff_utf8_check(text, n) != n)
        return -1;

    /* Split on ASCII whitespace; pad each word with "<" and ">". */
    while (pos < n && count < FF_TEXT_MAX_NGRAMS) {
        size_t ncp = 0, nb = 0;

        while (pos < n && is_space(s[pos]))
            pos++;
        if (pos >= n)
            break;
        padded[nb] = '<';
        cp_off[ncp++] = nb++;
        while (pos < n && !is_space(s[pos])) {
            size_t len = utf8_seq_len(s + pos, n - pos);
            if (ncp <= WORD_MAX_CP) {
                cp_off[ncp++] = nb;
                memcpy(padded + nb, s + pos, len);
                nb += len;
            }
            pos += len;
        }
        cp_off[ncp++] = nb;
        padded[nb++] = '>';
        cp_off[ncp] = nb;
        count = word_ngrams(padded, cp_off, ncp, ids, count);
    }
    return count > 0 ? count : -1;
}

/* Private to the tokenizer files (bpe.c, bpe_train.c, bpe_unicode.c): the
 * shared internals of BpeTokenizer, the Unicode tables and the GPT-2
 * pre-tokenizer.  Not part of nn's public API; tests may include it to check
 * internals against a reference. */
#ifndef DRIFTPILOT_BPE_IMPL_H
#define DRIFTPILOT_BPE_IMPL_H

#include "nn.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

// ---- Unicode tables (bpe_unicode.c, generated) ----

extern const char bpe_unicode_version[];
extern const uint32_t bpe_unicode_letters[][2];
extern const int bpe_unicode_letters_n;
extern const uint32_t bpe_unicode_numbers[][2];
extern const int bpe_unicode_numbers_n;

// ---- character classes and the pre-tokenizer (bpe.c) ----

typedef enum {
    BPE_CLASS_OTHER = 0,  /* [^\s\p{L}\p{N}], and every byte of invalid UTF-8 */
    BPE_CLASS_LETTER = 1, /* \p{L} */
    BPE_CLASS_NUMBER = 2, /* \p{N} */
    BPE_CLASS_SPACE = 3,  /* \s: Unicode White_Space */
} BpeCharClass;

/* Class of the character starting at s[0] (n > 0 bytes available); *width
 * gets its length in bytes (1 for an invalid UTF-8 byte). */
BpeCharClass bpe_char_class(const unsigned char *s, size_t n, int *width);

/* Length in bytes of the next GPT-2 pre-token of s[0..n) (n > 0; result is in
 * [1, n]), by the regex
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
size_t bpe_pretoken_len(const unsigned char *s, size_t n);

/* GPT-2's byte <-> unicode table: bytes_to_unicode()[b] is the code point
 * that stands for byte b in vocab.json and merges.txt. */
uint32_t bpe_byte_to_cp(int b);
/* Appends the vocab-string form (UTF-8 of the mapped code points) of bytes. */
DpStatus bpe_bytes_to_vocab_str(const unsigned char *bytes, size_t n, DpBuf *out);

/* For tests: words longer than this many bytes go through the heap-based
 * merge loop, shorter ones through the direct GPT-2 loop (default 48).
 * Returns the previous value.  Not thread-safe; tests only. */
size_t bpe_set_naive_limit(size_t limit);

/* Builds a tokenizer from tokens given as raw bytes (id = index; all 256
 * single bytes must be there), merges as id triples (rank = index;
 * merges[r] = {left, right, result}) and the ids of forced whole tokens.  The
 * token with bytes "<|endoftext|>" becomes the eot id.  Used by the trainer.
 * Copies what it needs. */
typedef struct {
    const unsigned char *bytes;
    size_t len;
} BpeBytes;
DpStatus bpe_build(const BpeBytes *tokens, int n_tokens, const int (*merges)[3], int n_merges,
                   const int *atomic_ids, int n_atomic, BpeTokenizer **out,
                   DpError *err);

#endif

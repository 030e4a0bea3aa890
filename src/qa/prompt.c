/* The prompt format shared by training and serving (see qa.h): one place, so
 * a model fine-tuned by the retrain job is asked questions exactly the way it
 * was trained on them. */
#include "qa.h"

#include <ctype.h>
#include <string.h>

/* Appends s to buf (bounded), replacing newlines by spaces when flatten;
 * returns the new needed length. */
static size_t put(char *buf, size_t cap, size_t len, const char *s, int flatten) {
    for (; *s; s++, len++) {
        char c = *s;
        if (flatten && (c == '\n' || c == '\r')) c = ' ';
        if (len + 1 < cap) buf[len] = c;
    }
    if (cap) buf[len < cap ? len : cap - 1] = 0;
    return len;
}

size_t qa_prompt_format(const char *question, const char *context, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    if (context && *context) {
        len = put(buf, cap, len, "Context: ", 0);
        len = put(buf, cap, len, context, 0);
        len = put(buf, cap, len, "\n", 0);
    }
    len = put(buf, cap, len, "Q: ", 0);
    len = put(buf, cap, len, question ? question : "", 1);
    return put(buf, cap, len, "\nA:", 0);
}

size_t qa_answer_format(const char *answer, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    size_t len = put(buf, cap, 0, " ", 0);
    len = put(buf, cap, len, answer ? answer : "", 1);
    return put(buf, cap, len, "\n", 0);
}

size_t qa_answer_extract(const char *generated, char *out, size_t cap) {
    const char *s = generated ? generated : "";
    const char *nl = strchr(s, '\n');
    const char *end = nl ? nl : s + strlen(s);
    while (s < end && isspace((unsigned char)*s)) s++;
    while (end > s && isspace((unsigned char)end[-1])) end--;
    size_t n = (size_t)(end - s);
    if (cap) {
        size_t m = n < cap - 1 ? n : cap - 1;
        memcpy(out, s, m);
        out[m] = 0;
    }
    return n;
}

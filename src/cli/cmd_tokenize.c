/* `driftpilot tokenize`: GPT-2 BPE over JSON lines on stdin, so the tokenizer
 * can be diffed against any other implementation line by line. */
#include "cli.h"
#include "nn.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot tokenize --model DIR [--decode] [--allow-special] [--keep-going]\n"
            "\n"
            "Reads JSON lines on stdin and writes one JSON line per input line to stdout,\n"
            "in the same order, with the byte-level BPE tokenizer of DIR (vocab.json and\n"
            "merges.txt, plus added_tokens.json when present: a Hugging Face GPT-2\n"
            "directory or one written by the BPE trainer).\n"
            "\n"
            "  encode (default):  {\"text\": \"Hello world\"}  ->  {\"ids\": [15496, 995]}\n"
            "  --decode:          {\"ids\": [15496, 995]}    ->  {\"text\": \"Hello world\"}\n"
            "\n"
            "options:\n"
            "  --model DIR        tokenizer directory (required)\n"
            "  --decode           ids to text; invalid UTF-8 in the decoded bytes becomes\n"
            "                     U+FFFD, as GPT-2's decode does\n"
            "  --allow-special    encode the literal text <|endoftext|> as the special id\n"
            "                     (default: as ordinary text, like GPT-2's encode)\n"
            "  --keep-going       on a bad line, report it on stderr, write\n"
            "                     {\"error\": \"...\"} in its place and go on (exit status is\n"
            "                     still 1 at the end); default: stop at the first bad line\n"
            "  -h, --help         show this help\n"
            "\n"
            "Exit status: 0 all lines done, 1 a bad line or a tokenizer that fails to\n"
            "load, 2 bad usage.\n");
}

/* Handles one input line; on failure fills err->msg and returns the status.
 * On success writes the output line to *out (malloc'd). */
static DpStatus do_line(const BpeTokenizer *tok, const char *line, size_t len, int decode,
                        int allow_special, DpBuf *out, DpError *err) {
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    DpStatus st = DP_OK;
    int *ids = NULL;
    char *text = NULL;
    if (!o) return dp_fail(err, DP_ERR_PARSE, "bad JSON at column %d: %s", je.column, je.text);
    if (!json_is_object(o)) {
        st = dp_fail(err, DP_ERR_PARSE, "expected a JSON object");
        goto out;
    }
    if (!decode) {
        json_t *jt = json_object_get(o, "text");
        if (!json_is_string(jt)) {
            st = dp_fail(err, DP_ERR_PARSE, "expected a string field \"text\"");
            goto out;
        }
        size_t n = 0;
        st = bpe_encode(tok, json_string_value(jt), json_string_length(jt), allow_special, &ids,
                        &n, err);
        if (st != DP_OK) goto out;
        st = dp_buf_append(out, "{\"ids\": [", 9);
        for (size_t i = 0; i < n && st == DP_OK; i++)
            st = dp_buf_printf(out, i ? ", %d" : "%d", ids[i]);
        if (st == DP_OK) st = dp_buf_append(out, "]}\n", 3);
    } else {
        json_t *ja = json_object_get(o, "ids");
        if (!json_is_array(ja)) {
            st = dp_fail(err, DP_ERR_PARSE, "expected an array field \"ids\"");
            goto out;
        }
        size_t n = json_array_size(ja);
        ids = dp_malloc((n + 1) * sizeof(int));
        if (!ids) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(ja, i);
            json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
            if (id < 0 || id >= bpe_vocab_size(tok)) {
                st = dp_fail(err, DP_ERR_INVAL, "ids[%zu] is not an id in 0..%d", i,
                             bpe_vocab_size(tok) - 1);
                goto out;
            }
            ids[i] = (int)id;
        }
        size_t tl = 0;
        st = bpe_decode_text(tok, ids, n, &text, &tl, err);
        if (st != DP_OK) goto out;
        json_t *r = json_pack("{s:s%}", "text", text, tl);
        char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
        json_decref(r);
        if (!s) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        st = dp_buf_append(out, s, strlen(s));
        if (st == DP_OK) st = dp_buf_append(out, "\n", 1);
        free(s);
    }
    if (st != DP_OK && err->status == DP_OK) st = dp_fail(err, st, "out of memory");
out:
    free(ids);
    free(text);
    json_decref(o);
    return st;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},  {"decode", no_argument, NULL, 'd'},
        {"allow-special", no_argument, NULL, 's'}, {"keep-going", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *model = NULL;
    int decode = 0, allow_special = 0, keep_going = 0;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "h", opts, NULL);
        if (c == -1) break;
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': decode = 1; break;
        case 's': allow_special = 1; break;
        case 'k': keep_going = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            return cli_usage_error("tokenize", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("tokenize", "unexpected argument '%s'", argv[optind]);
    if (!model) return cli_usage_error("tokenize", "--model DIR is required");

    DpError err = {0};
    BpeTokenizer *tok = NULL;
    if (bpe_load_dir(model, &tok, &err) != DP_OK) return cli_fail("tokenize", "%s", err.msg);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long line_no = 0;
    int failed = 0;
    DpBuf out = DP_BUF_INIT;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        out.len = 0;
        err = (DpError){0};
        if (do_line(tok, line, len, decode, allow_special, &out, &err) != DP_OK) {
            failed = 1;
            fprintf(stderr, "driftpilot tokenize: stdin line %ld: %s\n", line_no, err.msg);
            if (!keep_going) break;
            json_t *e = json_pack("{s:s}", "error", err.msg);
            char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
            if (s) printf("%s\n", s);
            free(s);
            json_decref(e);
            continue;
        }
        fwrite(out.data, 1, out.len, stdout);
    }
    free(line);
    dp_buf_free(&out);
    bpe_free(tok);
    if (fflush(stdout) != 0) return cli_fail("tokenize", "write to stdout failed");
    return failed ? 1 : 0;
}

/* `driftpilot score FILE`: scores predictions against references with the
 * qa metrics (BLEU-1 as NLTK, SQuAD EM/F1), one JSON line per input line and
 * a corpus line, so anyone can compare our numbers with NLTK's. */
#include "cli.h"
#include "qa.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot score FILE|-\n\n"
            "Reads JSON lines {\"prediction\": str, \"references\": [str, ...]} from FILE (or\n"
            "stdin for -) and writes, for each, {\"line\", \"bleu1\", \"exact_match\", \"f1\"}:\n"
            "BLEU-1 as NLTK's sentence_bleu(weights=(1,0,0,0)) on lower-cased whitespace\n"
            "tokens, and SQuAD v1.1 exact match and F1 (official normalisation), each the\n"
            "max over the references.  The last line is\n"
            "{\"corpus\": true, \"n\", \"bleu1_corpus\", \"bleu1_mean\", \"exact_match\", \"f1\"}\n"
            "(bleu1_corpus as NLTK's corpus_bleu).  Blank lines are skipped.  A line that is\n"
            "not such an object is an error naming its line number (exit 1).\n");
}

int cmd_score(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    static const struct option opts[] = {{0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        return cli_usage_error("score", "unknown option '%s'", argv[optind - 1]);
    if (argc - optind != 1) return cli_usage_error("score", "expected one FILE (or - for stdin)");
    const char *path = argv[optind];
    FILE *in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!in) return cli_fail("score", "open %s: %s", path, strerror(errno));
    if (!strcmp(path, "-")) path = "<stdin>";

    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    const char **refs = NULL;
    QaCorpus corpus;
    qa_corpus_init(&corpus);
    while ((len = getline(&line, &cap, in)) != -1) {
        lineno++;
        size_t k = 0;
        while (k < (size_t)len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n')) k++;
        if (k == (size_t)len) continue;
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)len, 0, &jerr);
        if (!o) {
            rc = cli_fail("score", "%s line %zu column %d: %s", path, lineno, jerr.column, jerr.text);
            break;
        }
        json_t *pred = json_object_get(o, "prediction");
        json_t *ra = json_object_get(o, "references");
        if (!json_is_object(o) || !json_is_string(pred) || !json_is_array(ra)) {
            json_decref(o);
            rc = cli_fail("score", "%s line %zu: expected {\"prediction\": string, \"references\": [string, ...]}",
                          path, lineno);
            break;
        }
        size_t n = json_array_size(ra);
        free(refs);
        refs = malloc((n ? n : 1) * sizeof *refs);
        if (!refs) {
            json_decref(o);
            rc = cli_fail("score", "out of memory");
            break;
        }
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_array_get(ra, i);
            if (!json_is_string(r)) bad = 1;
            else refs[i] = json_string_value(r);
        }
        if (bad) {
            json_decref(o);
            rc = cli_fail("score", "%s line %zu: every reference must be a string", path, lineno);
            break;
        }
        QaScores sc;
        if (qa_corpus_add(&corpus, json_string_value(pred), refs, n, &sc)) {
            json_decref(o);
            rc = cli_fail("score", "out of memory");
            break;
        }
        printf("{\"line\": %zu, \"bleu1\": %.17g, \"exact_match\": %.17g, \"f1\": %.17g}\n", lineno, sc.bleu1,
               sc.exact_match, sc.f1);
        json_decref(o);
    }
    if (!rc && ferror(in)) rc = cli_fail("score", "read %s: %s", path, strerror(errno));
    if (!rc) {
        QaCorpusScores cs;
        qa_corpus_result(&corpus, &cs);
        printf("{\"corpus\": true, \"n\": %zu, \"bleu1_corpus\": %.17g, \"bleu1_mean\": %.17g, "
               "\"exact_match\": %.17g, \"f1\": %.17g}\n",
               cs.n, cs.bleu1_corpus, cs.bleu1_mean, cs.exact_match, cs.f1);
    }
    free(refs);
    free(line);
    if (in != stdin) fclose(in);
    if (fflush(stdout)) rc = cli_fail("score", "write: %s", strerror(errno));
    return rc;
}

/* `driftpilot demo`: for now, the engine's self-check.  Loads the tiny GPT-2
 * that PyTorch made (bundled in tests/data/gpt2-tiny), runs the same check as
 * `driftpilot nn check` against its vectors, then greedily continues a prompt
 * through the KV cache.  Later issues turn this into the full experiment. */
#include "cli.h"
#include "nn.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot demo [--model DIR] [--tokens N]\n"
            "\n"
            "Self-check of the GPT-2 engine: loads the tiny model made by PyTorch that\n"
            "ships with the sources (tests/data/gpt2-tiny, found next to the binary's\n"
            "build directory, or under $DRIFTPILOT_SOURCE_DIR), compares forward,\n"
            "backward, two AdamW steps and greedy decoding with PyTorch's numbers\n"
            "(DIR/expected.safetensors) and prints the table, then generates N tokens\n"
            "greedily after the reference prompt and prints their ids.\n"
            "\n"
            "options:\n"
            "  --model DIR    model directory with expected.safetensors\n"
            "                 (default: the bundled tests/data/gpt2-tiny)\n"
            "  --tokens N     tokens to generate (default 16)\n"
            "  -h, --help     show this help\n"
            "\n"
            "Exit status: 0 when every check passes, 1 otherwise, 2 bad usage.\n");
}

/* The bundled model: relative to the executable (build dirs sit in the
 * source tree), then $DRIFTPILOT_SOURCE_DIR, then the working directory. */
static int find_default_model(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *rel[] = {"/../tests/data/gpt2-tiny", "/../../tests/data/gpt2-tiny",
                         "/../share/driftpilot/gpt2-tiny"};
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe);
        for (int i = 0; i < 3; i++) {
            snprintf(out, cap, "%s%s/config.json", dir, rel[i]);
            if (dp_file_exists(out)) {
                snprintf(out, cap, "%s%s", dir, rel[i]);
                return 1;
            }
        }
    }
    const char *src = getenv("DRIFTPILOT_SOURCE_DIR");
    if (src) {
        snprintf(out, cap, "%s/tests/data/gpt2-tiny/config.json", src);
        if (dp_file_exists(out)) {
            snprintf(out, cap, "%s/tests/data/gpt2-tiny", src);
            return 1;
        }
    }
    snprintf(out, cap, "tests/data/gpt2-tiny");
    return dp_file_exists("tests/data/gpt2-tiny/config.json");
}

int cmd_demo(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *model_arg = NULL;
    long long n_tokens = 16;
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"tokens", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_arg = optarg; break;
        case 'n':
            if (!cli_parse_int("demo", "--tokens", optarg, 1, 4096, &n_tokens)) return 2;
            break;
        default: return cli_usage_error("demo", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("demo", "unexpected argument '%s'", argv[optind]);
    char dir[PATH_MAX + 64];
    if (model_arg) {
        snprintf(dir, sizeof dir, "%s", model_arg);
    } else if (!find_default_model(dir, sizeof dir)) {
        return cli_fail("demo",
                        "cannot find the bundled model tests/data/gpt2-tiny; pass --model DIR or "
                        "set DRIFTPILOT_SOURCE_DIR to the source tree");
    }
    char vectors[PATH_MAX + 128];
    snprintf(vectors, sizeof vectors, "%s/expected.safetensors", dir);
    DpError err = {0};
    Gpt2 *m = NULL;
    fprintf(stderr, "demo: loading %s\n", dir);
    if (gpt2_load_dir(dir, &m, &err)) return cli_fail("demo", "%s", err.msg);
    fprintf(stderr, "demo: %d layers, %d wide, %d heads, vocabulary %d, %zu parameters\n",
            m->config.n_layer, m->config.n_embd, m->config.n_head, m->config.vocab_size,
            m->n_params);
    fprintf(stderr, "demo: checking forward, backward, AdamW and greedy decoding against PyTorch\n");
    Gpt2CheckReport rep;
    int rc = 0;
    Gpt2Generator *g = NULL;
    int *out = NULL;
    Safetensors st = {0};
    int prompt[64];
    int plen = 0;
    if (gpt2_check_vectors(m, vectors, 1.0, &rep, &err)) {
        rc = cli_fail("demo", "%s", err.msg);
        goto done;
    }
    printf("engine check against PyTorch (%s):\n", vectors);
    gpt2_check_print(&rep, stdout);
    if (!rep.pass) rc = 1;
    /* the reference prompt, so the continuation can be compared by eye */
    if (safetensors_open(vectors, &st, &err) == DP_OK) {
        const SafetensorsTensor *t = safetensors_find(&st, "prompt");
        if (t && t->numel >= 1 && t->numel <= 64 &&
            safetensors_to_i32(&st, t, prompt, t->numel, &err) == DP_OK)
            plen = (int)t->numel;
        safetensors_free(&st);
    }
    if (plen == 0) {
        plen = 3;
        for (int i = 0; i < plen; i++) prompt[i] = i % m->config.vocab_size;
    }
    out = dp_calloc((size_t)n_tokens, sizeof(int));
    if (!out || gpt2_generator_create(m, 1, 0, 64, &g, &err)) {
        rc = cli_fail("demo", "%s", out ? err.msg : "out of memory");
        goto done;
    }
    Gpt2Sampling s = gpt2_sampling_default();
    s.max_new_tokens = (int)n_tokens;
    int len = 0;
    const int *prompts[1] = {prompt};
    int *outs[1] = {out};
    double t0 = dp_time_mono();
    if (gpt2_generate(g, 1, prompts, &plen, &s, NULL, outs, &len, &err)) {
        rc = cli_fail("demo", "%s", err.msg);
        goto done;
    }
    double dt = dp_time_mono() - t0;
    printf("\nprompt ids:    ");
    for (int i = 0; i < plen; i++) printf("%s%d", i ? " " : "", prompt[i]);
    printf("\ngreedy ids:    ");
    for (int i = 0; i < len; i++) printf("%s%d", i ? " " : "", out[i]);
    printf("\n");
    fprintf(stderr, "demo: generated %d tokens in %.1f ms\n", len, dt * 1e3);
    printf("%s\n", rc == 0 ? "demo: engine self-check passed" : "demo: engine self-check FAILED");
done:
    gpt2_generator_destroy(g);
    free(out);
    gpt2_free(m);
    return rc;
}

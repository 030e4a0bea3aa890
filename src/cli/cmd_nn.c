/* `driftpilot nn`: tools for the GPT-2 engine.  `nn check` compares a model
 * directory with reference vectors made by PyTorch (gpt2_reference.py), the
 * same check the unit tests and `driftpilot demo` run; `nn info` prints what
 * a model directory holds. */
#include "cli.h"
#include "nn.h"

#include <getopt.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot nn check --model DIR --vectors FILE [--tolerance-scale X]\n"
            "       driftpilot nn info --model DIR\n"
            "\n"
            "check  Loads the Hugging Face GPT-2 directory DIR (config.json and\n"
            "       model.safetensors; keys with or without 'transformer.', attn.bias\n"
            "       buffers ignored) and the vector file FILE written by\n"
            "       tools/gpt2_reference.py (inputs, targets, logits, loss, grad.*,\n"
            "       adamw1.*, adamw2.*, prompt, greedy).  Runs forward, backward, two\n"
            "       AdamW steps (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01 on\n"
            "       every tensor) and greedy decoding with the KV cache, and prints the\n"
            "       largest error per tensor group.  Tolerances: logits and gradients\n"
            "       1e-4 relative or 1e-5 absolute, loss 1e-5, AdamW weights 1e-6\n"
            "       absolute, greedy tokens exactly.  In the AdamW groups each weight's\n"
            "       tolerance also grows by what the difference between our step-1 gradient\n"
            "       and the reference's moves Adam's step (lr*|f(g)-f(g_ref)| per step,\n"
            "       f(g) = g/(|g|+eps); it matters only where |g| is near eps), and the\n"
            "       attention key bias is left out: its true gradient is exactly zero, so\n"
            "       float noise picks the sign of its Adam steps on both sides.  The table\n"
            "       counts both.\n"
            "info   Prints the configuration and parameter count of DIR.\n"
            "\n"
            "options:\n"
            "  --model DIR              model directory (required)\n"
            "  --vectors FILE           reference vectors (check; required)\n"
            "  --tolerance-scale X      multiply every tolerance by X (default 1)\n"
            "  --threads N              OpenMP/BLAS threads (default: OMP_NUM_THREADS)\n"
            "  -h, --help               show this help\n"
            "\n"
            "Exit status: 0 every group within tolerance, 1 a group out of tolerance or a\n"
            "file that fails to load (the message names file and field), 2 bad usage.\n");
}

int cmd_nn(int argc, char **argv) {
    if (argc < 2 || cli_wants_help(argc, argv)) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "check") && strcmp(sub, "info"))
        return cli_usage_error("nn", "unknown subcommand '%s' (check, info)", sub);
    const char *model_dir = NULL, *vectors = NULL;
    double scale = 1.0;
    long long threads = 0;
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"vectors", required_argument, NULL, 'v'},
                                         {"tolerance-scale", required_argument, NULL, 's'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'v': vectors = optarg; break;
        case 's':
            if (!cli_parse_double("nn", "--tolerance-scale", optarg, 1e-6, 1e6, &scale)) return 2;
            break;
        case 't':
            if (!cli_parse_int("nn", "--threads", optarg, 1, 1024, &threads)) return 2;
            break;
        default: return cli_usage_error("nn", "unknown option '%s'", argv[optind]);
        }
    }
    if (optind < argc - 1) return cli_usage_error("nn", "unexpected argument '%s'", argv[optind + 1]);
    if (!model_dir) return cli_usage_error("nn", "--model DIR is required");
    if (!strcmp(sub, "check") && !vectors) return cli_usage_error("nn", "--vectors FILE is required");
    if (threads > 0) omp_set_num_threads((int)threads);
    DpError err = {0};
    Gpt2 *m = NULL;
    if (gpt2_load_dir(model_dir, &m, &err)) return cli_fail("nn", "%s", err.msg);
    const Gpt2Config *cf = &m->config;
    if (!strcmp(sub, "info")) {
        printf("model          %s\n", model_dir);
        printf("n_layer        %d\nn_head         %d\nn_embd         %d\nn_inner        %d\n",
               cf->n_layer, cf->n_head, cf->n_embd, cf->n_inner);
        printf("n_positions    %d\nvocab_size     %d\nlayer_norm_eps %g\nactivation     %s\n",
               cf->n_positions, cf->vocab_size, (double)cf->layer_norm_epsilon,
               gpt2_activation_name(cf->activation));
        printf("parameters     %zu (%.1f MB as float32)\n", m->n_params,
               (double)m->n_params * 4.0 / 1e6);
        gpt2_free(m);
        return 0;
    }
    fprintf(stderr, "nn check: %s (%zu parameters) against %s\n", model_dir, m->n_params, vectors);
    Gpt2CheckReport rep;
    double t0 = dp_time_mono();
    DpStatus s = gpt2_check_vectors(m, vectors, scale, &rep, &err);
    gpt2_free(m);
    if (s) return cli_fail("nn", "%s", err.msg);
    gpt2_check_print(&rep, stdout);
    fprintf(stderr, "nn check: %.2f s\n", dp_time_mono() - t0);
    return rep.pass ? 0 : 1;
}

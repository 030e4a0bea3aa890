/* `driftpilot pretrain`: builds the built-in model (a small GPT-2 trained from
 * scratch on the drifting QA world at t = 0) as a Hugging Face directory. */
#include "cli.h"
#include "train.h"

#include <getopt.h>
#include <string.h>

static void usage(FILE *out) {
    PretrainConfig d;
    pretrain_config_default(&d);
    fprintf(out,
            "usage: driftpilot pretrain [--out DIR] [options]\n\n"
            "Trains the built-in model from scratch on the drifting QA world at t = 0: its own\n"
            "byte-level BPE (service names and values as whole tokens, digits apart), every\n"
            "fact in every training phrasing, 2-digit arithmetic and reading comprehension,\n"
            "loss on answer tokens only.  Writes a Hugging Face directory (config.json,\n"
            "model.safetensors, vocab.json, merges.txt) plus driftpilot_world.json and\n"
            "pretrain_report.json (time, tokens/s, loss, exact match per category).\n\n"
            "  --out DIR          output directory (default models/builtin)\n"
            "  --seed S           world and training seed (default %llu)\n"
            "  --minutes M        training time budget (default %g)\n"
            "  --steps N          train N steps instead of a time budget\n"
            "  --services N       services in the world (default %d)\n"
            "  --layers N --heads N --width N   model shape (default %d x %d, %d heads)\n"
            "  --positions N      context length (default %d)\n"
            "  --vocab N          BPE vocabulary target (default %d)\n"
            "  --batch N          rows per step (default %d)\n"
            "  --lr X             peak learning rate (default %g)\n"
            "  --eval-n N         items per evaluation category (default %d)\n"
            "  --quiet            no progress on stderr\n",
            (unsigned long long)d.seed, d.minutes, d.world.n_services, d.n_layer, d.n_embd,
            d.n_head, d.n_positions, d.vocab_size, d.batch, (double)d.lr, d.eval_n);
}

static void print_eval(const char *name, const TrainEval *e) {
    printf("  %-28s n=%-5zu EM %.3f  F1 %.3f  BLEU-1 %.3f\n", name, e->all.n, e->all.exact_match,
           e->all.f1, e->all.bleu1_corpus);
}

int cmd_pretrain(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"seed", required_argument, 0, 's'},
        {"minutes", required_argument, 0, 'm'}, {"steps", required_argument, 0, 'n'},
        {"services", required_argument, 0, 'S'}, {"layers", required_argument, 0, 'L'},
        {"heads", required_argument, 0, 'H'},   {"width", required_argument, 0, 'W'},
        {"positions", required_argument, 0, 'P'}, {"vocab", required_argument, 0, 'V'},
        {"batch", required_argument, 0, 'B'},   {"lr", required_argument, 0, 'l'},
        {"eval-n", required_argument, 0, 'e'},  {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0}};
    PretrainConfig cfg;
    pretrain_config_default(&cfg);
    const char *out = "models/builtin";
    long long v;
    double d;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 's':
            if (!cli_parse_int("pretrain", "--seed", optarg, 0, (long long)1 << 62, &v)) return 2;
            cfg.seed = (uint64_t)v;
            cfg.world.seed = (uint64_t)v;
            break;
        case 'm':
            if (!cli_parse_double("pretrain", "--minutes", optarg, 0.01, 1e4, &d)) return 2;
            cfg.minutes = d;
            cfg.max_steps = 0;
            break;
        case 'n':
            if (!cli_parse_int("pretrain", "--steps", optarg, 1, 100000000, &v)) return 2;
            cfg.max_steps = (int)v;
            cfg.minutes = 0;
            break;
        case 'S':
            if (!cli_parse_int("pretrain", "--services", optarg, 1, 2700, &v)) return 2;
            cfg.world.n_services = (int)v;
            cfg.world.max_services = (int)v + 16;
            break;
        case 'L':
            if (!cli_parse_int("pretrain", "--layers", optarg, 1, 48, &v)) return 2;
            cfg.n_layer = (int)v;
            break;
        case 'H':
            if (!cli_parse_int("pretrain", "--heads", optarg, 1, 64, &v)) return 2;
            cfg.n_head = (int)v;
            break;
        case 'W':
            if (!cli_parse_int("pretrain", "--width", optarg, 8, 4096, &v)) return 2;
            cfg.n_embd = (int)v;
            break;
        case 'P':
            if (!cli_parse_int("pretrain", "--positions", optarg, 32, 4096, &v)) return 2;
            cfg.n_positions = (int)v;
            break;
        case 'V':
            if (!cli_parse_int("pretrain", "--vocab", optarg, 300, 60000, &v)) return 2;
            cfg.vocab_size = (int)v;
            break;
        case 'B':
            if (!cli_parse_int("pretrain", "--batch", optarg, 1, 4096, &v)) return 2;
            cfg.batch = (int)v;
            break;
        case 'l':
            if (!cli_parse_double("pretrain", "--lr", optarg, 1e-7, 1.0, &d)) return 2;
            cfg.lr = (float)d;
            break;
        case 'e':
            if (!cli_parse_int("pretrain", "--eval-n", optarg, 1, 1000000, &v)) return 2;
            cfg.eval_n = (int)v;
            break;
        case 'q': cfg.quiet = 1; break;
        default: return cli_usage_error("pretrain", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("pretrain", "unexpected argument '%s'", argv[optind]);
    if (cfg.n_embd % cfg.n_head)
        return cli_usage_error("pretrain", "--width %d is not a multiple of --heads %d", cfg.n_embd,
                               cfg.n_head);
    PretrainReport rep;
    DpError err;
    if (pretrain_run(&cfg, out, &rep, &err) != DP_OK) return cli_fail("pretrain", "%s", err.msg);
    printf("pretrained %s: %d steps in %.1f s (%.1f s total), %.0f tokens/s, final loss %.4f\n",
           out, rep.steps, rep.seconds, rep.total_seconds, rep.tokens_per_s, rep.final_loss);
    printf("  vocab %d, %zu parameters, %zu fact rows, %.1f fact epochs\n", rep.vocab_size,
           rep.n_params, rep.n_fact_rows, rep.fact_epochs);
    print_eval("facts (training phrasings)", &rep.facts_train);
    print_eval("facts (held-out phrasing)", &rep.facts_heldout);
    print_eval("arithmetic (held-out pairs)", &rep.arithmetic);
    print_eval("comprehension", &rep.comprehension);
    print_eval("traffic at t=0", &rep.traffic);
    pretrain_report_free(&rep);
    return 0;
}

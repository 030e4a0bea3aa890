/* `driftpilot retrain`: fine-tunes a model on a labelled window with replay,
 * gates it on a canary set, and publishes it to the registry when it passes. */
#include "cli.h"
#include "train.h"

#include <getopt.h>
#include <string.h>

static void usage(FILE *out) {
    RetrainConfig d;
    retrain_config_default(&d);
    fprintf(out,
            "usage: driftpilot retrain --from VERSION|DIR --data FILE [options]\n\n"
            "Fine-tunes a model (a Hugging Face directory, or a version of --registry) on the\n"
            "last --window labelled rows of FILE (JSON lines {question, context?, reference,\n"
            "kind?, entity?, attribute?} as the inference service logs them, or SQuAD JSON)\n"
            "mixed with replay of older data, loss on answer tokens only.  Scores BLEU-1/EM/F1\n"
            "before and after on a held-out part of the window and on a canary set, and\n"
            "publishes a new version only if canary exact match drops by at most the margin.\n\n"
            "  --from VERSION|DIR   model to start from (a version needs --registry)\n"
            "  --data FILE          labelled window (JSON lines or SQuAD JSON)\n"
            "  --registry DIR       publish a passing model here (without it: evaluate only)\n"
            "  --target T           also make the new version current on target T\n"
            "  --out DIR            also write the fine-tuned model to DIR (any gate result)\n"
            "  --window N           last N rows of the data (default %d)\n"
            "  --heldout F          share of the window held out for scoring (default %g)\n"
            "  --epochs E           passes over the window (default %d; more when that gives\n"
            "                       fewer than --min-steps steps)\n"
            "  --min-steps N        at least N optimizer steps (default %d; 0: off)\n"
            "  --replay N           replay rows per epoch (default: 1.5 x the window's training\n"
            "                       rows; the study used 500): older data regenerated\n"
            "                       from the model's world (facts the window does not touch,\n"
            "                       arithmetic, comprehension), or from --replay-file\n"
            "  --replay-file FILE   replay rows from a file (JSON lines or SQuAD)\n"
            "  --no-augment         train window facts only in the phrasing they came in\n"
            "                       (default: re-ask each in every training phrasing)\n"
            "  --canary FILE        fixed canary set (default: arithmetic and comprehension\n"
            "                       from the model's world; without one, the held-out window)\n"
            "  --canary-n N         size of the generated canary (default %d)\n"
            "  --gate-margin X      allowed canary EM drop (default %g)\n"
            "  --lr X               peak learning rate (default %g)\n"
            "  --batch N            rows per step (default %d)\n"
            "  --max-steps N        stop after N steps (timing runs; the record extrapolates)\n"
            "  --seed S             split/shuffle seed (default %llu)\n"
            "  --record FILE.json   write the job record here\n"
            "  --eval FILE          also score this set before and after (by category, and\n"
            "                       for world rows by changed/unchanged fact and coverage)\n"
            "  --study-setting      the study's setting: 1000 rows, 5 epochs, 500 replay rows,\n"
            "                       no augmentation, no --min-steps (other options override)\n"
            "  --quiet              no progress on stderr\n",
            d.window, d.heldout_frac, d.epochs, d.min_steps, d.canary_n, d.gate_margin,
            (double)d.lr, d.batch, (unsigned long long)d.seed);
}

static void print_eval(const char *name, const TrainEval *b, const TrainEval *a) {
    printf("  %-8s n=%-5zu EM %.3f -> %.3f  F1 %.3f -> %.3f  BLEU-1 %.3f -> %.3f\n", name,
           a->all.n, b->all.exact_match, a->all.exact_match, b->all.f1, a->all.f1,
           b->all.bleu1_corpus, a->all.bleu1_corpus);
}

int cmd_retrain(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    static const struct option opts[] = {
        {"from", required_argument, 0, 'f'},       {"data", required_argument, 0, 'd'},
        {"registry", required_argument, 0, 'r'},   {"target", required_argument, 0, 't'},
        {"out", required_argument, 0, 'o'},        {"window", required_argument, 0, 'w'},
        {"heldout", required_argument, 0, 'h'},    {"epochs", required_argument, 0, 'e'},
        {"replay", required_argument, 0, 'p'},     {"replay-file", required_argument, 0, 'P'},
        {"no-augment", no_argument, 0, 'A'},       {"canary", required_argument, 0, 'c'},
        {"canary-n", required_argument, 0, 'C'},   {"gate-margin", required_argument, 0, 'g'},
        {"lr", required_argument, 0, 'l'},         {"batch", required_argument, 0, 'b'},
        {"seed", required_argument, 0, 's'},       {"record", required_argument, 0, 'R'},
        {"max-steps", required_argument, 0, 'M'},  {"min-steps", required_argument, 0, 'm'},  {"study-setting", no_argument, 0, 'S'},    {"eval", required_argument, 0, 'E'},    {"quiet", no_argument, 0, 'q'},
        {0, 0, 0, 0}};
    RetrainConfig cfg;
    retrain_config_default(&cfg);
    /* The study's setting is a base that explicit options refine, whatever
     * their order on the command line. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--study-setting") == 0) retrain_config_study(&cfg);
    long long v;
    double d;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': cfg.from = optarg; break;
        case 'd': cfg.data_path = optarg; break;
        case 'r': cfg.registry_dir = optarg; break;
        case 't': cfg.target = optarg; break;
        case 'o': cfg.out_dir = optarg; break;
        case 'P': cfg.replay_path = optarg; break;
        case 'c': cfg.canary_path = optarg; break;
        case 'R': cfg.record_path = optarg; break;
        case 'E': cfg.eval_path = optarg; break;
        case 'm':
            if (!cli_parse_int("retrain", "--min-steps", optarg, 0, 100000000, &v)) return 2;
            cfg.min_steps = (int)v;
            break;
        case 'M':
            if (!cli_parse_int("retrain", "--max-steps", optarg, 1, 100000000, &v)) return 2;
            cfg.max_steps = (int)v;
            break;
        case 'A': cfg.augment = 0; break;
        case 'S': break;
        case 'q': cfg.quiet = 1; break;
        case 'w':
            if (!cli_parse_int("retrain", "--window", optarg, 2, 100000000, &v)) return 2;
            cfg.window = (int)v;
            break;
        case 'h':
            if (!cli_parse_double("retrain", "--heldout", optarg, 0, 0.9, &d)) return 2;
            cfg.heldout_frac = d;
            break;
        case 'e':
            if (!cli_parse_int("retrain", "--epochs", optarg, 1, 10000, &v)) return 2;
            cfg.epochs = (int)v;
            break;
        case 'p':
            if (!cli_parse_int("retrain", "--replay", optarg, 0, 100000000, &v)) return 2;
            cfg.replay = (int)v;
            break;
        case 'C':
            if (!cli_parse_int("retrain", "--canary-n", optarg, 1, 1000000, &v)) return 2;
            cfg.canary_n = (int)v;
            break;
        case 'g':
            if (!cli_parse_double("retrain", "--gate-margin", optarg, 0, 1, &d)) return 2;
            cfg.gate_margin = d;
            break;
        case 'l':
            if (!cli_parse_double("retrain", "--lr", optarg, 1e-8, 10, &d)) return 2;
            cfg.lr = (float)d;
            break;
        case 'b':
            if (!cli_parse_int("retrain", "--batch", optarg, 1, 4096, &v)) return 2;
            cfg.batch = (int)v;
            break;
        case 's':
            if (!cli_parse_int("retrain", "--seed", optarg, 0, (long long)1 << 62, &v)) return 2;
            cfg.seed = (uint64_t)v;
            break;
        default:
            return cli_usage_error("retrain", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error("retrain", "unexpected argument '%s'", argv[optind]);
    if (!cfg.from) return cli_usage_error("retrain", "--from is required");
    if (!cfg.data_path) return cli_usage_error("retrain", "--data is required");
    if (cfg.target && !cfg.registry_dir)
        return cli_usage_error("retrain", "--target needs --registry");
    RetrainReport rep;
    DpError err;
    if (retrain_run(&cfg, &rep, &err) != DP_OK) return cli_fail("retrain", "%s", err.msg);
    printf("retrain from %s: %d window rows (%d train, %d held out), %d steps in %.1f s "
           "(job %.1f s), %.0f tokens/s\n",
           cfg.from, rep.n_window, rep.n_train, rep.n_heldout, rep.steps, rep.train_seconds,
           rep.seconds, rep.tokens_per_s);
    print_eval("held-out", &rep.heldout_before, &rep.heldout_after);
    print_eval("canary", &rep.canary_before, &rep.canary_after);
    if (cfg.eval_path) {
        print_eval("eval", &rep.eval_before, &rep.eval_after);
        for (int k = 0; k < TRAIN_N_CATS; k++)
            if (rep.eval_after.cat[k].n)
                printf("    %-22s n=%-5zu EM %.3f -> %.3f\n", train_cat_name(k),
                       rep.eval_after.cat[k].n, rep.eval_before.cat[k].exact_match,
                       rep.eval_after.cat[k].exact_match);
        json_t *ev = json_object_get(rep.record, "eval");
        json_t *gb = json_object_get(json_object_get(ev, "before"), "groups");
        json_t *ga = json_object_get(json_object_get(ev, "after"), "groups");
        const char *key;
        json_t *g;
        json_object_foreach(ga, key, g) {
            printf("    %-22s n=%-5d EM %.3f -> %.3f\n", key,
                   (int)json_integer_value(json_object_get(g, "n")),
                   json_number_value(json_object_get(json_object_get(gb, key), "exact_match")),
                   json_number_value(json_object_get(g, "exact_match")));
        }
    }
    printf("  gate: %s\n", rep.gate_reason);
    if (rep.version[0])
        printf("  published %s%s%s\n", rep.version, cfg.target ? ", current on " : "",
               cfg.target ? cfg.target : "");
    else if (cfg.registry_dir)
        printf("  not published\n");
    if (rep.steps > 0 && json_is_true(json_object_get(rep.record, "stopped_early")))
        printf("  stopped early: %d of %d steps; the full job would train about %.0f s\n",
               rep.steps, (int)json_integer_value(json_object_get(rep.record, "planned_steps")),
               json_number_value(json_object_get(rep.record, "extrapolated_train_seconds")));
    if (cfg.record_path) printf("  job record: %s\n", cfg.record_path);
    retrain_report_free(&rep);
    return 0;
}

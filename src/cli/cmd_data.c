/* `driftpilot data world|describe`: writes questions from the drifting QA
 * world as SQuAD v1.1 JSON, and prints the make-up of any SQuAD file (real
 * SQuAD v1.1/v2.0 too), so a data set can be checked before it is trained on. */
#include "cli.h"
#include "qa.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot data world --out FILE [options]\n"
            "       driftpilot data describe FILE\n\n"
            "world: writes questions of the drifting QA world at scenario time --at as\n"
            "SQuAD v1.1 JSON (extra fields per question: kind, entity, attribute, changed).\n"
            "  --seed S             world seed (default 1)\n"
            "  --at DURATION        scenario time, e.g. 0, 90m, 2h (default 0)\n"
            "  --n N                questions drawn as traffic draws them (default 1000)\n"
            "  --schedule SPEC      none | sudden:T[:FRACTION] | gradual:RATE/h |\n"
            "                       recurring:PERIOD[:FRACTION] (default none)\n"
            "  --services N         services at t=0 (default 100)\n"
            "  --new-per-hour R     new services appearing per hour (default 0)\n"
            "  --attributes LIST    comma list of owner,region,version,language,oncall\n"
            "                       (default owner,region,version,language)\n"
            "  --all-facts          write every fact question instead (pretraining/eval set)\n"
            "  --phrasings SET      with --all-facts: train | heldout | all (default train)\n"
            "  --sample-seed S      seed of the traffic draw (default 0)\n"
            "  --out FILE           output file (written atomically)\n\n"
            "describe: prints counts (articles, paragraphs, questions, answerable and\n"
            "impossible, by kind when present) and answer, question and context length\n"
            "statistics of a SQuAD JSON file.\n");
}

static int parse_attrs(const char *list, unsigned *mask) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    *mask = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        QaAttr a;
        DpError err;
        if (qa_attr_from_name(tok, &a, &err)) return cli_usage_error("data", "--attributes: %s", err.msg), 0;
        *mask |= QA_ATTR_MASK(a);
    }
    if (!*mask) return cli_usage_error("data", "--attributes: empty list"), 0;
    return 1;
}

static int cmd_world(int argc, char **argv) {
    static const struct option opts[] = {
        {"seed", required_argument, 0, 's'},     {"at", required_argument, 0, 't'},
        {"n", required_argument, 0, 'n'},        {"schedule", required_argument, 0, 'd'},
        {"services", required_argument, 0, 'S'}, {"new-per-hour", required_argument, 0, 'N'},
        {"attributes", required_argument, 0, 'a'}, {"all-facts", no_argument, 0, 'F'},
        {"phrasings", required_argument, 0, 'p'}, {"sample-seed", required_argument, 0, 'r'},
        {"out", required_argument, 0, 'o'},      {0, 0, 0, 0}};
    QaWorldConfig cfg;
    qa_world_config_default(&cfg);
    double at = 0;
    long long n = 1000, v, sample_seed = 0;
    int all_facts = 0;
    QaPhrasingSet set = QA_PHRASING_TRAIN;
    const char *out = NULL;
    DpError err;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!cli_parse_int("data", "--seed", optarg, 0, INT64_MAX, &v)) return 2;
            cfg.seed = (uint64_t)v;
            break;
        case 't':
            if (dp_parse_duration(optarg, &at, &err)) return cli_usage_error("data", "--at: %s", err.msg);
            break;
        case 'n':
            if (!cli_parse_int("data", "--n", optarg, 0, 100000000, &n)) return 2;
            break;
        case 'd':
            if (qa_world_schedule_parse(optarg, &cfg, &err)) return cli_usage_error("data", "--schedule: %s", err.msg);
            break;
        case 'S':
            if (!cli_parse_int("data", "--services", optarg, 1, 2900, &v)) return 2;
            cfg.n_services = (int)v;
            break;
        case 'N':
            if (!cli_parse_double("data", "--new-per-hour", optarg, 0, 1e6, &cfg.new_per_hour)) return 2;
            break;
        case 'a':
            if (!parse_attrs(optarg, &cfg.attributes)) return 2;
            break;
        case 'F': all_facts = 1; break;
        case 'p':
            if (!strcmp(optarg, "train")) set = QA_PHRASING_TRAIN;
            else if (!strcmp(optarg, "heldout")) set = QA_PHRASING_HELDOUT;
            else if (!strcmp(optarg, "all")) set = QA_PHRASING_ALL;
            else return cli_usage_error("data", "--phrasings: expected train, heldout or all, got '%s'", optarg);
            break;
        case 'r':
            if (!cli_parse_int("data", "--sample-seed", optarg, 0, INT64_MAX, &sample_seed)) return 2;
            break;
        case 'o': out = optarg; break;
        default: return cli_usage_error("data", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc) return cli_usage_error("data", "unexpected argument '%s'", argv[optind]);
    if (!out) return cli_usage_error("data", "world: --out FILE is required");

    int rc = 0;
    QaWorld *w = NULL;
    QaDataset ds;
    qa_dataset_init(&ds);
    if (qa_world_create(&cfg, &w, &err)) return cli_fail("data", "%s", err.msg);
    DpStatus st = all_facts ? qa_world_all_facts(w, at, set, &ds, &err)
                            : qa_world_generate(w, at, (size_t)n, (uint64_t)sample_seed, &ds, &err);
    if (!st) st = qa_squad_save(&ds, out, &err);
    if (st) rc = cli_fail("data", "%s", err.msg);
    else {
        char sched[96];
        qa_world_schedule_format(&cfg.drift, sched, sizeof sched);
        fprintf(stderr, "wrote %zu questions to %s (t=%gs, schedule %s, %d services, changed fraction %.3f)\n",
                ds.n_items, out, at, sched, qa_world_n_entities_at(w, at), qa_world_changed_fraction(w, at));
    }
    qa_dataset_free(&ds);
    qa_world_destroy(w);
    return rc;
}

/* Prints mean, median, p95 and max of x[0..n). */
static void print_stats(const char *label, double *x, size_t n) {
    if (n == 0) {
        printf("  %-28s (none)\n", label);
        return;
    }
    double mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    printf("  %-28s mean %.1f  median %.0f  p95 %.0f  max %.0f\n", label, dp_mean(x, n), dp_quantile(x, n, 0.5),
           dp_quantile(x, n, 0.95), mx);
}

static double count_words(const char *s) {
    double n = 0;
    int in = 0;
    for (; *s; s++) {
        int sp = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

static int cmd_describe(int argc, char **argv) {
    if (argc != 2) return cli_usage_error("data", "describe: expected one FILE");
    QaDataset ds;
    qa_dataset_init(&ds);
    DpError err;
    double t0 = dp_time_mono();
    if (qa_squad_load(argv[1], &ds, &err)) return cli_fail("data", "%s", err.msg);
    double load_s = dp_time_mono() - t0;
    size_t n = ds.n_items, answerable = 0, impossible = 0, with_plausible = 0, n_answers = 0;
    size_t by_kind[QA_N_KINDS] = {0}, changed = 0, with_changed = 0;
    double *alen = malloc((n ? n : 1) * sizeof *alen), *awords = malloc((n ? n : 1) * sizeof *awords);
    double *qwords = malloc((n ? n : 1) * sizeof *qwords);
    double *clen = malloc((n ? n : 1) * sizeof *clen), *cwords = malloc((n ? n : 1) * sizeof *cwords);
    if (!alen || !awords || !qwords || !clen || !cwords) {
        free(alen), free(awords), free(qwords), free(clen), free(cwords);
        qa_dataset_free(&ds);
        return cli_fail("data", "out of memory");
    }
    size_t na = 0, nc = 0;
    for (size_t i = 0; i < n; i++) {
        const QaItem *it = &ds.items[i];
        if (it->is_impossible) impossible++;
        else if (it->n_answers > 0) answerable++;
        if (it->n_plausible) with_plausible++;
        n_answers += (size_t)it->n_answers;
        by_kind[it->kind]++;
        if (it->changed >= 0) {
            with_changed++;
            changed += (size_t)it->changed;
        }
        if (it->n_answers > 0) {
            alen[na] = (double)qa_utf8_count(it->answers[0].text, strlen(it->answers[0].text));
            awords[na++] = count_words(it->answers[0].text);
        }
        qwords[i] = count_words(it->question);
        if (i == 0 || it->paragraph != ds.items[i - 1].paragraph) {
            clen[nc] = (double)qa_utf8_count(it->context, strlen(it->context));
            cwords[nc++] = count_words(it->context);
        }
    }
    printf("%s (SQuAD version %s, loaded in %.3f s)\n", argv[1], ds.version, load_s);
    printf("  articles                     %d\n", ds.n_articles);
    printf("  paragraphs                   %d\n", ds.n_paragraphs);
    printf("  questions                    %zu\n", n);
    printf("  answerable                   %zu\n", answerable);
    printf("  impossible (SQuAD 2.0)       %zu (%zu with plausible answers)\n", impossible, with_plausible);
    printf("  answers per answerable q.    %.2f\n", answerable ? (double)n_answers / (double)answerable : 0.0);
    printf("  answer spans not matching    %d\n", ds.n_bad_spans);
    if (by_kind[QA_KIND_NONE] != n) {
        printf("  by kind:");
        for (int k = 0; k < QA_N_KINDS; k++)
            if (by_kind[k]) printf(" %s %zu", qa_kind_name((QaKind)k), by_kind[k]);
        printf("\n");
    }
    if (with_changed) printf("  facts changed since t=0      %zu of %zu\n", changed, with_changed);
    print_stats("answer length (chars)", alen, na);
    print_stats("answer length (words)", awords, na);
    print_stats("question length (words)", qwords, n);
    print_stats("context length (chars)", clen, nc);
    print_stats("context length (words)", cwords, nc);
    free(alen), free(awords), free(qwords), free(clen), free(cwords);
    qa_dataset_free(&ds);
    return 0;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "world")) return cmd_world(argc - 1, argv + 1);
    if (!strcmp(argv[1], "describe")) return cmd_describe(argc - 1, argv + 1);
    return cli_usage_error("data", "unknown subcommand '%s' (world, describe)", argv[1]);
}

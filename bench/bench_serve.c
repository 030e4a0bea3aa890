/* bench_serve: how much load the inference service holds.
 *
 * Starts the service in this process on 127.0.0.1:0 and drives it with the
 * open-loop load generator (src/loadgen: Poisson arrivals, questions from the
 * drifting world, latency from the intended send time), at rising steady
 * rates, with batching on and then off.  A rate "holds" when every request
 * succeeded and p99 latency is under --slo-ms (100); it "keeps up" when p50
 * is (the service is not saturated; on a shared machine the p99 is mostly
 * other processes' noise).  The soak runs at the best held rate, else the
 * best rate that keeps up.  Also reports resident
 * memory at each step (flat means no leak per request) and the time to
 * render /metrics over HTTP.  Prints one JSON object on stdout.
 *
 *     bench_serve --model DIR [--duration 20s] [--rates 25,50,100,200,300]
 *                 [--max-new-tokens 16] [--slo-ms 100] [--threads 1] [--soak 60s]
 *                 [--only on|off] [--random-weights] [--random-arch L,C,H]
 *                 [--batch-wait-ms N]
 *
 * The load generator and the service share the machine, as they would on
 * one host; on the project's shared 2-core box the numbers are noisy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "loadgen.h"
#include "metrics.h"
#include "nn.h"
#include "serve.h"

#define MAX_RATES 32
#define SOAK_CHUNKS 6

/* Soak: after the sweep with batching on, the best held rate for soak_s
 * seconds in SOAK_CHUNKS runs, resident memory after each (flat = no leak). */
static double soak_s = 0, soak_rate = 0;
static double soak_rss[SOAK_CHUNKS], soak_p99[SOAK_CHUNKS];
static unsigned long long soak_ok, soak_err;

typedef struct {
    double rate, achieved, p50, p95, p99, max;
    unsigned long long arrivals, ok, errors;
    double rss_mb;
    double cpu_ms_per_req; /* service CPU per request: process CPU minus the load
                              generator's own; robust to other processes' load */
    int holds;             /* no errors and p99 < slo */
    int keeps_up;          /* no errors and p50 < slo: not saturated, whatever the tail */
} Step;

/* --random-weights: the model's architecture and tokenizer with random
 * weights (gpt2_create), saved to a temp dir.  A random model rarely emits a
 * newline, so every request decodes max_new_tokens tokens: the decode-heavy
 * case, where batching matters most (a barely trained model answers in one
 * token and the load is all prefill). */
static int arch_layers = 0, arch_embd = 0, arch_heads = 0; /* --random-arch L,C,H */
static int batch_wait_ms = -1; /* --batch-wait-ms (default: the service's) */

static int make_random_copy(const char *model, char *out, size_t cap) {
    DpError err = {0};
    Gpt2 *m = NULL, *r = NULL;
    BpeTokenizer *tok = NULL;
    snprintf(out, cap, "/tmp/bench_serve_random_XXXXXX");
    int ok = mkdtemp(out) != NULL && gpt2_load_dir(model, &m, &err) == DP_OK &&
             bpe_load_dir(model, &tok, &err) == DP_OK;
    if (ok && arch_layers > 0) {
        m->config.n_layer = arch_layers;
        m->config.n_embd = arch_embd;
        m->config.n_head = arch_heads;
        m->config.n_inner = 4 * arch_embd;
    }
    ok = ok && gpt2_create(&m->config, 7, &r, &err) == DP_OK &&
         gpt2_save_dir(r, out, NULL, &err) == DP_OK && bpe_save_dir(tok, out, &err) == DP_OK;
    if (!ok) fprintf(stderr, "bench_serve: random copy: %s\n", err.msg);
    gpt2_free(m);
    gpt2_free(r);
    bpe_free(tok);
    return ok;
}

static double rss_mb(void) {
    MetricsProcessInfo pi;
    DpError err;
    return metrics_process_read(&pi, &err) == DP_OK ? pi.resident_bytes / 1048576.0 : -1;
}

static int run_mode(const char *model, int batching, const double *rates, int n_rates,
                    double duration, int max_new, double slo_ms, int threads, Step *steps,
                    int *n_steps, double *render_ms_p50, double *render_ms_p99,
                    size_t *render_bytes) {
    DpError err = {0};
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model;
    cfg.port = 0;
    cfg.batching = batching;
    cfg.compute_threads = threads;
    if (batch_wait_ms >= 0) cfg.batch_wait_ms = batch_wait_ms;
    Serve *s = NULL;
    int port = 0;
    if (serve_create(&cfg, &s, &err) || serve_start(s, &port, &err)) {
        fprintf(stderr, "bench_serve: %s\n", err.msg);
        serve_destroy(s);
        return 0;
    }
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    *n_steps = 0;
    for (int i = 0; i < n_rates + (batching && soak_s > 0 ? SOAK_CHUNKS : 0); i++) {
        int soak = i >= n_rates;
        if (soak && i == n_rates) {
            soak_rate = 0;
            for (int k = 0; k < *n_steps; k++)
                if (steps[k].holds && steps[k].rate > soak_rate) soak_rate = steps[k].rate;
            for (int k = 0; k < *n_steps && soak_rate <= 0; k++)
                if (steps[k].keeps_up && steps[k].rate > soak_rate) soak_rate = steps[k].rate;
            if (soak_rate <= 0) break;
        }
        LoadgenConfig lc;
        loadgen_config_default(&lc);
        if (loadgen_target_parse(url, &lc.targets[0], &err)) break;
        lc.n_targets = 1;
        lc.schedule.kind = LOADGEN_SCHED_STEADY;
        lc.schedule.rate = soak ? soak_rate : rates[i];
        lc.duration_s = soak ? soak_s / SOAK_CHUNKS : duration;
        lc.max_new_tokens = max_new;
        lc.feedback_fraction = 0.2;
        lc.timeout_s = 5;
        lc.seed = 1 + (uint64_t)i;
        LoadgenSummary sum;
        MetricsProcessInfo pi0, pi1;
        metrics_process_read(&pi0, &err);
        if (loadgen_run(&lc, &sum, &err) != DP_OK) {
            fprintf(stderr, "bench_serve: loadgen: %s\n", err.msg);
            break;
        }
        metrics_process_read(&pi1, &err);
        double cpu_ms =
            sum.ok ? (pi1.cpu_seconds - pi0.cpu_seconds - sum.cpu_s) * 1000 / sum.ok : 0;
        if (soak) {
            int c = i - n_rates;
            soak_rss[c] = rss_mb();
            soak_p99[c] = sum.latency.p99;
            soak_ok += sum.ok;
            soak_err += sum.errors;
            fprintf(stderr, "soak %d/%d at %g/s: p99 %.1f ms rss %.1f MB\n", c + 1, SOAK_CHUNKS,
                    soak_rate, sum.latency.p99, soak_rss[c]);
            continue;
        }
        Step *st = &steps[(*n_steps)++];
        st->rate = rates[i];
        st->achieved = sum.achieved_rate;
        st->p50 = sum.latency.p50;
        st->p95 = sum.latency.p95;
        st->p99 = sum.latency.p99;
        st->max = sum.latency.max;
        st->arrivals = sum.arrivals;
        st->ok = sum.ok;
        st->errors = sum.errors;
        st->rss_mb = rss_mb();
        st->cpu_ms_per_req = cpu_ms;
        st->holds = sum.errors == 0 && sum.ok > 0 && sum.latency.p99 < slo_ms;
        st->keeps_up = sum.errors == 0 && sum.ok > 0 && sum.latency.p50 < slo_ms;
        fprintf(stderr,
                "batching %s rate %6.1f: ok %llu/%llu p50 %.1f p99 %.1f ms rss %.1f MB "
                "cpu %.2f ms/req%s\n",
                batching ? "on " : "off", rates[i], (unsigned long long)sum.ok,
                (unsigned long long)sum.arrivals, sum.latency.p50, sum.latency.p99, st->rss_mb,
                cpu_ms, st->holds ? "" : "  (does not hold)");
        /* Past saturation latency only explodes: stop after two rates that
         * do not keep up.  (A p99 miss alone may be the machine's noise.) */
        if (*n_steps >= 2 && !steps[*n_steps - 1].keeps_up && !steps[*n_steps - 2].keeps_up)
            i = n_rates - 1;
    }
    /* /metrics render time over HTTP, after the traffic above. */
    char murl[160];
    snprintf(murl, sizeof murl, "%s/metrics", url);
    double t[200];
    int n = 0;
    for (int k = 0; k < 200; k++) {
        char *body = NULL;
        size_t len = 0;
        int status = 0;
        double t0 = dp_time_mono();
        if (metrics_http_get(murl, 5, &body, &len, &status, &err) == DP_OK && status == 200) {
            t[n++] = (dp_time_mono() - t0) * 1000;
            *render_bytes = len;
        }
        free(body);
    }
    *render_ms_p50 = n ? dp_quantile(t, (size_t)n, 0.5) : -1;
    *render_ms_p99 = n ? dp_quantile(t, (size_t)n, 0.99) : -1;
    serve_destroy(s);
    return 1;
}

static void print_mode(const char *name, const Step *st, int n, double r50, double r99,
                       size_t rbytes, int last) {
    double best = 0, up = 0;
    for (int i = 0; i < n; i++) {
        if (st[i].holds && st[i].rate > best) best = st[i].rate;
        if (st[i].keeps_up && st[i].rate > up) up = st[i].rate;
    }
    printf("  \"%s\": {\"max_rate_held_p99\": %g, \"max_rate_unsaturated_p50\": %g, "
           "\"metrics_render_ms_p50\": %.3f, \"metrics_render_ms_p99\": %.3f, "
           "\"metrics_bytes\": %zu, \"steps\": [\n",
           name, best, up, r50, r99, rbytes);
    for (int i = 0; i < n; i++)
        printf("    {\"rate\": %g, \"achieved\": %.2f, \"arrivals\": %llu, \"ok\": %llu, "
               "\"errors\": %llu, \"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f, "
               "\"max_ms\": %.2f, \"rss_mb\": %.1f, \"cpu_ms_per_request\": %.3f, "
               "\"holds\": %s, \"keeps_up\": %s}%s\n",
               st[i].rate, st[i].achieved, st[i].arrivals, st[i].ok, st[i].errors, st[i].p50,
               st[i].p95, st[i].p99, st[i].max, st[i].rss_mb, st[i].cpu_ms_per_req,
               st[i].holds ? "true" : "false", st[i].keeps_up ? "true" : "false",
               i + 1 < n ? "," : "");
    printf("  ]}%s\n", last ? "" : ",");
}

int main(int argc, char **argv) {
    const char *model = NULL;
    double duration = 20, slo = 100;
    int max_new = 16, threads = 1, only = -1, random_weights = 0;
    double rates[MAX_RATES] = {25, 50, 100, 150, 200, 300, 400};
    int n_rates = 7;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        DpError err;
        if (!strcmp(a, "--model") && v) {
            model = v;
            i++;
        } else if (!strcmp(a, "--duration") && v) {
            if (dp_parse_duration(v, &duration, &err)) {
                fprintf(stderr, "bench_serve: %s\n", err.msg);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--rates") && v) {
            n_rates = 0;
            for (const char *p = v; *p && n_rates < MAX_RATES;) {
                rates[n_rates++] = strtod(p, NULL);
                const char *c = strchr(p, ',');
                if (!c) break;
                p = c + 1;
            }
            i++;
        } else if (!strcmp(a, "--max-new-tokens") && v) {
            max_new = atoi(v);
            i++;
        } else if (!strcmp(a, "--slo-ms") && v) {
            slo = strtod(v, NULL);
            i++;
        } else if (!strcmp(a, "--threads") && v) {
            threads = atoi(v);
            i++;
        } else if (!strcmp(a, "--batch-wait-ms") && v) {
            batch_wait_ms = atoi(v);
            i++;
        } else if (!strcmp(a, "--random-weights")) {
            random_weights = 1;
        } else if (!strcmp(a, "--random-arch") && v) {
            /* e.g. 6,768,12: DistilGPT-2's shape, with the model's tokenizer */
            if (sscanf(v, "%d,%d,%d", &arch_layers, &arch_embd, &arch_heads) != 3 ||
                arch_layers < 1 || arch_embd < 8 || arch_heads < 1 || arch_embd % arch_heads) {
                fprintf(stderr, "bench_serve: --random-arch L,C,H (C divisible by H)\n");
                return 2;
            }
            random_weights = 1;
            i++;
        } else if (!strcmp(a, "--soak") && v) {
            if (dp_parse_duration(v, &soak_s, &err)) {
                fprintf(stderr, "bench_serve: %s\n", err.msg);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--only") && v) { /* on | off */
            only = !strcmp(v, "on");
            i++;
        } else {
            fprintf(
                stderr,
                "usage: bench_serve --model DIR [--duration 20s] [--rates 25,50,...] "
                "[--max-new-tokens 16] [--slo-ms 100] [--threads 1] [--soak 60s] "
                "[--only on|off] [--random-weights] [--random-arch L,C,H] [--batch-wait-ms N]\n");
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr,
                "bench_serve: --model DIR is required (a GPT-2 directory with tokenizer)\n");
        return 2;
    }
    char random_dir[64] = "";
    if (random_weights) {
        if (!make_random_copy(model, random_dir, sizeof random_dir)) return 1;
        model = random_dir;
    }
    Step on[MAX_RATES], off[MAX_RATES];
    int n_on = 0, n_off = 0;
    double on50 = 0, on99 = 0, off50 = 0, off99 = 0;
    size_t onb = 0, offb = 0;
    double rss0 = rss_mb();
    if (only != 0 && !run_mode(model, 1, rates, n_rates, duration, max_new, slo, threads, on, &n_on,
                               &on50, &on99, &onb))
        return 1;
    if (only != 1 && !run_mode(model, 0, rates, n_rates, duration, max_new, slo, threads, off,
                               &n_off, &off50, &off99, &offb))
        return 1;
    printf(
        "{\n  \"model\": \"%s\", \"random_weights\": %s, \"arch\": [%d, %d, %d], \"duration_s\": "
        "%g, \"max_new_tokens\": %d, \"slo_p99_ms\": %g, "
        "\"threads\": %d, \"batch_wait_ms\": %d, \"rss_mb_start\": %.1f, \"rss_mb_end\": %.1f,\n",
        model, random_weights ? "true" : "false", arch_layers, arch_embd, arch_heads, duration,
        max_new, slo, threads, batch_wait_ms, rss0, rss_mb());
    if (soak_s > 0 && soak_rate > 0) {
        printf("  \"soak\": {\"rate\": %g, \"seconds\": %g, \"ok\": %llu, \"errors\": %llu, "
               "\"rss_mb\": [",
               soak_rate, soak_s, soak_ok, soak_err);
        for (int c = 0; c < SOAK_CHUNKS; c++)
            printf("%s%.1f", c ? ", " : "", soak_rss[c]);
        printf("], \"p99_ms\": [");
        for (int c = 0; c < SOAK_CHUNKS; c++)
            printf("%s%.1f", c ? ", " : "", soak_p99[c]);
        printf("]},\n");
    }
    if (only != 0) print_mode("batching_on", on, n_on, on50, on99, onb, only == 1);
    if (only != 1) print_mode("batching_off", off, n_off, off50, off99, offb, 1);
    printf("}\n");
    if (random_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", random_dir);
        if (system(cmd) != 0) fprintf(stderr, "bench_serve: could not remove %s\n", random_dir);
    }
    return 0;
}

/* `driftpilot serve`: the inference service (see src/serve/serve.h).  Runs
 * until SIGTERM or SIGINT, then stops gracefully: no new connections,
 * requests in flight finish, the feedback log is flushed and synced. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"

static void usage(void) {
    printf("usage: driftpilot serve (--model DIR | --registry DIR --target NAME) [options]\n"
           "\n"
           "Serves a GPT-2 question-answering model over HTTP:\n"
           "  POST /predict {question, context?, max_new_tokens?, temperature?, top_k?, top_p?}\n"
           "  POST /feedback {id, reference} or {question, prediction, reference}\n"
           "  GET /healthz, GET /metrics (Prometheus text)\n"
           "  POST /admin/reload {version} or {model_dir} (needs 'Authorization: Bearer TOKEN')\n"
           "\n"
           "  --model DIR             a Hugging Face GPT-2 directory (config.json,\n"
           "                          model.safetensors, vocab.json, merges.txt)\n"
           "  --registry DIR          serve the current version of --target in this registry\n"
           "  --target NAME           deployment target name (reported in answers and metrics;\n"
           "                          default \"local\")\n"
           "  --listen HOST:PORT      IPv4 address and port (default 127.0.0.1:8001; port 0: any\n"
           "                          free port, printed on stdout)\n"
           "  --feedback-log FILE     append labelled requests as JSON lines (for retraining)\n"
           "  --admin-token-file F    bearer token for /admin/ (else $DRIFTPILOT_ADMIN_TOKEN;\n"
           "                          without either, admin routes answer 403)\n"
           "  --batch-wait-ms N       how long an idle scheduler waits for more requests (5;\n"
           "                          only when they arrive closer together than that)\n"
           "  --max-batch N           sequences decoded together (16)\n"
           "  --no-batching           one request at a time (for comparison)\n"
           "  --max-context N         KV-cache tokens per sequence (default: model's, <= 256)\n"
           "  --max-new-tokens N      largest max_new_tokens a request may ask (128)\n"
           "  --max-body BYTES        larger bodies answer 413 (65536)\n"
           "  --window N              labelled requests in the rolling scores (200)\n"
           "  --timeout SEC           drop idle or slow connections after SEC (10)\n"
           "  --seed N                sampling seed (1)\n"
           "  --threads N             compute threads of the model (1: best next to the HTTP\n"
           "                          threads on a small machine; 0: OpenMP's default)\n"
           "  --port-file FILE        also write the port to FILE\n"
           "\n"
           "Stops gracefully on SIGTERM or SIGINT.  Example:\n"
           "  driftpilot serve --registry .driftpilot/registry --target aws --listen "
           "127.0.0.1:8001 \\\n"
           "      --feedback-log labelled.jsonl\n");
}

static int read_token(const char *path, char **out, DpError *err) {
    char *text = NULL;
    size_t len = 0;
    if (dp_read_file(path, &text, &len, err) != DP_OK) return 0;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = 0;
    if (!len) {
        free(text);
        dp_fail(err, DP_ERR_INVAL, "%s is empty", path);
        return 0;
    }
    *out = text;
    return 1;
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve";
    if (cli_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    enum {
        O_MODEL = 1,
        O_REGISTRY,
        O_TARGET,
        O_LISTEN,
        O_FBLOG,
        O_TOKEN,
        O_WAIT,
        O_MAXBATCH,
        O_NOBATCH,
        O_MAXCTX,
        O_MAXNEW,
        O_MAXBODY,
        O_WINDOW,
        O_TIMEOUT,
        O_SEED,
        O_PORTFILE,
        O_THREADS
    };
    static const struct option opts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"registry", required_argument, NULL, O_REGISTRY},
        {"target", required_argument, NULL, O_TARGET},
        {"listen", required_argument, NULL, O_LISTEN},
        {"feedback-log", required_argument, NULL, O_FBLOG},
        {"admin-token-file", required_argument, NULL, O_TOKEN},
        {"batch-wait-ms", required_argument, NULL, O_WAIT},
        {"max-batch", required_argument, NULL, O_MAXBATCH},
        {"no-batching", no_argument, NULL, O_NOBATCH},
        {"max-context", required_argument, NULL, O_MAXCTX},
        {"max-new-tokens", required_argument, NULL, O_MAXNEW},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"window", required_argument, NULL, O_WINDOW},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"seed", required_argument, NULL, O_SEED},
        {"port-file", required_argument, NULL, O_PORTFILE},
        {"threads", required_argument, NULL, O_THREADS},
        {NULL, 0, NULL, 0},
    };
    ServeConfig cfg;
    serve_config_default(&cfg);
    const char *token_file = NULL, *port_file = NULL;
    char host[64] = "127.0.0.1";
    long long v;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: cfg.model_dir = optarg; break;
        case O_REGISTRY: cfg.registry_dir = optarg; break;
        case O_TARGET: cfg.target = optarg; break;
        case O_LISTEN: {
            const char *colon = strrchr(optarg, ':');
            if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof host)
                return cli_usage_error(cmd, "--listen: expected HOST:PORT, got '%s'", optarg);
            memcpy(host, optarg, (size_t)(colon - optarg));
            host[colon - optarg] = 0;
            if (!cli_parse_int(cmd, "--listen port", colon + 1, 0, 65535, &v)) return 2;
            cfg.port = (int)v;
            break;
        }
        case O_FBLOG: cfg.feedback_log = optarg; break;
        case O_TOKEN: token_file = optarg; break;
        case O_WAIT:
            if (!cli_parse_int(cmd, "--batch-wait-ms", optarg, 0, 1000, &v)) return 2;
            cfg.batch_wait_ms = (int)v;
            break;
        case O_MAXBATCH:
            if (!cli_parse_int(cmd, "--max-batch", optarg, 1, 256, &v)) return 2;
            cfg.max_batch = (int)v;
            break;
        case O_NOBATCH: cfg.batching = 0; break;
        case O_MAXCTX:
            if (!cli_parse_int(cmd, "--max-context", optarg, 2, 1 << 20, &v)) return 2;
            cfg.max_context = (int)v;
            break;
        case O_MAXNEW:
            if (!cli_parse_int(cmd, "--max-new-tokens", optarg, 1, 4096, &v)) return 2;
            cfg.max_new_tokens_limit = (int)v;
            if (cfg.default_max_new_tokens > cfg.max_new_tokens_limit)
                cfg.default_max_new_tokens = cfg.max_new_tokens_limit;
            break;
        case O_MAXBODY:
            if (!cli_parse_int(cmd, "--max-body", optarg, 64, 1LL << 30, &v)) return 2;
            cfg.max_body_bytes = (size_t)v;
            break;
        case O_WINDOW:
            if (!cli_parse_int(cmd, "--window", optarg, 1, 1000000, &v)) return 2;
            cfg.feedback_window = (int)v;
            break;
        case O_TIMEOUT:
            if (!cli_parse_int(cmd, "--timeout", optarg, 1, 3600, &v)) return 2;
            cfg.connection_timeout_s = (int)v;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (1LL << 62), &v)) return 2;
            cfg.seed = (uint64_t)v;
            break;
        case O_PORTFILE: port_file = optarg; break;
        case O_THREADS:
            if (!cli_parse_int(cmd, "--threads", optarg, 0, 256, &v)) return 2;
            cfg.compute_threads = (int)v;
            break;
        default: return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!cfg.model_dir == !cfg.registry_dir)
        return cli_usage_error(cmd, "give exactly one of --model DIR and --registry DIR");
    if (cfg.registry_dir && !cfg.target)
        return cli_usage_error(cmd, "--registry needs --target NAME");
    cfg.listen_host = host;

    DpError err = {0};
    char *token = NULL;
    if (token_file) {
        if (!read_token(token_file, &token, &err)) return cli_fail(cmd, "admin token: %s", err.msg);
    } else if (getenv("DRIFTPILOT_ADMIN_TOKEN") && getenv("DRIFTPILOT_ADMIN_TOKEN")[0]) {
        token = dp_strdup(getenv("DRIFTPILOT_ADMIN_TOKEN"));
    }
    cfg.admin_token = token;

    /* Block the stop signals in every thread (MHD's and the scheduler
     * inherit the mask) and wait for them here. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    Serve *s = NULL;
    int port = 0;
    if (serve_create(&cfg, &s, &err) != DP_OK || serve_start(s, &port, &err) != DP_OK) {
        serve_destroy(s);
        free(token);
        return cli_fail(cmd, "%s", err.msg);
    }
    printf("listening on http://%s:%d\n", host, port);
    fflush(stdout);
    if (port_file) {
        char text[32];
        int n = snprintf(text, sizeof text, "%d\n", port);
        if (dp_write_file_atomic(port_file, text, (size_t)n, &err) != DP_OK) {
            serve_destroy(s);
            free(token);
            return cli_fail(cmd, "%s", err.msg);
        }
    }
    int sig = 0;
    sigwait(&stop, &sig);
    dp_info("serve: %s, draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_stop(s);
    serve_destroy(s);
    free(token);
    return 0;
}

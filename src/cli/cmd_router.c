/* `driftpilot router`: the HTTP front door that forwards /predict and
 * /feedback to the active target, fails over, and serves its own /metrics.
 * Runs until SIGTERM or SIGINT, then stops gracefully (in-flight requests
 * finish). */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "deploy.h"

static void usage(void) {
    printf(
        "usage: driftpilot router [--config FILE] [--listen HOST:PORT]\n"
        "                         [--target NAME=URL[,DISTANCE_MS]]... [--active NAME]\n"
        "                         [--emulate-distance] [--health-interval DUR]\n"
        "                         [--admin-token-file FILE] [--max-body BYTES]\n"
        "                         [--port-file FILE] [--check]\n"
        "\n"
        "Forwards POST /predict and POST /feedback to the active target; fails over to a\n"
        "healthy target when the active one stops answering (a failed /predict is retried\n"
        "once on another target); serves GET /metrics, GET /healthz and\n"
        "POST /admin/route {\"target\": NAME} (needs 'Authorization: Bearer TOKEN').\n"
        "\n"
        "  --config FILE          targets and [router] settings from a driftpilot TOML file\n"
        "  --listen HOST:PORT     address to listen on (default 127.0.0.1:8080; port 0: any)\n"
        "  --target SPEC          a target: name=http://host:port[,distance_ms] (repeatable;\n"
        "                         added to those of --config)\n"
        "  --active NAME          the target that gets traffic first (default: the first)\n"
        "  --emulate-distance     sleep each target's distance_ms before forwarding to it\n"
        "  --health-interval DUR  GET /healthz of every target this often (default 1s; 0: off)\n"
        "  --admin-token-file F   bearer token for /admin/route (else $DRIFTPILOT_ADMIN_TOKEN;\n"
        "                         without either, /admin/route answers 403)\n"
        "  --max-body BYTES       larger request bodies get 413 (default 1048576)\n"
        "  --port-file FILE       write the port listened on to FILE (useful with port 0)\n"
        "  --check                validate the configuration, print it, and exit\n"
        "\n"
        "Stops on SIGTERM or SIGINT.  Example:\n"
        "  driftpilot router --listen 127.0.0.1:8080 --emulate-distance \\\n"
        "      --target aws=http://127.0.0.1:8001,40 --target azure=http://127.0.0.1:8002,25\n");
}

static int read_token(const char *path, char *out, size_t cap, DpError *err) {
    char *text = NULL;
    size_t len = 0;
    if (dp_read_file(path, &text, &len, err) != DP_OK) return 0;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = 0;
    int ok = len > 0 && len < cap;
    if (ok) memcpy(out, text, len + 1);
    else dp_fail(err, DP_ERR_INVAL, "%s: empty or too long", path);
    free(text);
    return ok;
}

int cmd_router(int argc, char **argv) {
    const char *cmd = "router";
    if (cli_wants_help(argc, argv)) {
        usage();
        return 0;
    }
    enum { O_CONFIG = 1, O_LISTEN, O_TARGET, O_ACTIVE, O_EMULATE, O_HEALTH, O_TOKEN, O_MAXBODY,
           O_PORTFILE, O_CHECK };
    static const struct option opts[] = {
        {"config", required_argument, NULL, O_CONFIG},
        {"listen", required_argument, NULL, O_LISTEN},
        {"target", required_argument, NULL, O_TARGET},
        {"active", required_argument, NULL, O_ACTIVE},
        {"emulate-distance", no_argument, NULL, O_EMULATE},
        {"health-interval", required_argument, NULL, O_HEALTH},
        {"admin-token-file", required_argument, NULL, O_TOKEN},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"port-file", required_argument, NULL, O_PORTFILE},
        {"check", no_argument, NULL, O_CHECK},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *listen = NULL, *active = NULL, *health = NULL, *token_file = NULL,
               *port_file = NULL;
    const char *targets[DEPLOY_MAX_TARGETS];
    int n_targets = 0, emulate = 0, check = 0;
    long long max_body = -1;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_CONFIG: config = optarg; break;
        case O_LISTEN: listen = optarg; break;
        case O_TARGET:
            if (n_targets == DEPLOY_MAX_TARGETS)
                return cli_usage_error(cmd, "at most %d --target options", DEPLOY_MAX_TARGETS);
            targets[n_targets++] = optarg;
            break;
        case O_ACTIVE: active = optarg; break;
        case O_EMULATE: emulate = 1; break;
        case O_HEALTH: health = optarg; break;
        case O_TOKEN: token_file = optarg; break;
        case O_MAXBODY:
            if (!cli_parse_int(cmd, "--max-body", optarg, 1, 1LL << 30, &max_body)) return 2;
            break;
        case O_PORTFILE: port_file = optarg; break;
        case O_CHECK: check = 1; break;
        default:
            return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    DpError err = {0};
    RouterConfig rc;
    DeployConfig *cfg = NULL;
    router_config_defaults(&rc);
    if (router_config_set_listen(&rc, "127.0.0.1:8080", &err) != DP_OK) return cli_fail(cmd, "%s", err.msg);
    if (config) {
        cfg = malloc(sizeof *cfg);
        if (!cfg) return cli_fail(cmd, "out of memory");
        if (deploy_config_load(config, cfg, &err) != DP_OK ||
            router_config_from_deploy(cfg, &rc, &err) != DP_OK) {
            free(cfg);
            return cli_fail(cmd, "%s", err.msg);
        }
    }
    for (int i = 0; i < n_targets; i++)
        if (router_config_add_target(&rc, targets[i], &err) != DP_OK) {
            free(cfg);
            return cli_usage_error(cmd, "--target: %s", err.msg);
        }
    if (listen && router_config_set_listen(&rc, listen, &err) != DP_OK) {
        free(cfg);
        return cli_usage_error(cmd, "--listen: %s", err.msg);
    }
    if (active) snprintf(rc.active, sizeof rc.active, "%s", active);
    if (emulate) rc.emulate_distance = 1;
    if (health) {
        double s;
        if (!strcmp(health, "0")) s = 0;
        else if (dp_parse_duration(health, &s, &err) != DP_OK || !(s > 0)) {
            free(cfg);
            return cli_usage_error(cmd, "--health-interval: expected a duration such as 1s, got '%s'",
                                   health);
        }
        rc.health_interval_s = s;
    }
    if (max_body > 0) rc.max_body_bytes = (size_t)max_body;
    if (token_file) {
        if (!read_token(token_file, rc.admin_token, sizeof rc.admin_token, &err)) {
            free(cfg);
            return cli_fail(cmd, "admin token: %s", err.msg);
        }
    } else if (!rc.admin_token[0] && getenv("DRIFTPILOT_ADMIN_TOKEN") &&
               getenv("DRIFTPILOT_ADMIN_TOKEN")[0]) {
        snprintf(rc.admin_token, sizeof rc.admin_token, "%s", getenv("DRIFTPILOT_ADMIN_TOKEN"));
    }
    if (rc.n_targets == 0) {
        free(cfg);
        return cli_usage_error(cmd, "no targets: give --target or --config");
    }

    if (check) {
        DpBuf out = DP_BUF_INIT;
        if (cfg) deploy_config_describe(cfg, &out);
        dp_buf_printf(&out, "router: listen %s:%d, %d target(s), active %s, emulate distance %s, "
                            "health every %gs, admin %s\n",
                      rc.listen_host, rc.port, rc.n_targets, rc.active[0] ? rc.active : rc.targets[0].name,
                      rc.emulate_distance ? "on" : "off", rc.health_interval_s,
                      rc.admin_token[0] ? "enabled" : "disabled (no token)");
        for (int i = 0; i < rc.n_targets; i++)
            dp_buf_printf(&out, "  %s -> %s (distance %g ms)\n", rc.targets[i].name,
                          rc.targets[i].url, rc.targets[i].distance_ms);
        fputs(out.data ? out.data : "", stdout);
        dp_buf_free(&out);
        free(cfg);
        Router *probe = router_create(&rc, &err); /* checks --active too */
        if (!probe) return cli_fail(cmd, "%s", err.msg);
        router_destroy(probe);
        return 0;
    }
    free(cfg);

    /* Block the stop signals in every thread (MHD's and the health thread
     * inherit this mask) and wait for them here. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    Router *r = router_create(&rc, &err);
    if (!r) return cli_fail(cmd, "%s", err.msg);
    if (router_start(r, &err) != DP_OK) {
        router_destroy(r);
        return cli_fail(cmd, "%s", err.msg);
    }
    char act[DEPLOY_NAME_MAX];
    router_active(r, act, sizeof act);
    dp_info("router: listening on %s:%d, %d target(s), active %s%s", rc.listen_host, router_port(r),
            rc.n_targets, act, rc.emulate_distance ? ", emulating network distance" : "");
    if (port_file) {
        char text[32];
        int n = snprintf(text, sizeof text, "%d\n", router_port(r));
        if (dp_write_file_atomic(port_file, text, (size_t)n, &err) != DP_OK) {
            router_destroy(r);
            return cli_fail(cmd, "%s", err.msg);
        }
    }
    int sig = 0;
    sigwait(&stop, &sig);
    dp_info("router: %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    router_destroy(r);
    return 0;
}

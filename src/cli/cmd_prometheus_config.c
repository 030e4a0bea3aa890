/* `driftpilot prometheus-config`: writes the Prometheus scrape configuration
 * for the targets, router and controller of a driftpilot config (the
 * generator is control_prometheus_config in src/control). */
#include "cli.h"
#include "control.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMD "prometheus-config"

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot prometheus-config --config FILE [--out prometheus.yml]\n"
            "                                    [--controller HOST:PORT | --no-controller]\n"
            "                                    [--scrape-interval DUR] [--rules FILE]...\n\n"
            "Writes a prometheus.yml that scrapes every target's service (job driftpilot-serve,\n"
            "label dp_target=<name>, which the controller's PromQL selects on), the router\n"
            "(job driftpilot-router, [router] listen) and the controller's own /metrics\n"
            "(job driftpilot-control).  Without --out it goes to stdout.\n"
            "  --controller HOST:PORT   where `driftpilot control run` listens (127.0.0.1:9102)\n"
            "  --no-controller          leave the controller out\n"
            "  --scrape-interval DUR    default: decision interval / time_scale / 4, in [1s, 15s]\n"
            "  --rules FILE             add a rule file (repeatable), e.g.\n"
            "                           deploy/prometheus/recording-rules.yml\n");
}

int cmd_prometheus_config(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"out", required_argument, 0, 'o'},
                                         {"controller", required_argument, 0, 'C'},
                                         {"no-controller", no_argument, 0, 'n'},
                                         {"scrape-interval", required_argument, 0, 's'},
                                         {"rules", required_argument, 0, 'r'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *out = NULL, *controller = "127.0.0.1:9102";
    const char *rules[33] = {0};
    int n_rules = 0;
    double interval = 0;
    DpError err = {0};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'o': out = optarg; break;
        case 'C': controller = optarg; break;
        case 'n': controller = NULL; break;
        case 's':
            if (dp_parse_duration(optarg, &interval, &err))
                return cli_usage_error(CMD, "--scrape-interval: %s", err.msg);
            break;
        case 'r':
            if (n_rules >= 32) return cli_usage_error(CMD, "at most 32 --rules");
            rules[n_rules++] = optarg;
            break;
        default: return cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!config) return cli_usage_error(CMD, "--config FILE is required");
    DeployConfig *dc = dp_calloc(1, sizeof *dc);
    if (!dc) return cli_fail(CMD, "out of memory");
    int rc = 1;
    DpBuf y = DP_BUF_INIT;
    ControlPromConfigOptions po = {.scrape_interval_s = interval, .controller = controller,
                                   .rule_files = rules};
    if (deploy_config_load(config, dc, &err) || control_prometheus_config(dc, &po, &y, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (out) {
        if (dp_write_file_atomic(out, y.data, y.len, &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto out;
        }
    } else if (fwrite(y.data, 1, y.len, stdout) != y.len) {
        rc = cli_fail(CMD, "write failed");
        goto out;
    }
    rc = 0;
out:
    dp_buf_free(&y);
    free(dc);
    return rc;
}

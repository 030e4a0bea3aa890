/* `driftpilot ppo train|eval`: trains a PPO policy on a registered
 * environment (progress bar, CSV learning curve, policy file) and evaluates
 * a saved policy over whole episodes. */
#include "cli.h"
#include "rl.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot ppo train --env NAME --out FILE [options]\n"
            "       driftpilot ppo eval --policy FILE --env NAME [--episodes N] [--seed S]\n"
            "                           [--stochastic]\n\n"
            "train: PPO as Stable-Baselines3 defines it, on NAME (built in: cartpole; the\n"
            "simulator registers its own).  Defaults are SB3's PPO defaults; --preset\n"
            "cartpole applies RL Baselines3 Zoo's CartPole-v1 set first (8 envs, n_steps 32,\n"
            "batch 256, 20 epochs, gamma 0.98, lambda 0.8, lr and clip linear from 1e-3 and\n"
            "0.2, 100k steps) and any option given overrides it.\n"
            "  --env NAME            environment kind (required)\n"
            "  --out FILE            where to write the policy (required)\n"
            "  --steps N             environment steps in total (default 100000)\n"
            "  --seed S              seed of everything (default 0)\n"
            "  --preset NAME         cartpole\n"
            "  --n-envs N            parallel envs (default 1)\n"
            "  --n-steps N           rollout length per env (2048)\n"
            "  --batch-size N        minibatch size (64)\n"
            "  --epochs N            passes over each rollout (10)\n"
            "  --gamma X             discount (0.99)\n"
            "  --gae-lambda X        GAE lambda (0.95)\n"
            "  --lr X                initial learning rate (3e-4)\n"
            "  --lr-schedule S       constant|linear (constant)\n"
            "  --clip X              clip range (0.2)\n"
            "  --clip-schedule S     constant|linear (constant)\n"
            "  --clip-vf X           value clip range, 0 = none (0)\n"
            "  --ent-coef X          entropy coefficient (0)\n"
            "  --vf-coef X           value loss coefficient (0.5)\n"
            "  --max-grad-norm X     global gradient-norm clip, 0 = none (0.5)\n"
            "  --target-kl X         stop the epochs when approx KL > 1.5 X, 0 = none (0)\n"
            "  --hidden W,W,...      hidden widths of both nets (64,64)\n"
            "  --activation A        tanh|relu (tanh)\n"
            "  --normalize-obs       running observation normalisation (VecNormalize)\n"
            "  --normalize-reward    running reward scaling (VecNormalize)\n"
            "  --no-normalize-adv    do not normalise advantages per minibatch\n"
            "  --threads N           threads for the minibatch updates (1)\n"
            "  --curve FILE.csv      learning curve, one row per rollout\n"
            "  --quiet               no progress bar\n"
            "Same seed, build and --threads give the same policy bit for bit.\n\n"
            "eval: runs the policy (greedy unless --stochastic) for --episodes episodes\n"
            "(default 100) of one env seeded with --seed (default 1000) and prints\n"
            "\"mean_return M std S episodes N\" (std: sample standard deviation).\n");
}

typedef struct {
    DpProgress prog;
    DpBuf curve;
    int quiet;
    int want_curve;
    double last_return;
} TrainUi;

static int train_cb(const PpoIterInfo *in, void *user) {
    TrainUi *ui = user;
    ui->last_return = in->mean_return;
    if (ui->want_curve) {
        if (ui->curve.len == 0)
            dp_buf_printf(&ui->curve,
                          "steps,iteration,elapsed_s,episodes,mean_return,mean_length,"
                          "policy_loss,value_loss,entropy,approx_kl,clip_fraction,"
                          "explained_variance,learning_rate,clip_range,epochs_done\n");
        dp_buf_printf(&ui->curve, "%lld,%d,%.4f,%d,%.4f,%.2f,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d\n",
                      in->steps_done, in->iteration, in->elapsed_s, in->n_episodes,
                      in->mean_return, in->mean_length, in->policy_loss, in->value_loss,
                      in->entropy, in->approx_kl, in->clip_fraction, in->explained_variance,
                      in->learning_rate, in->clip_range, in->epochs_done);
    }
    if (!ui->quiet) {
        char extra[128];
        snprintf(extra, sizeof extra, "return %.1f  kl %.4f  ep %d", in->mean_return,
                 in->approx_kl, in->n_episodes);
        dp_progress_update(&ui->prog, (double)in->steps_done, extra);
    }
    return 0;
}

static int parse_schedule(const char *text, RlSchedule *out) {
    if (!strcmp(text, "linear")) *out = RL_SCHEDULE_LINEAR;
    else if (!strcmp(text, "constant")) *out = RL_SCHEDULE_CONSTANT;
    else return 0;
    return 1;
}

static int parse_hidden(const char *text, PpoConfig *cfg) {
    int n = 0;
    const char *p = text;
    if (!strcmp(text, "none") || !*text) {
        cfg->n_hidden = 0;
        return 1;
    }
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > RL_MLP_MAX_WIDTH || n >= PPO_MAX_HIDDEN) return 0;
        cfg->hidden[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return 0;
        p = end;
    }
    cfg->n_hidden = n;
    return n > 0;
}

enum {
    O_ENV = 1000, O_OUT, O_STEPS, O_SEED, O_PRESET, O_NENVS, O_NSTEPS, O_BATCH, O_EPOCHS, O_GAMMA,
    O_LAMBDA, O_LR, O_LRSCHED, O_CLIP, O_CLIPSCHED, O_CLIPVF, O_ENT, O_VF, O_MAXGRAD, O_TKL,
    O_HIDDEN, O_ACT, O_NOBS, O_NREW, O_NOADV, O_THREADS, O_CURVE, O_QUIET, O_POLICY, O_EPISODES,
    O_STOCH
};

static int cmd_train(int argc, char **argv) {
    const char *cmd = "ppo train";
    static const struct option opts[] = {
        {"env", required_argument, 0, O_ENV},
        {"out", required_argument, 0, O_OUT},
        {"steps", required_argument, 0, O_STEPS},
        {"seed", required_argument, 0, O_SEED},
        {"preset", required_argument, 0, O_PRESET},
        {"n-envs", required_argument, 0, O_NENVS},
        {"n-steps", required_argument, 0, O_NSTEPS},
        {"batch-size", required_argument, 0, O_BATCH},
        {"epochs", required_argument, 0, O_EPOCHS},
        {"gamma", required_argument, 0, O_GAMMA},
        {"gae-lambda", required_argument, 0, O_LAMBDA},
        {"lr", required_argument, 0, O_LR},
        {"lr-schedule", required_argument, 0, O_LRSCHED},
        {"clip", required_argument, 0, O_CLIP},
        {"clip-schedule", required_argument, 0, O_CLIPSCHED},
        {"clip-vf", required_argument, 0, O_CLIPVF},
        {"ent-coef", required_argument, 0, O_ENT},
        {"vf-coef", required_argument, 0, O_VF},
        {"max-grad-norm", required_argument, 0, O_MAXGRAD},
        {"target-kl", required_argument, 0, O_TKL},
        {"hidden", required_argument, 0, O_HIDDEN},
        {"activation", required_argument, 0, O_ACT},
        {"normalize-obs", no_argument, 0, O_NOBS},
        {"normalize-reward", no_argument, 0, O_NREW},
        {"no-normalize-adv", no_argument, 0, O_NOADV},
        {"threads", required_argument, 0, O_THREADS},
        {"curve", required_argument, 0, O_CURVE},
        {"quiet", no_argument, 0, O_QUIET},
        {0, 0, 0, 0}};
    PpoConfig cfg;
    ppo_config_default(&cfg);
    DpError err;
    const char *env_name = NULL, *out = NULL, *curve = NULL;
    long long steps = 100000, n_envs = 1, v = 0;
    int quiet = 0;
    /* The preset goes first so that explicit options override it. */
    for (int i = 1; i < argc; i++) {
        const char *name = NULL;
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) name = argv[i + 1];
        else if (!strncmp(argv[i], "--preset=", 9)) name = argv[i] + 9;
        if (!name) continue;
        if (ppo_config_preset(&cfg, name, &err)) return cli_usage_error(cmd, "%s", err.msg);
        if (!strcmp(name, "cartpole")) n_envs = 8;
    }
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ENV: env_name = optarg; break;
        case O_OUT: out = optarg; break;
        case O_CURVE: curve = optarg; break;
        case O_PRESET: break;
        case O_QUIET: quiet = 1; break;
        case O_NOBS: cfg.normalize_obs = 1; break;
        case O_NREW: cfg.normalize_reward = 1; break;
        case O_NOADV: cfg.normalize_advantage = 0; break;
        case O_STEPS:
            if (!cli_parse_int(cmd, "--steps", optarg, 1, (long long)1 << 50, &steps)) return 2;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &v)) return 2;
            cfg.seed = (uint64_t)v;
            break;
        case O_NENVS:
            if (!cli_parse_int(cmd, "--n-envs", optarg, 1, 65536, &n_envs)) return 2;
            break;
        case O_NSTEPS:
            if (!cli_parse_int(cmd, "--n-steps", optarg, 1, 1 << 24, &v)) return 2;
            cfg.n_steps = (int)v;
            break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch-size", optarg, 1, 1 << 24, &v)) return 2;
            cfg.batch_size = (int)v;
            break;
        case O_EPOCHS:
            if (!cli_parse_int(cmd, "--epochs", optarg, 1, 10000, &v)) return 2;
            cfg.n_epochs = (int)v;
            break;
        case O_THREADS:
            if (!cli_parse_int(cmd, "--threads", optarg, 1, 64, &v)) return 2;
            cfg.n_threads = (int)v;
            break;
        case O_GAMMA:
            if (!cli_parse_double(cmd, "--gamma", optarg, 0, 1, &cfg.gamma)) return 2;
            break;
        case O_LAMBDA:
            if (!cli_parse_double(cmd, "--gae-lambda", optarg, 0, 1, &cfg.gae_lambda)) return 2;
            break;
        case O_LR:
            if (!cli_parse_double(cmd, "--lr", optarg, 1e-12, 10, &cfg.learning_rate)) return 2;
            break;
        case O_CLIP:
            if (!cli_parse_double(cmd, "--clip", optarg, 1e-9, 10, &cfg.clip_range)) return 2;
            break;
        case O_CLIPVF:
            if (!cli_parse_double(cmd, "--clip-vf", optarg, 0, 1e9, &cfg.clip_range_vf)) return 2;
            break;
        case O_ENT:
            if (!cli_parse_double(cmd, "--ent-coef", optarg, 0, 1e3, &cfg.ent_coef)) return 2;
            break;
        case O_VF:
            if (!cli_parse_double(cmd, "--vf-coef", optarg, 0, 1e3, &cfg.vf_coef)) return 2;
            break;
        case O_MAXGRAD:
            if (!cli_parse_double(cmd, "--max-grad-norm", optarg, 0, 1e9, &cfg.max_grad_norm))
                return 2;
            break;
        case O_TKL:
            if (!cli_parse_double(cmd, "--target-kl", optarg, 0, 1e9, &cfg.target_kl)) return 2;
            break;
        case O_LRSCHED:
            if (!parse_schedule(optarg, &cfg.lr_schedule))
                return cli_usage_error(cmd, "--lr-schedule: expected constant or linear, got '%s'",
                                       optarg);
            break;
        case O_CLIPSCHED:
            if (!parse_schedule(optarg, &cfg.clip_schedule))
                return cli_usage_error(cmd,
                                       "--clip-schedule: expected constant or linear, got '%s'",
                                       optarg);
            break;
        case O_HIDDEN:
            if (!parse_hidden(optarg, &cfg))
                return cli_usage_error(cmd, "--hidden: expected widths like 64,64 (at most %d), got '%s'",
                                       PPO_MAX_HIDDEN, optarg);
            break;
        case O_ACT:
            if (!strcmp(optarg, "tanh")) cfg.activation = RL_ACT_TANH;
            else if (!strcmp(optarg, "relu")) cfg.activation = RL_ACT_RELU;
            else return cli_usage_error(cmd, "--activation: expected tanh or relu, got '%s'", optarg);
            break;
        default:
            return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!env_name) return cli_usage_error(cmd, "--env is required");
    if (!out) return cli_usage_error(cmd, "--out is required");
    if (ppo_config_check(&cfg, &err)) return cli_usage_error(cmd, "%s", err.msg);

    int rc = 1;
    RlEnv *env = NULL;
    Ppo *ppo = NULL;
    TrainUi ui;
    memset(&ui, 0, sizeof ui);
    ui.quiet = quiet;
    ui.want_curve = curve != NULL;
    if (rl_env_create(env_name, (int)n_envs, cfg.seed, NULL, &env, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    if (ppo_create(&cfg, env->obs_dim, env->n_actions, &ppo, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    dp_progress_init(&ui.prog, "ppo", (double)steps, "steps");
    double t0 = dp_time_mono();
    if (ppo_train(ppo, env, steps, train_cb, &ui, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    double secs = dp_time_mono() - t0;
    if (!quiet) dp_progress_finish(&ui.prog, NULL);
    if (ppo_policy_save(ppo_policy(ppo), out, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    if (curve && dp_write_file_atomic(curve, ui.curve.data ? ui.curve.data : "",
                                      ui.curve.len, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    printf("trained %s for %lld steps in %.2f s; mean return (last 100 episodes) %.2f; "
           "policy written to %s\n",
           env_name, steps, secs, ui.last_return, out);
    rc = 0;
out:
    dp_buf_free(&ui.curve);
    ppo_free(ppo);
    rl_env_destroy(env);
    return rc;
}

static int cmd_eval(int argc, char **argv) {
    const char *cmd = "ppo eval";
    static const struct option opts[] = {{"policy", required_argument, 0, O_POLICY},
                                         {"env", required_argument, 0, O_ENV},
                                         {"episodes", required_argument, 0, O_EPISODES},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"stochastic", no_argument, 0, O_STOCH},
                                         {0, 0, 0, 0}};
    const char *policy = NULL, *env_name = NULL;
    long long episodes = 100, seed = 1000;
    int stochastic = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_POLICY: policy = optarg; break;
        case O_ENV: env_name = optarg; break;
        case O_STOCH: stochastic = 1; break;
        case O_EPISODES:
            if (!cli_parse_int(cmd, "--episodes", optarg, 1, 100000000, &episodes)) return 2;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &seed)) return 2;
            break;
        default:
            return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!policy) return cli_usage_error(cmd, "--policy is required");
    if (!env_name) return cli_usage_error(cmd, "--env is required");
    DpError err;
    PpoPolicy *p = NULL;
    if (ppo_policy_load(policy, &p, &err)) return cli_fail(cmd, "%s", err.msg);
    double mean = 0, sd = 0;
    DpStatus st = ppo_evaluate(p, env_name, (int)episodes, (uint64_t)seed, !stochastic, &mean,
                               &sd, &err);
    ppo_policy_free(p);
    if (st) return cli_fail(cmd, "%s", err.msg);
    printf("mean_return %.2f std %.2f episodes %lld\n", mean, sd, episodes);
    return 0;
}

int cmd_ppo(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 1, argv + 1);
    return cli_usage_error("ppo", "unknown subcommand '%s' (expected train or eval)", argv[1]);
}

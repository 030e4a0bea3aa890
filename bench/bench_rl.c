/* bench_rl: how fast PPO trains on CartPole with the zoo's settings (8 envs,
 * n_steps 32, batch 256, 20 epochs, 100k steps) on 1 and 2 threads, and how
 * fast the environment and the rollouts alone run.  Prints JSON on stdout.
 *
 *   bench_rl [--steps N] [--repeats R] [--seed S]
 *
 * Each configuration runs R times; the JSON gives the median wall time (and
 * the min), so a noisy shared machine shows up as a spread, not a lie, and
 * the process CPU seconds of the median run (with 2 threads this includes
 * time spent spinning at barriers). */
#include "rl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the whole process: on a shared machine this shows the
 * work done even when the wall clock includes waiting for a core. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    long long updates;
    double rollout_s;
    int iterations;
} BenchCount;

static int count_cb(const PpoIterInfo *info, void *user) {
    BenchCount *c = user;
    c->updates += info->epochs_done; /* one minibatch per epoch with batch 256 = n_steps*n_envs */
    c->rollout_s = info->rollout_s;
    c->iterations = info->iteration;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long long steps = 100000;
    int repeats = 3;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--steps")) steps = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeats")) repeats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_rl [--steps N] [--repeats R] [--seed S]\n");
            return 2;
        }
    }
    if (steps < 256 || repeats < 1 || repeats > 50) {
        fprintf(stderr, "bench_rl: need --steps >= 256 and --repeats in [1, 50]\n");
        return 2;
    }
    DpError err;
    RlEnv *env = NULL;

    /* Environment alone: 8 CartPoles with random actions. */
    if (rl_env_create("cartpole", 8, seed, NULL, &env, &err)) {
        fprintf(stderr, "bench_rl: %s\n", err.msg);
        return 1;
    }
    DpRng rng;
    dp_rng_seed(&rng, seed);
    rl_env_reset(env);
    long long env_steps = 0;
    double t0 = dp_time_mono();
    while (env_steps < 4000000) {
        for (int i = 0; i < 8; i++) env->actions[i] = (int)(dp_rng_u64(&rng) & 1);
        rl_env_step(env);
        env_steps += 8;
    }
    double env_rate = (double)env_steps / (dp_time_mono() - t0);
    rl_env_destroy(env);
    env = NULL;

    printf("{\n  \"bench\": \"rl\",\n  \"env\": \"cartpole\",\n  \"preset\": \"cartpole\",\n");
    printf("  \"steps\": %lld,\n  \"seed\": %llu,\n  \"repeats\": %d,\n", steps,
           (unsigned long long)seed, repeats);
    printf("  \"env_only_steps_per_s\": %.0f,\n  \"runs\": [", env_rate);
    for (int threads = 1; threads <= 2; threads++) {
        double walls[50], rolls[50], cpus[50];
        long long updates = 0;
        int iters = 0;
        double eval_mean = 0, eval_std = 0;
        for (int r = 0; r < repeats; r++) {
            PpoConfig cfg;
            ppo_config_default(&cfg);
            ppo_config_preset(&cfg, "cartpole", &err);
            cfg.seed = seed;
            cfg.n_threads = threads;
            Ppo *ppo = NULL;
            BenchCount cnt = {0, 0, 0};
            if (rl_env_create("cartpole", 8, seed, NULL, &env, &err) ||
                ppo_create(&cfg, env->obs_dim, env->n_actions, &ppo, &err)) {
                fprintf(stderr, "bench_rl: %s\n", err.msg);
                return 1;
            }
            double t1 = dp_time_mono(), c1 = cpu_seconds();
            if (ppo_train(ppo, env, steps, count_cb, &cnt, &err)) {
                fprintf(stderr, "bench_rl: %s\n", err.msg);
                return 1;
            }
            walls[r] = dp_time_mono() - t1;
            cpus[r] = cpu_seconds() - c1;
            rolls[r] = cnt.rollout_s;
            updates = cnt.updates;
            iters = cnt.iterations;
            if (r == 0 &&
                ppo_evaluate(ppo_policy(ppo), "cartpole", 100, 1000, 1, &eval_mean, &eval_std, &err)) {
                fprintf(stderr, "bench_rl: %s\n", err.msg);
                return 1;
            }
            ppo_free(ppo);
            rl_env_destroy(env);
            env = NULL;
        }
        double wmin = walls[0];
        for (int r = 1; r < repeats; r++)
            if (walls[r] < wmin) wmin = walls[r];
        qsort(walls, (size_t)repeats, sizeof(double), cmp_double);
        qsort(rolls, (size_t)repeats, sizeof(double), cmp_double);
        qsort(cpus, (size_t)repeats, sizeof(double), cmp_double);
        double wmed = walls[repeats / 2], rmed = rolls[repeats / 2];
        long long done = (long long)iters * 256;
        printf("%s\n    {\"threads\": %d, \"wall_s_median\": %.3f, \"wall_s_min\": %.3f, "
               "\"cpu_s_median\": %.3f, \"train_steps_per_s\": %.0f, \"rollout_s\": %.3f, \"rollout_steps_per_s\": %.0f, "
               "\"update_s\": %.3f, \"minibatch_updates\": %lld, \"updates_per_s\": %.0f, "
               "\"steps_done\": %lld, \"eval_mean\": %.1f, \"eval_std\": %.1f}",
               threads == 1 ? "" : ",", threads, wmed, wmin, cpus[repeats / 2], (double)done / wmed, rmed,
               (double)done / rmed, wmed - rmed, updates, (double)updates / (wmed - rmed), done,
               eval_mean, eval_std);
    }
    printf("\n  ]\n}\n");
    return 0;
}

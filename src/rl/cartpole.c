/* CartPole-v1 ported from Gymnasium's definition (classic_control/cartpole.py):
 * a pole hinged on a cart, push left (0) or right (1) with force 10 N, Euler
 * integration with tau 0.02 s, termination when |x| > 2.4 or |theta| > 12
 * degrees, truncation at 500 steps, reward 1 on every step including the
 * terminal one, initial state uniform in [-0.05, 0.05).  The state is kept in
 * double as Gymnasium's numpy float64; observations are float32. */
#include "rl.h"

#include <math.h>
#include <stdlib.h>

#define CP_GRAVITY 9.8
#define CP_MASSCART 1.0
#define CP_MASSPOLE 0.1
#define CP_TOTAL_MASS (CP_MASSPOLE + CP_MASSCART)
#define CP_LENGTH 0.5 /* half the pole's length */
#define CP_POLEMASS_LENGTH (CP_MASSPOLE * CP_LENGTH)
#define CP_FORCE_MAG 10.0
#define CP_TAU 0.02
#define CP_THETA_THRESHOLD (12.0 * 2.0 * M_PI / 360.0)
#define CP_X_THRESHOLD 2.4
#define CP_MAX_STEPS 500

typedef struct {
    RlCartPoleState s;
    int steps;
} CartPole;

int rl_cartpole_dynamics(RlCartPoleState *s, int action) {
    double force = action == 1 ? CP_FORCE_MAG : -CP_FORCE_MAG;
    double costheta = cos(s->theta), sintheta = sin(s->theta);
    double temp =
        (force + CP_POLEMASS_LENGTH * s->theta_dot * s->theta_dot * sintheta) / CP_TOTAL_MASS;
    double thetaacc = (CP_GRAVITY * sintheta - costheta * temp) /
                      (CP_LENGTH * (4.0 / 3.0 - CP_MASSPOLE * costheta * costheta / CP_TOTAL_MASS));
    double xacc = temp - CP_POLEMASS_LENGTH * thetaacc * costheta / CP_TOTAL_MASS;
    s->x = s->x + CP_TAU * s->x_dot;
    s->x_dot = s->x_dot + CP_TAU * xacc;
    s->theta = s->theta + CP_TAU * s->theta_dot;
    s->theta_dot = s->theta_dot + CP_TAU * thetaacc;
    return s->x < -CP_X_THRESHOLD || s->x > CP_X_THRESHOLD || s->theta < -CP_THETA_THRESHOLD ||
           s->theta > CP_THETA_THRESHOLD;
}

static void write_obs(const RlCartPoleState *s, float *o) {
    o[0] = (float)s->x;
    o[1] = (float)s->x_dot;
    o[2] = (float)s->theta;
    o[3] = (float)s->theta_dot;
}

static DpStatus cp_init(RlEnv *env, const void *config, DpError *err) {
    (void)config;
    env->state = dp_calloc((size_t)env->n_envs, sizeof(CartPole));
    if (!env->state) return dp_fail(err, DP_ERR_NOMEM, "out of memory (cartpole state)");
    return DP_OK;
}

static void cp_reset(RlEnv *env, int i) {
    CartPole *c = (CartPole *)env->state + i;
    DpRng *r = &env->rngs[i];
    c->s.x = -0.05 + 0.1 * dp_rng_uniform(r);
    c->s.x_dot = -0.05 + 0.1 * dp_rng_uniform(r);
    c->s.theta = -0.05 + 0.1 * dp_rng_uniform(r);
    c->s.theta_dot = -0.05 + 0.1 * dp_rng_uniform(r);
    c->steps = 0;
    write_obs(&c->s, env->observations + (size_t)i * 4);
}

static void cp_step(RlEnv *env, int i) {
    CartPole *c = (CartPole *)env->state + i;
    int a = env->actions[i];
    int term = rl_cartpole_dynamics(&c->s, a == 1);
    c->steps++;
    env->rewards[i] = 1.0f;
    env->terminals[i] = (unsigned char)term;
    env->truncations[i] = (unsigned char)(!term && c->steps >= CP_MAX_STEPS);
    if (env->terminals[i] || env->truncations[i]) {
        write_obs(&c->s, env->final_observations + (size_t)i * 4);
        cp_reset(env, i);
    } else {
        write_obs(&c->s, env->observations + (size_t)i * 4);
    }
}

static void cp_close(RlEnv *env) {
    free(env->state);
    env->state = NULL;
}

const RlEnvVtbl rl_cartpole_vtbl = {
    .name = "cartpole",
    .obs_dim = 4,
    .action_kind = RL_ACTION_DISCRETE,
    .n_actions = 2,
    .init = cp_init,
    .reset = cp_reset,
    .step = cp_step,
    .close = cp_close,
};

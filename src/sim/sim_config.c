/* Simulator configuration: the defaults that mirror the study's setup, the
 * scenarios of the comparison, and JSON load/save.  JSON fields map to struct
 * fields through one table, so load, save and error messages agree on names. */
#include "sim.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// ---- defaults and scenarios ----

static void target_init(SimTarget *t, const char *name, double price, double per_gpu_h,
                        double speed, double dist, double cap) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->price = price;
    t->price_per_gpu_hour = per_gpu_h;
    t->speed = speed;
    t->distance_ms = dist;
    t->service_ms = 40;
    t->capacity_rps = cap;
    t->contention = 0.35;
    t->outage_per_hour = 0;
    t->outage_mean_s = 1200;
    t->redeploy_cost = 0;
}

void sim_config_default(SimConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "default");
    cfg->duration_s = 4 * 3600;
    cfg->interval_s = 60;
    cfg->n_targets = 2;
    /* aws: faster and nearer, dearer; azure: cheaper, slower, a little further. */
    target_init(&cfg->targets[0], "aws", 0.045, 0.45, 1.25, 35, 420);
    target_init(&cfg->targets[1], "azure", 0.038, 0.38, 1.0, 45, 380);
    cfg->initial_target = 0;
    cfg->traffic = (SimTraffic){SIM_TRAFFIC_STEADY, 200, 0.05, 1.8, 1800, 0.3, 86400};
    cfg->drift = (SimDrift){SIM_DRIFT_GRADUAL, 0.0, 0.25, 0.4, 3600, 3 * 3600, 0.4, 1800};
    cfg->model = (SimModel){.coverage = 0.85,
                            .gpu_hours = 0.1,
                            .bleu_right = 0.85,
                            .bleu_wrong = 0.35,
                            .em_right = 0.80,
                            .em_wrong = 0.02,
                            .f1_right = 0.88,
                            .f1_wrong = 0.30,
                            .label_fraction = 0.05};
    sim_reward_default(&cfg->reward);
    cfg->profile = SIM_PROFILE_EXTENDED;
    cfg->action_set = SIM_ACTIONS_TARGETS;
    cfg->timeout_ms = 1000;
    cfg->latency_noise = 0.03;
    cfg->price_change_target = -1;
    cfg->price_change_at_s = 7200;
    cfg->price_change_factor = 4;
    cfg->outage_target = -1;
    cfg->outage_lo_s = 1800;
    cfg->outage_hi_s = 9000;
    cfg->outage_len_s = 3600;
}

static const char *scenario_names[] = {"steady", "spike", "gradual", "sudden",
                                       "recurring", "price-change", "outage"};

int sim_scenario_count(void) { return (int)(sizeof scenario_names / sizeof scenario_names[0]); }
const char *sim_scenario_name(int i) {
    return i >= 0 && i < sim_scenario_count() ? scenario_names[i] : NULL;
}

DpStatus sim_scenario_apply(SimConfig *cfg, const char *name, DpError *err) {
    SimConfig d;
    sim_config_default(&d);
    /* Scenario-owned parts start from the defaults, the rest stays. */
    cfg->traffic = d.traffic;
    cfg->drift = d.drift;
    cfg->price_change_target = -1;
    cfg->outage_target = -1;
    if (!strcmp(name, "steady")) {
        cfg->drift.rate_per_hour = 0.05;
    } else if (!strcmp(name, "spike")) {
        cfg->traffic.kind = SIM_TRAFFIC_SPIKE;
        cfg->drift.rate_per_hour = 0.05;
    } else if (!strcmp(name, "gradual")) {
        cfg->drift.rate_per_hour = 0.25;
    } else if (!strcmp(name, "sudden")) {
        cfg->drift.kind = SIM_DRIFT_SUDDEN;
        cfg->drift.background_per_hour = 0.03;
    } else if (!strcmp(name, "recurring")) {
        cfg->drift.kind = SIM_DRIFT_RECURRING;
        cfg->drift.background_per_hour = 0.03;
    } else if (!strcmp(name, "price-change")) {
        cfg->price_change_target = cfg->n_targets > 1 ? 1 : 0;
        cfg->price_change_at_s = d.price_change_at_s;
        cfg->price_change_factor = d.price_change_factor;
    } else if (!strcmp(name, "outage")) {
        cfg->outage_target = 0;
        cfg->outage_lo_s = d.outage_lo_s;
        cfg->outage_hi_s = d.outage_hi_s;
        cfg->outage_len_s = d.outage_len_s;
    } else {
        return dp_fail(err, DP_ERR_INVAL,
                       "unknown scenario '%s' (steady, spike, gradual, sudden, recurring, "
                       "price-change, outage)",
                       name);
    }
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    return DP_OK;
}

int sim_target_index(const SimConfig *cfg, const char *name) {
    for (int k = 0; k < cfg->n_targets; k++)
        if (!strcmp(cfg->targets[k].name, name)) return k;
    return -1;
}

DpStatus sim_config_validate(const SimConfig *c, DpError *err) {
#define CHECK(cond, field) \
    if (!(cond)) return dp_fail(err, DP_ERR_INVAL, "config: %s out of range", field)
    CHECK(c->interval_s > 0, "interval_s");
    CHECK(c->duration_s >= c->interval_s && c->duration_s / c->interval_s <= 100000, "duration_s");
    CHECK(c->n_targets >= 1 && c->n_targets <= SIM_MAX_TARGETS, "targets (1..8)");
    CHECK(c->initial_target >= 0 && c->initial_target < c->n_targets, "initial_target");
    for (int k = 0; k < c->n_targets; k++) {
        const SimTarget *t = &c->targets[k];
        CHECK(t->price >= 0, "targets[].price");
        CHECK(t->price_per_gpu_hour >= 0, "targets[].price_per_gpu_hour");
        CHECK(t->speed > 0, "targets[].speed");
        CHECK(t->distance_ms >= 0, "targets[].distance_ms");
        CHECK(t->service_ms > 0, "targets[].service_ms");
        CHECK(t->capacity_rps > 0, "targets[].capacity_rps");
        CHECK(t->contention >= 0 && t->contention < 1, "targets[].contention");
        CHECK(t->outage_per_hour >= 0, "targets[].outage_per_hour");
        CHECK(t->outage_mean_s > 0, "targets[].outage_mean_s");
        for (int j = 0; j < k; j++)
            CHECK(strcmp(c->targets[j].name, t->name) != 0, "targets[].name (duplicate)");
    }
    CHECK(c->traffic.base_rps >= 0, "traffic.base_rps");
    CHECK(c->traffic.noise >= 0 && c->traffic.noise < 1, "traffic.noise");
    CHECK(c->traffic.spike_factor > 0, "traffic.spike_factor");
    CHECK(c->traffic.diurnal_period_s > 0, "traffic.diurnal_period_s");
    CHECK(c->drift.background_per_hour >= 0, "drift.background_per_hour");
    CHECK(c->drift.rate_per_hour >= 0, "drift.rate_per_hour");
    CHECK(c->drift.sudden_magnitude >= 0 && c->drift.sudden_magnitude < 1, "drift.sudden_magnitude");
    CHECK(c->drift.sudden_lo_s <= c->drift.sudden_hi_s, "drift.sudden_lo_s/hi_s");
    CHECK(c->drift.seasonal_share >= 0 && c->drift.seasonal_share <= 1, "drift.seasonal_share");
    CHECK(c->drift.season_len_s > 0, "drift.season_len_s");
    CHECK(c->model.coverage >= 0 && c->model.coverage <= 1, "model.coverage");
    CHECK(c->model.gpu_hours > 0, "model.gpu_hours");
    CHECK(c->model.label_fraction > 0 && c->model.label_fraction <= 1, "model.label_fraction");
    CHECK(c->reward.quality_unit_s > 0, "reward.quality_unit_s");
    CHECK(c->reward.slo_ms >= 0, "reward.slo_ms");
    CHECK(c->timeout_ms > 0, "timeout_ms");
    CHECK(c->latency_noise >= 0 && c->latency_noise < 1, "latency_noise");
    CHECK(c->price_change_target < c->n_targets, "events.price_change.target");
    CHECK(c->outage_target < c->n_targets, "events.outage.target");
    CHECK(c->price_change_factor >= 0, "events.price_change.factor");
    CHECK(c->outage_lo_s <= c->outage_hi_s, "events.outage.lo_s/hi_s");
#undef CHECK
    return DP_OK;
}

// ---- JSON ----

typedef enum { F_DOUBLE, F_ENUM } FieldType;

typedef struct {
    const char *key;
    FieldType type;
    size_t offset;
    const char *const *enum_names; /* NULL-terminated for F_ENUM (stored as int) */
} Field;

static const char *const traffic_kinds[] = {"steady", "spike", "diurnal", NULL};
static const char *const drift_kinds[] = {"none", "gradual", "sudden", "recurring", NULL};
static const char *const cost_modes[] = {"flat", "gpu_hours", NULL};
static const char *const profiles[] = {"paper", "extended", NULL};

#define D(s, f) {#f, F_DOUBLE, offsetof(s, f), NULL}
#define E(s, f, names) {#f, F_ENUM, offsetof(s, f), names}

static const Field top_fields[] = {
    D(SimConfig, duration_s), D(SimConfig, interval_s), D(SimConfig, timeout_ms),
    D(SimConfig, latency_noise), E(SimConfig, profile, profiles),
    E(SimConfig, action_set, sim_action_set_names), {NULL, F_DOUBLE, 0, NULL}};
static const Field target_fields[] = {
    D(SimTarget, price), D(SimTarget, price_per_gpu_hour), D(SimTarget, speed),
    D(SimTarget, distance_ms), D(SimTarget, service_ms), D(SimTarget, capacity_rps),
    D(SimTarget, contention), D(SimTarget, outage_per_hour), D(SimTarget, outage_mean_s),
    D(SimTarget, redeploy_cost), {NULL, F_DOUBLE, 0, NULL}};
static const Field traffic_fields[] = {
    E(SimTraffic, kind, traffic_kinds), D(SimTraffic, base_rps), D(SimTraffic, noise),
    D(SimTraffic, spike_factor), D(SimTraffic, spike_len_s), D(SimTraffic, diurnal_amp),
    D(SimTraffic, diurnal_period_s), {NULL, F_DOUBLE, 0, NULL}};
static const Field drift_fields[] = {
    E(SimDrift, kind, drift_kinds), D(SimDrift, background_per_hour), D(SimDrift, rate_per_hour),
    D(SimDrift, sudden_magnitude), D(SimDrift, sudden_lo_s), D(SimDrift, sudden_hi_s),
    D(SimDrift, seasonal_share), D(SimDrift, season_len_s), {NULL, F_DOUBLE, 0, NULL}};
static const Field model_fields[] = {
    D(SimModel, coverage), D(SimModel, gpu_hours), D(SimModel, bleu_right),
    D(SimModel, bleu_wrong), D(SimModel, em_right), D(SimModel, em_wrong),
    D(SimModel, f1_right), D(SimModel, f1_wrong), D(SimModel, label_fraction),
    {NULL, F_DOUBLE, 0, NULL}};
static const Field reward_fields[] = {
    D(SimRewardConfig, w_bleu), D(SimRewardConfig, w_accuracy), D(SimRewardConfig, w_f1),
    D(SimRewardConfig, quality_unit_s), D(SimRewardConfig, cost_weight),
    E(SimRewardConfig, cost_mode, cost_modes), D(SimRewardConfig, slo_ms),
    D(SimRewardConfig, slo_weight), {NULL, F_DOUBLE, 0, NULL}};

#undef D
#undef E

/* Reads the fields of `fields` present in obj into base; unknown keys are
 * errors (a typo must not silently keep a default). */
static DpStatus load_fields(json_t *obj, const Field *fields, void *base, const char *origin,
                            const char *path, DpError *err) {
    if (!json_is_object(obj)) return dp_fail(err, DP_ERR_PARSE, "%s: %s: expected an object", origin, path);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const Field *f = fields;
        while (f->key && strcmp(f->key, key)) f++;
        if (!f->key) return dp_fail(err, DP_ERR_PARSE, "%s: %s%s%s: unknown field", origin, path,
                                    *path ? "." : "", key);
        char *p = (char *)base + f->offset;
        if (f->type == F_DOUBLE) {
            if (!json_is_number(v))
                return dp_fail(err, DP_ERR_PARSE, "%s: %s%s%s: expected a number", origin, path,
                               *path ? "." : "", key);
            *(double *)p = json_number_value(v);
        } else {
            const char *s = json_string_value(v);
            int idx = -1;
            for (int i = 0; s && f->enum_names[i]; i++)
                if (!strcmp(f->enum_names[i], s)) idx = i;
            if (idx < 0) {
                char opts[200] = "";
                for (int i = 0; f->enum_names[i]; i++) {
                    strncat(opts, i ? ", " : "", sizeof opts - strlen(opts) - 1);
                    strncat(opts, f->enum_names[i], sizeof opts - strlen(opts) - 1);
                }
                return dp_fail(err, DP_ERR_PARSE, "%s: %s%s%s: expected one of %s", origin, path,
                               *path ? "." : "", key, opts);
            }
            *(int *)p = idx;
        }
    }
    return DP_OK;
}

/* A target given by name or index. */
static DpStatus target_ref(const SimConfig *cfg, json_t *v, int *out, const char *origin,
                           const char *field, DpError *err) {
    if (json_is_null(v)) {
        *out = -1;
        return DP_OK;
    }
    if (json_is_integer(v)) {
        *out = (int)json_integer_value(v);
    } else if (json_is_string(v)) {
        *out = sim_target_index(cfg, json_string_value(v));
    } else {
        *out = -2;
    }
    if (*out < 0 || *out >= cfg->n_targets)
        return dp_fail(err, DP_ERR_PARSE, "%s: %s: not a target name or index", origin, field);
    return DP_OK;
}

DpStatus sim_config_load_text(SimConfig *cfg, const char *text, const char *origin, DpError *err) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    DpStatus st = DP_OK;
    if (!root) return dp_fail(err, DP_ERR_PARSE, "%s: line %d: %s", origin, je.line, je.text);
    if (!json_is_object(root)) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: expected a JSON object", origin);
        goto out;
    }
    const char *key;
    json_t *v;
    /* targets first, so target names in other fields resolve */
    json_t *targets = json_object_get(root, "targets");
    if (targets) {
        if (!json_is_array(targets) || json_array_size(targets) < 1 ||
            json_array_size(targets) > SIM_MAX_TARGETS) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: targets: expected an array of 1..%d objects",
                         origin, SIM_MAX_TARGETS);
            goto out;
        }
        int n = (int)json_array_size(targets);
        SimConfig d;
        sim_config_default(&d);
        for (int k = 0; k < n; k++) {
            json_t *t = json_array_get(targets, k);
            char path[32];
            snprintf(path, sizeof path, "targets[%d]", k);
            /* a new target starts from the default target of that index (or the last) */
            SimTarget tg = k < cfg->n_targets ? cfg->targets[k] : d.targets[k < d.n_targets ? k : d.n_targets - 1];
            json_t *name = json_object_get(t, "name");
            if (!json_is_object(t) || !json_is_string(name)) {
                st = dp_fail(err, DP_ERR_PARSE, "%s: %s.name: expected a string", origin, path);
                goto out;
            }
            snprintf(tg.name, sizeof tg.name, "%s", json_string_value(name));
            json_t *copy = json_copy(t);
            json_object_del(copy, "name");
            st = load_fields(copy, target_fields, &tg, origin, path, err);
            json_decref(copy);
            if (st) goto out;
            cfg->targets[k] = tg;
        }
        cfg->n_targets = n;
        if (cfg->initial_target >= n) cfg->initial_target = 0;
    }
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "targets")) continue;
        if (!strcmp(key, "name")) {
            if (!json_is_string(v)) {
                st = dp_fail(err, DP_ERR_PARSE, "%s: name: expected a string", origin);
                goto out;
            }
            snprintf(cfg->name, sizeof cfg->name, "%s", json_string_value(v));
        } else if (!strcmp(key, "initial_target")) {
            if ((st = target_ref(cfg, v, &cfg->initial_target, origin, key, err))) goto out;
        } else if (!strcmp(key, "traffic")) {
            if ((st = load_fields(v, traffic_fields, &cfg->traffic, origin, key, err))) goto out;
        } else if (!strcmp(key, "drift")) {
            if ((st = load_fields(v, drift_fields, &cfg->drift, origin, key, err))) goto out;
        } else if (!strcmp(key, "model")) {
            if ((st = load_fields(v, model_fields, &cfg->model, origin, key, err))) goto out;
        } else if (!strcmp(key, "reward")) {
            if ((st = load_fields(v, reward_fields, &cfg->reward, origin, key, err))) goto out;
        } else if (!strcmp(key, "events")) {
            json_t *pc = json_object_get(v, "price_change"), *ou = json_object_get(v, "outage");
            if (pc) {
                if ((st = target_ref(cfg, json_object_get(pc, "target"), &cfg->price_change_target,
                                     origin, "events.price_change.target", err)))
                    goto out;
                json_t *a = json_object_get(pc, "at_s"), *f = json_object_get(pc, "factor");
                if ((a && !json_is_number(a)) || (f && !json_is_number(f))) {
                    st = dp_fail(err, DP_ERR_PARSE, "%s: events.price_change: at_s and factor must be numbers", origin);
                    goto out;
                }
                if (a) cfg->price_change_at_s = json_number_value(a);
                if (f) cfg->price_change_factor = json_number_value(f);
            }
            if (ou) {
                if ((st = target_ref(cfg, json_object_get(ou, "target"), &cfg->outage_target,
                                     origin, "events.outage.target", err)))
                    goto out;
                const char *ks[3] = {"lo_s", "hi_s", "len_s"};
                double *ps[3] = {&cfg->outage_lo_s, &cfg->outage_hi_s, &cfg->outage_len_s};
                for (int i = 0; i < 3; i++) {
                    json_t *x = json_object_get(ou, ks[i]);
                    if (!x) continue;
                    if (!json_is_number(x)) {
                        st = dp_fail(err, DP_ERR_PARSE, "%s: events.outage.%s: expected a number", origin, ks[i]);
                        goto out;
                    }
                    *ps[i] = json_number_value(x);
                }
            }
        } else {
            json_t *one = json_object();
            json_object_set(one, key, v);
            st = load_fields(one, top_fields, cfg, origin, "", err);
            json_decref(one);
            if (st) goto out;
        }
    }
    st = sim_config_validate(cfg, err);
    if (st) dp_error_wrap(err, "%s", origin);
out:
    json_decref(root);
    return st;
}

DpStatus sim_config_load(SimConfig *cfg, const char *path, DpError *err) {
    char *text = NULL;
    DpStatus st = dp_read_file(path, &text, NULL, err);
    if (st) return st;
    st = sim_config_load_text(cfg, text, path, err);
    free(text);
    return st;
}

static json_t *dump_fields(const Field *fields, const void *base) {
    json_t *o = json_object();
    for (const Field *f = fields; f->key; f++) {
        const char *p = (const char *)base + f->offset;
        if (f->type == F_DOUBLE) json_object_set_new(o, f->key, json_real(*(const double *)p));
        else json_object_set_new(o, f->key, json_string(f->enum_names[*(const int *)p]));
    }
    return o;
}

char *sim_config_to_json(const SimConfig *cfg) {
    json_t *dump_fields_tmp;
    json_t *root = json_object();
    json_object_set_new(root, "name", json_string(cfg->name));
    json_object_update(root, dump_fields_tmp = dump_fields(top_fields, cfg));
    json_decref(dump_fields_tmp);
    json_t *ts = json_array();
    for (int k = 0; k < cfg->n_targets; k++) {
        json_t *t = json_object(), *f = dump_fields(target_fields, &cfg->targets[k]);
        json_object_set_new(t, "name", json_string(cfg->targets[k].name));
        json_object_update(t, f);
        json_decref(f);
        json_array_append_new(ts, t);
    }
    json_object_set_new(root, "targets", ts);
    json_object_set_new(root, "initial_target", json_string(cfg->targets[cfg->initial_target].name));
    json_object_set_new(root, "traffic", dump_fields(traffic_fields, &cfg->traffic));
    json_object_set_new(root, "drift", dump_fields(drift_fields, &cfg->drift));
    json_object_set_new(root, "model", dump_fields(model_fields, &cfg->model));
    json_object_set_new(root, "reward", dump_fields(reward_fields, &cfg->reward));
    json_t *ev = json_object();
    json_t *pc = json_object();
    json_object_set_new(pc, "target", cfg->price_change_target >= 0
                                          ? json_string(cfg->targets[cfg->price_change_target].name)
                                          : json_null());
    json_object_set_new(pc, "at_s", json_real(cfg->price_change_at_s));
    json_object_set_new(pc, "factor", json_real(cfg->price_change_factor));
    json_object_set_new(ev, "price_change", pc);
    json_t *ou = json_object();
    json_object_set_new(ou, "target", cfg->outage_target >= 0
                                          ? json_string(cfg->targets[cfg->outage_target].name)
                                          : json_null());
    json_object_set_new(ou, "lo_s", json_real(cfg->outage_lo_s));
    json_object_set_new(ou, "hi_s", json_real(cfg->outage_hi_s));
    json_object_set_new(ou, "len_s", json_real(cfg->outage_len_s));
    json_object_set_new(ev, "outage", ou);
    json_object_set_new(root, "events", ev);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    return s;
}

DpStatus sim_config_save(const SimConfig *cfg, const char *path, DpError *err) {
    char *s = sim_config_to_json(cfg);
    if (!s) return dp_fail(err, DP_ERR_NOMEM, "serialising config");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return dp_fail(err, DP_ERR_NOMEM, "serialising config");
    }
    t[n] = '\n';
    t[n + 1] = 0;
    DpStatus st = dp_write_file_atomic(path, t, n + 1, err);
    free(t);
    return st;
}

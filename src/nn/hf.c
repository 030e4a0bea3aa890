/* hf: Hugging Face GPT-2 directories — config.json parsing and writing, and
 * loading/saving model.safetensors in GPT2LMHeadModel's key names.
 *
 * Loading accepts keys with or without the `transformer.` prefix, ignores the
 * attn.bias / attn.masked_bias buffers older checkpoints carry, accepts an
 * lm_head.weight only when it equals wte (the head is tied), and converts
 * F16/BF16 to float32.  Saving writes what GPT2LMHeadModel.save_pretrained
 * writes: `transformer.`-prefixed F32 tensors without lm_head (tied), with
 * __metadata__ {"format": "pt"}, and a config.json that keeps the fields of
 * the source config we do not interpret. */
#include "gpt2_impl.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const char *gpt2_activation_name(Gpt2Activation a) {
    return a == GPT2_ACT_GELU_ERF ? "gelu" : "gelu_new";
}

/* Reads an integer field; absent leaves *out unchanged and returns 0. */
static DpStatus get_int(const json_t *o, const char *key, int *out, int *found, const char *src,
                        DpError *err) {
    const json_t *v = json_object_get(o, key);
    if (found) *found = 0;
    if (!v || json_is_null(v)) return DP_OK;
    if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
        json_integer_value(v) > INT32_MAX)
        return dp_fail(err, DP_ERR_PARSE, "%s: field %s: expected an integer", src, key);
    *out = (int)json_integer_value(v);
    if (found) *found = 1;
    return DP_OK;
}

static int json_truthy_bool(const json_t *v, int dflt) {
    if (!v || json_is_null(v)) return dflt;
    if (json_is_boolean(v)) return json_is_true(v);
    return -1;
}

DpStatus gpt2_config_validate(const Gpt2Config *c, const char *src, DpError *err) {
    const char *s = src ? src : "config";
    struct {
        const char *name;
        long long v, lo, hi;
    } r[] = {
        {"n_layer", c->n_layer, 1, 1024},        {"n_head", c->n_head, 1, 4096},
        {"n_embd", c->n_embd, 1, 65536},         {"n_inner", c->n_inner, 1, 1 << 20},
        {"n_positions", c->n_positions, 1, 1 << 20}, {"vocab_size", c->vocab_size, 1, 1 << 24},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi)
            return dp_fail(err, DP_ERR_INVAL, "%s: field %s = %lld outside [%lld, %lld]", s,
                           r[i].name, r[i].v, r[i].lo, r[i].hi);
    if (c->n_embd % c->n_head != 0)
        return dp_fail(err, DP_ERR_INVAL, "%s: field n_embd = %d is not a multiple of n_head = %d",
                       s, c->n_embd, c->n_head);
    if (!(c->layer_norm_epsilon > 0.0f && c->layer_norm_epsilon < 1.0f))
        return dp_fail(err, DP_ERR_INVAL, "%s: field layer_norm_epsilon = %g outside (0, 1)", s,
                       (double)c->layer_norm_epsilon);
    /* Keep the parameter count within 2^33 floats (32 GiB) so size arithmetic
     * is safe and absurd configs fail here, not in malloc. */
    double C = c->n_embd, I = c->n_inner;
    double n = (double)c->vocab_size * C + (double)c->n_positions * C +
               (double)c->n_layer * (4 * C * C + 2 * C * I + 9 * C + I) + 2 * C;
    if (n > 8589934592.0)
        return dp_fail(err, DP_ERR_INVAL, "%s: the model would have %.3g parameters, too many", s,
                       n);
    return DP_OK;
}

DpStatus gpt2_config_parse(const char *text, const char *src, Gpt2Config *cfg, DpError *err) {
    const char *s = src ? src : "config.json";
    json_error_t je;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    DpStatus st = DP_OK;
    if (!o) return dp_fail(err, DP_ERR_PARSE, "%s: line %d column %d: %s", s, je.line, je.column, je.text);
    if (!json_is_object(o)) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: not a JSON object", s);
        goto out;
    }
    memset(cfg, 0, sizeof *cfg);
    /* Hugging Face GPT2Config defaults. */
    cfg->n_layer = 12;
    cfg->n_head = 12;
    cfg->n_embd = 768;
    cfg->n_positions = 1024;
    cfg->vocab_size = 50257;
    cfg->layer_norm_epsilon = 1e-5f;
    cfg->activation = GPT2_ACT_GELU_TANH;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
    const json_t *mt = json_object_get(o, "model_type");
    if (mt && !(json_is_string(mt) && !strcmp(json_string_value(mt), "gpt2"))) {
        st = dp_fail(err, DP_ERR_INVAL, "%s: field model_type: only \"gpt2\" is supported", s);
        goto out;
    }
    int found_pos = 0, found_ctx = 0, n_ctx = 0, inner = 0, found_inner = 0;
    if ((st = get_int(o, "n_layer", &cfg->n_layer, NULL, s, err)) ||
        (st = get_int(o, "n_head", &cfg->n_head, NULL, s, err)) ||
        (st = get_int(o, "n_embd", &cfg->n_embd, NULL, s, err)) ||
        (st = get_int(o, "vocab_size", &cfg->vocab_size, NULL, s, err)) ||
        (st = get_int(o, "n_positions", &cfg->n_positions, &found_pos, s, err)) ||
        (st = get_int(o, "n_ctx", &n_ctx, &found_ctx, s, err)) ||
        (st = get_int(o, "n_inner", &inner, &found_inner, s, err)) ||
        (st = get_int(o, "bos_token_id", &cfg->bos_token_id, NULL, s, err)) ||
        (st = get_int(o, "eos_token_id", &cfg->eos_token_id, NULL, s, err)))
        goto out;
    if (!found_pos && found_ctx) cfg->n_positions = n_ctx;
    cfg->n_inner = found_inner ? inner : 4 * cfg->n_embd;
    const json_t *eps = json_object_get(o, "layer_norm_epsilon");
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps)) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: field layer_norm_epsilon: expected a number", s);
            goto out;
        }
        cfg->layer_norm_epsilon = (float)json_number_value(eps);
    }
    const json_t *act = json_object_get(o, "activation_function");
    if (act && !json_is_null(act)) {
        const char *a = json_is_string(act) ? json_string_value(act) : "";
        if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_fast"))
            cfg->activation = GPT2_ACT_GELU_TANH;
        else if (!strcmp(a, "gelu"))
            cfg->activation = GPT2_ACT_GELU_ERF;
        else {
            st = dp_fail(err, DP_ERR_INVAL,
                         "%s: field activation_function: '%s' is not supported (gelu_new, "
                         "gelu_pytorch_tanh, gelu_fast, gelu)",
                         s, a);
            goto out;
        }
    }
    /* Flags that change the computation in ways not implemented here:
     * name, the value that is fine, the default. */
    static const struct {
        const char *key;
        int ok, dflt;
    } flags[] = {
        {"scale_attn_by_inverse_layer_idx", 0, 0},
        {"reorder_and_upcast_attn", 0, 0},
        {"add_cross_attention", 0, 0},
        {"scale_attn_weights", 1, 1},
        {"tie_word_embeddings", 1, 1},
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        int v = json_truthy_bool(json_object_get(o, flags[i].key), flags[i].dflt);
        if (v < 0) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: field %s: expected true or false", s, flags[i].key);
            goto out;
        }
        if (v != flags[i].ok) {
            st = dp_fail(err, DP_ERR_INVAL, "%s: field %s = %s is not supported", s, flags[i].key,
                         v ? "true" : "false");
            goto out;
        }
    }
    st = gpt2_config_validate(cfg, s, err);
out:
    json_decref(o);
    return st;
}

/* Copies one tensor from the file into the model, checking its shape. */
static DpStatus load_tensor(const Safetensors *st, const SafetensorsTensor *t,
                            const Gpt2TensorInfo *ti, float *dst, DpError *err) {
    int ok = t->ndim == ti->ndim;
    for (int d = 0; ok && d < ti->ndim; d++) ok = t->shape[d] == ti->shape[d];
    if (!ok) {
        char got[128] = "", want[64] = "";
        size_t gl = 0;
        for (int d = 0; d < t->ndim && gl < sizeof got - 24; d++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", d ? "," : "",
                                   (long long)t->shape[d]);
        if (ti->ndim == 2)
            snprintf(want, sizeof want, "%lld,%lld", (long long)ti->shape[0],
                     (long long)ti->shape[1]);
        else
            snprintf(want, sizeof want, "%lld", (long long)ti->shape[0]);
        return dp_fail(err, DP_ERR_INVAL,
                       "%s: tensor '%s': shape [%s] disagrees with the config, which needs [%s]",
                       st->source, t->name, got, want);
    }
    if (t->dtype != SAFETENSORS_F32 && t->dtype != SAFETENSORS_F16 &&
        t->dtype != SAFETENSORS_BF16)
        return dp_fail(err, DP_ERR_INVAL, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16)",
                       st->source, t->name, safetensors_dtype_name(t->dtype));
    return safetensors_to_f32(st, t, dst, ti->numel, err);
}

static int is_ignored_buffer(const char *name) {
    size_t n = strlen(name);
    static const char *suffixes[] = {".attn.bias", ".attn.masked_bias"};
    for (int i = 0; i < 2; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && !strcmp(name + n - k, suffixes[i])) return 1;
    }
    return 0;
}

static DpStatus load_weights(Gpt2 *m, const Safetensors *st, DpError *err) {
    const Gpt2Config *c = &m->config;
    const char *prefix = safetensors_find(st, "transformer.wte.weight") ? "transformer." : "";
    int n = gpt2_n_named_tensors(c);
    unsigned char *used = dp_calloc((size_t)st->n_tensors + 1, 1);
    if (!used) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    DpStatus s = DP_OK;
    for (int i = 0; i < n; i++) {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(c, i, &ti);
        char key[96];
        snprintf(key, sizeof key, "%s%s", prefix, ti.name);
        const SafetensorsTensor *t = safetensors_find(st, key);
        if (!t) {
            s = dp_fail(err, DP_ERR_INVAL, "%s: tensor '%s' is missing", st->source, key);
            goto out;
        }
        used[t - st->tensors] = 1;
        if ((s = load_tensor(st, t, &ti, m->params_memory + ti.offset, err))) goto out;
    }
    for (int i = 0; i < st->n_tensors; i++) {
        const SafetensorsTensor *t = &st->tensors[i];
        if (used[i] || is_ignored_buffer(t->name)) continue;
        if (!strcmp(t->name, "lm_head.weight")) {
            /* Tied head: accept it only when it is wte. */
            Gpt2TensorInfo ti;
            gpt2_tensor_info(c, 0, &ti);
            float *tmp = dp_malloc(ti.numel * sizeof(float));
            if (!tmp) {
                s = dp_fail(err, DP_ERR_NOMEM, "out of memory");
                goto out;
            }
            s = load_tensor(st, t, &ti, tmp, err);
            if (s == DP_OK && memcmp(tmp, m->params.wte, ti.numel * sizeof(float)) != 0)
                s = dp_fail(err, DP_ERR_INVAL,
                            "%s: tensor 'lm_head.weight' differs from wte; untied heads are not "
                            "supported",
                            st->source);
            free(tmp);
            if (s) goto out;
            continue;
        }
        dp_warn("%s: ignoring unknown tensor '%s'", st->source, t->name);
    }
out:
    free(used);
    return s;
}

DpStatus gpt2_load_files(const Gpt2Config *cfg, const char *path, Gpt2 **out, DpError *err) {
    *out = NULL;
    Safetensors st;
    DpStatus s = safetensors_open(path, &st, err);
    if (s) return s;
    Gpt2 *m = NULL;
    if ((s = gpt2_alloc_(cfg, &m, err)) == DP_OK) s = load_weights(m, &st, err);
    safetensors_free(&st);
    if (s) {
        gpt2_free(m);
        return s;
    }
    *out = m;
    return DP_OK;
}

DpStatus gpt2_load_dir(const char *dir, Gpt2 **out, DpError *err) {
    *out = NULL;
    char cpath[4096], wpath[4096];
    DpStatus s;
    if ((s = dp_path_join(cpath, sizeof cpath, dir, "config.json", err)) ||
        (s = dp_path_join(wpath, sizeof wpath, dir, "model.safetensors", err)))
        return s;
    char *text = NULL;
    if ((s = dp_read_file(cpath, &text, NULL, err))) return s;
    Gpt2Config cfg;
    s = gpt2_config_parse(text, cpath, &cfg, err);
    if (s == DP_OK) s = gpt2_load_files(&cfg, wpath, out, err);
    if (s == DP_OK) {
        (*out)->config_json = text;
        text = NULL;
    }
    free(text);
    return s;
}

/* config.json for the model: the source config (if any) with every field we
 * interpret overwritten. */
static char *config_json_text(const Gpt2 *m) {
    const Gpt2Config *c = &m->config;
    json_t *o = NULL;
    if (m->config_json) {
        o = json_loads(m->config_json, 0, NULL);
        if (o && !json_is_object(o)) {
            json_decref(o);
            o = NULL;
        }
    }
    if (!o) {
        o = json_object();
        if (!o) return NULL;
        json_t *arch = json_array();
        json_array_append_new(arch, json_string("GPT2LMHeadModel"));
        json_object_set_new(o, "architectures", arch);
        /* save_pretrained writes these; 0 because this engine has no dropout */
        json_object_set_new(o, "attn_pdrop", json_real(0.0));
        json_object_set_new(o, "embd_pdrop", json_real(0.0));
        json_object_set_new(o, "resid_pdrop", json_real(0.0));
        json_object_set_new(o, "initializer_range", json_real(0.02));
    }
    json_object_set_new(o, "model_type", json_string("gpt2"));
    json_object_set_new(o, "activation_function", json_string(gpt2_activation_name(c->activation)));
    json_object_set_new(o, "n_layer", json_integer(c->n_layer));
    json_object_set_new(o, "n_head", json_integer(c->n_head));
    json_object_set_new(o, "n_embd", json_integer(c->n_embd));
    json_object_set_new(o, "n_inner", c->n_inner == 4 * c->n_embd ? json_null()
                                                                   : json_integer(c->n_inner));
    json_object_set_new(o, "n_positions", json_integer(c->n_positions));
    json_object_set_new(o, "n_ctx", json_integer(c->n_positions));
    json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
    /* the shortest decimal that reads back as the same float (1e-05, not
     * 9.99999975e-06) */
    char eps[32];
    snprintf(eps, sizeof eps, "%.7g", (double)c->layer_norm_epsilon);
    json_object_set_new(o, "layer_norm_epsilon", json_real(strtod(eps, NULL)));
    json_object_set_new(o, "tie_word_embeddings", json_true());
    if (c->bos_token_id >= 0) json_object_set_new(o, "bos_token_id", json_integer(c->bos_token_id));
    if (c->eos_token_id >= 0) json_object_set_new(o, "eos_token_id", json_integer(c->eos_token_id));
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(o);
    return text;
}

static DpStatus copy_file(const char *from, const char *to, DpError *err) {
    char *data = NULL;
    size_t len = 0;
    DpStatus s = dp_read_file(from, &data, &len, err);
    if (s == DP_OK) s = dp_write_file_atomic(to, data, len, err);
    free(data);
    return s;
}

DpStatus gpt2_save_dir(const Gpt2 *m, const char *dir, const char *tokenizer_dir, DpError *err) {
    DpStatus s = dp_mkdirs(dir, err);
    if (s) return s;
    char path[4096];
    int n = gpt2_n_named_tensors(&m->config);
    SafetensorsWriteItem *items = dp_calloc((size_t)n, sizeof *items);
    char (*names)[96] = dp_calloc((size_t)n, sizeof *names);
    char *cfg_text = config_json_text(m);
    if (!items || !names || !cfg_text) {
        s = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(&m->config, i, &ti);
        snprintf(names[i], sizeof names[i], "transformer.%s", ti.name);
        items[i].name = names[i];
        items[i].data = m->params_memory + ti.offset;
        items[i].ndim = ti.ndim;
        items[i].shape[0] = ti.shape[0];
        items[i].shape[1] = ti.shape[1];
    }
    if ((s = dp_path_join(path, sizeof path, dir, "model.safetensors", err)) ||
        (s = safetensors_write_f32(path, items, n, err)))
        goto out;
    if ((s = dp_path_join(path, sizeof path, dir, "config.json", err))) goto out;
    size_t cl = strlen(cfg_text);
    cfg_text[cl] = '\n'; /* the NUL becomes the file's final newline */
    s = dp_write_file_atomic(path, cfg_text, cl + 1, err);
    if (s) goto out;
    if (tokenizer_dir) {
        static const char *files[] = {"vocab.json", "merges.txt"};
        for (int i = 0; i < 2; i++) {
            char from[4096];
            if ((s = dp_path_join(from, sizeof from, tokenizer_dir, files[i], err))) goto out;
            if (!dp_file_exists(from)) continue;
            if ((s = dp_path_join(path, sizeof path, dir, files[i], err)) ||
                (s = copy_file(from, path, err)))
                goto out;
        }
    }
out:
    free(cfg_text);
    free(names);
    free(items);
    return s;
}

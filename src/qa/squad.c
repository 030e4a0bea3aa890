/* SQuAD JSON in and out, and the flat QaDataset it becomes.
 *
 * A dataset is an array of QaItem (one per question) plus a string pool:
 * strings are bump-allocated in large blocks so a 30 MB training file costs
 * a few thousand allocations, not a million, and a paragraph's context is
 * stored once and shared by its questions.  Files are parsed with jansson
 * (json_loadb), whose errors carry line and column; structural errors name
 * the JSON path of the offending value. */
#include "qa.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

// ---- string pool ----

typedef struct PoolBlock {
    struct PoolBlock *next;
    size_t used, cap;
    char data[];
} PoolBlock;

typedef struct {
    PoolBlock *head;
} Pool;

#define POOL_BLOCK (1u << 20)

static void *pool_alloc(QaDataset *ds, size_t n, size_t align) {
    Pool *pool = ds->pool_;
    if (!pool) {
        pool = calloc(1, sizeof *pool);
        if (!pool) return NULL;
        ds->pool_ = pool;
    }
    PoolBlock *b = pool->head;
    size_t off = b ? (b->used + align - 1) / align * align : 0;
    if (!b || off + n > b->cap) {
        size_t cap = n + align > POOL_BLOCK ? n + align : POOL_BLOCK;
        PoolBlock *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = pool->head;
        nb->used = 0;
        nb->cap = cap;
        pool->head = nb;
        b = nb;
        off = 0;
    }
    void *p = b->data + off;
    b->used = off + n;
    return p;
}

static const char *pool_strdup(QaDataset *ds, const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *p = pool_alloc(ds, n, 1);
    if (p) memcpy(p, s, n);
    return p;
}

void qa_dataset_init(QaDataset *ds) {
    memset(ds, 0, sizeof *ds);
    strcpy(ds->version, "1.1");
}

void qa_dataset_free(QaDataset *ds) {
    if (!ds) return;
    Pool *pool = ds->pool_;
    if (pool) {
        PoolBlock *b = pool->head;
        while (b) {
            PoolBlock *next = b->next;
            free(b);
            b = next;
        }
        free(pool);
    }
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}

static QaItem *dataset_push(QaDataset *ds) {
    if (ds->n_items == ds->cap_) {
        size_t cap = ds->cap_ ? ds->cap_ * 2 : 256;
        QaItem *ni = dp_realloc_array(ds->items, cap, sizeof *ni);
        if (!ni) return NULL;
        ds->items = ni;
        ds->cap_ = cap;
    }
    QaItem *it = &ds->items[ds->n_items];
    memset(it, 0, sizeof *it);
    it->changed = -1;
    return it;
}

static QaAnswer *copy_answers(QaDataset *ds, const QaAnswer *src, int n) {
    if (n <= 0) return NULL;
    QaAnswer *a = pool_alloc(ds, (size_t)n * sizeof *a, sizeof(void *));
    if (!a) return NULL;
    for (int i = 0; i < n; i++) {
        a[i].text = pool_strdup(ds, src[i].text);
        if (!a[i].text) return NULL;
        a[i].answer_start = src[i].answer_start;
    }
    return a;
}

DpStatus qa_dataset_add(QaDataset *ds, const QaItem *item, DpError *err) {
    if (!ds->version[0]) strcpy(ds->version, "1.1");
    /* The previous item's strings (pool pointers stay valid when the item
     * array is reallocated below; the item itself does not). */
    const char *prev_title = ds->n_items ? ds->items[ds->n_items - 1].title : NULL;
    const char *prev_context = ds->n_items ? ds->items[ds->n_items - 1].context : NULL;
    const char *title = item->title ? item->title : "";
    const char *context = item->context ? item->context : "";
    int same_title = prev_title && !strcmp(prev_title, title);
    int same_para = same_title && !strcmp(prev_context, context);
    QaItem *it = dataset_push(ds);
    if (!it) return dp_fail(err, DP_ERR_NOMEM, "dataset: out of memory");
    it->title = same_title ? prev_title : pool_strdup(ds, title);
    it->context = same_para ? prev_context : pool_strdup(ds, context);
    it->id = pool_strdup(ds, item->id);
    it->question = pool_strdup(ds, item->question);
    it->answers = copy_answers(ds, item->answers, item->n_answers);
    it->plausible = copy_answers(ds, item->plausible, item->n_plausible);
    it->entity = item->entity ? pool_strdup(ds, item->entity) : NULL;
    it->attribute = item->attribute ? pool_strdup(ds, item->attribute) : NULL;
    if (!it->title || !it->context || !it->id || !it->question ||
        (item->n_answers > 0 && !it->answers) || (item->n_plausible > 0 && !it->plausible) ||
        (item->entity && !it->entity) || (item->attribute && !it->attribute))
        return dp_fail(err, DP_ERR_NOMEM, "dataset: out of memory");
    it->n_answers = item->n_answers > 0 ? item->n_answers : 0;
    it->n_plausible = item->n_plausible > 0 ? item->n_plausible : 0;
    it->is_impossible = item->is_impossible;
    it->kind = item->kind;
    it->changed = item->changed;
    if (!same_title) ds->n_articles++;
    if (!same_para) ds->n_paragraphs++;
    it->article = ds->n_articles - 1;
    it->paragraph = ds->n_paragraphs - 1;
    ds->n_items++;
    return DP_OK;
}

// ---- UTF-8 offsets ----

long qa_utf8_byte_offset(const char *context, long char_offset) {
    if (char_offset < 0) return -1;
    const unsigned char *p = (const unsigned char *)context;
    long chars = 0;
    size_t i = 0;
    while (chars < char_offset) {
        if (!p[i]) return -1;
        i++;
        while ((p[i] & 0xC0) == 0x80) i++;
        chars++;
    }
    return (long)i;
}

long qa_utf8_count(const char *s, size_t n_bytes) {
    long n = 0;
    for (size_t i = 0; i < n_bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

static int span_ok(const char *context, const QaAnswer *a) {
    long b = qa_utf8_byte_offset(context, a->answer_start);
    if (b < 0) return 0;
    size_t n = strlen(a->text);
    return strncmp(context + b, a->text, n) == 0;
}

// ---- loading ----

const char *qa_kind_name(QaKind k) {
    switch (k) {
    case QA_KIND_NONE: return "squad";
    case QA_KIND_FACT: return "fact";
    case QA_KIND_COMPREHENSION: return "comprehension";
    case QA_KIND_ARITHMETIC: return "arithmetic";
    default: return "other";
    }
}

QaKind qa_kind_from_name(const char *name) {
    if (!name) return QA_KIND_NONE;
    for (int k = 0; k < QA_N_KINDS; k++)
        if (!strcmp(name, qa_kind_name((QaKind)k))) return (QaKind)k;
    return QA_KIND_OTHER;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Context for path-naming errors while walking the tree. */
typedef struct {
    const char *name;
    DpError *err;
} Loader;

#define WRONG(L, path, v, want)                                                                \
    dp_fail((L)->err, DP_ERR_PARSE, "%s: %s: expected %s, got %s", (L)->name, path, want,      \
            (v) ? json_type_name(v) : "nothing (missing)")

/* Reads answers[] at path into a temporary array (malloc'd into *out). */
static DpStatus load_answers(Loader *L, json_t *arr, const char *path, QaAnswer **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!arr || json_is_null(arr)) return DP_OK;
    if (!json_is_array(arr)) return WRONG(L, path, arr, "an array");
    size_t n = json_array_size(arr);
    if (n == 0) return DP_OK;
    QaAnswer *a = calloc(n, sizeof *a);
    if (!a) return dp_fail(L->err, DP_ERR_NOMEM, "%s: out of memory", L->name);
    for (size_t i = 0; i < n; i++) {
        json_t *ans = json_array_get(arr, i);
        char p[256];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (!json_is_object(ans)) {
            free(a);
            return WRONG(L, p, ans, "an object");
        }
        json_t *text = json_object_get(ans, "text");
        json_t *start = json_object_get(ans, "answer_start");
        if (!json_is_string(text)) {
            free(a);
            char q[300];
            snprintf(q, sizeof q, "%s.text", p);
            return WRONG(L, q, text, "a string");
        }
        if (!json_is_integer(start)) {
            free(a);
            char q[300];
            snprintf(q, sizeof q, "%s.answer_start", p);
            return WRONG(L, q, start, "an integer");
        }
        a[i].text = json_string_value(text);
        a[i].answer_start = (int)json_integer_value(start);
    }
    *out = a;
    *n_out = (int)n;
    return DP_OK;
}

static DpStatus load_tree(Loader *L, json_t *root, QaDataset *ds) {
    DpStatus st = DP_OK;
    QaAnswer *answers = NULL, *plausible = NULL;
    if (!json_is_object(root)) return WRONG(L, "(root)", root, "an object");
    json_t *version = json_object_get(root, "version");
    if (json_is_string(version)) snprintf(ds->version, sizeof ds->version, "%s", json_string_value(version));
    json_t *data = json_object_get(root, "data");
    if (!json_is_array(data)) return WRONG(L, "data", data, "an array");
    size_t n_art = json_array_size(data);
    for (size_t a = 0; a < n_art; a++) {
        json_t *art = json_array_get(data, a);
        char pa[64];
        snprintf(pa, sizeof pa, "data[%zu]", a);
        if (!json_is_object(art)) return WRONG(L, pa, art, "an object");
        json_t *title = json_object_get(art, "title");
        if (title && !json_is_string(title)) {
            char q[96];
            snprintf(q, sizeof q, "%s.title", pa);
            return WRONG(L, q, title, "a string");
        }
        const char *title_s = pool_strdup(ds, title ? json_string_value(title) : "");
        if (!title_s) return dp_fail(L->err, DP_ERR_NOMEM, "%s: out of memory", L->name);
        json_t *paras = json_object_get(art, "paragraphs");
        if (!json_is_array(paras)) {
            char q[96];
            snprintf(q, sizeof q, "%s.paragraphs", pa);
            return WRONG(L, q, paras, "an array");
        }
        for (size_t p = 0; p < json_array_size(paras); p++) {
            json_t *para = json_array_get(paras, p);
            char pp[128];
            snprintf(pp, sizeof pp, "%s.paragraphs[%zu]", pa, p);
            if (!json_is_object(para)) return WRONG(L, pp, para, "an object");
            json_t *ctx = json_object_get(para, "context");
            if (!json_is_string(ctx)) {
                char q[160];
                snprintf(q, sizeof q, "%s.context", pp);
                return WRONG(L, q, ctx, "a string");
            }
            const char *ctx_s = pool_strdup(ds, json_string_value(ctx));
            if (!ctx_s) return dp_fail(L->err, DP_ERR_NOMEM, "%s: out of memory", L->name);
            json_t *qas = json_object_get(para, "qas");
            char pq[160];
            snprintf(pq, sizeof pq, "%s.qas", pp);
            if (!json_is_array(qas)) return WRONG(L, pq, qas, "an array");
            for (size_t q = 0; q < json_array_size(qas); q++) {
                json_t *qa = json_array_get(qas, q);
                char pi[192], pf[224];
                snprintf(pi, sizeof pi, "%s[%zu]", pq, q);
                if (!json_is_object(qa)) return WRONG(L, pi, qa, "an object");
                json_t *question = json_object_get(qa, "question");
                json_t *id = json_object_get(qa, "id");
                json_t *imp = json_object_get(qa, "is_impossible");
                json_t *kind = json_object_get(qa, "kind");
                json_t *entity = json_object_get(qa, "entity");
                json_t *attribute = json_object_get(qa, "attribute");
                json_t *changed = json_object_get(qa, "changed");
                snprintf(pf, sizeof pf, "%s.question", pi);
                if (!json_is_string(question)) return WRONG(L, pf, question, "a string");
                snprintf(pf, sizeof pf, "%s.id", pi);
                if (!json_is_string(id) && !json_is_integer(id)) return WRONG(L, pf, id, "a string");
                snprintf(pf, sizeof pf, "%s.is_impossible", pi);
                if (imp && !json_is_boolean(imp)) return WRONG(L, pf, imp, "a boolean");
                snprintf(pf, sizeof pf, "%s.kind", pi);
                if (kind && !json_is_string(kind)) return WRONG(L, pf, kind, "a string");
                snprintf(pf, sizeof pf, "%s.entity", pi);
                if (entity && !json_is_string(entity)) return WRONG(L, pf, entity, "a string");
                snprintf(pf, sizeof pf, "%s.attribute", pi);
                if (attribute && !json_is_string(attribute)) return WRONG(L, pf, attribute, "a string");
                snprintf(pf, sizeof pf, "%s.changed", pi);
                if (changed && !json_is_boolean(changed) && !json_is_integer(changed))
                    return WRONG(L, pf, changed, "a boolean");
                int n_ans = 0, n_pl = 0;
                snprintf(pf, sizeof pf, "%s.answers", pi);
                if ((st = load_answers(L, json_object_get(qa, "answers"), pf, &answers, &n_ans))) goto out;
                snprintf(pf, sizeof pf, "%s.plausible_answers", pi);
                if ((st = load_answers(L, json_object_get(qa, "plausible_answers"), pf, &plausible,
                                       &n_pl)))
                    goto out;
                QaItem *it = dataset_push(ds);
                if (!it) {
                    st = dp_fail(L->err, DP_ERR_NOMEM, "%s: out of memory", L->name);
                    goto out;
                }
                char idbuf[32];
                if (json_is_integer(id)) snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
                it->id = pool_strdup(ds, json_is_string(id) ? json_string_value(id) : idbuf);
                it->title = title_s;
                it->context = ctx_s;
                it->question = pool_strdup(ds, json_string_value(question));
                it->answers = copy_answers(ds, answers, n_ans);
                it->plausible = copy_answers(ds, plausible, n_pl);
                it->entity = entity ? pool_strdup(ds, json_string_value(entity)) : NULL;
                it->attribute = attribute ? pool_strdup(ds, json_string_value(attribute)) : NULL;
                if (!it->id || !it->question || (n_ans && !it->answers) || (n_pl && !it->plausible) ||
                    (entity && !it->entity) || (attribute && !it->attribute)) {
                    st = dp_fail(L->err, DP_ERR_NOMEM, "%s: out of memory", L->name);
                    goto out;
                }
                it->n_answers = n_ans;
                it->n_plausible = n_pl;
                it->is_impossible = imp ? json_is_true(imp) : 0;
                it->kind = kind ? qa_kind_from_name(json_string_value(kind)) : QA_KIND_NONE;
                it->changed = !changed ? -1 : json_is_boolean(changed) ? json_is_true(changed)
                                                                       : (json_integer_value(changed) != 0);
                it->article = ds->n_articles;
                it->paragraph = ds->n_paragraphs;
                for (int i = 0; i < n_ans; i++)
                    if (it->answers[i].answer_start >= 0 && !span_ok(ctx_s, &it->answers[i]))
                        ds->n_bad_spans++;
                ds->n_items++;
                free(answers);
                free(plausible);
                answers = plausible = NULL;
            }
            ds->n_paragraphs++;
        }
        ds->n_articles++;
    }
out:
    free(answers);
    free(plausible);
    return st;
}

DpStatus qa_squad_load_buffer(const char *data, size_t len, const char *name, QaDataset *ds,
                              DpError *err) {
    json_error_t jerr;
    qa_dataset_init(ds);
    json_t *root = json_loadb(data, len, 0, &jerr);
    if (!root)
        return dp_fail(err, DP_ERR_PARSE, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
    Loader L = {name, err};
    DpStatus st = load_tree(&L, root, ds);
    json_decref(root);
    if (st) {
        qa_dataset_free(ds);
        qa_dataset_init(ds);
    }
    return st;
}

DpStatus qa_squad_load(const char *path, QaDataset *ds, DpError *err) {
    char *buf = NULL;
    size_t len = 0;
    DpStatus st = dp_read_file(path, &buf, &len, err);
    if (st) return st;
    st = qa_squad_load_buffer(buf, len, path, ds, err);
    free(buf);
    return st;
}

// ---- saving ----

static json_t *answers_json(const QaAnswer *a, int n) {
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (int i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s,s:i}", "text", a[i].text, "answer_start", a[i].answer_start);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *item_json(const QaItem *it) {
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = json_object_set_new(o, "id", json_string(it->id));
    bad |= json_object_set_new(o, "question", json_string(it->question));
    bad |= json_object_set_new(o, "answers", answers_json(it->answers, it->n_answers));
    if (it->is_impossible) bad |= json_object_set_new(o, "is_impossible", json_true());
    if (it->n_plausible)
        bad |= json_object_set_new(o, "plausible_answers", answers_json(it->plausible, it->n_plausible));
    if (it->kind != QA_KIND_NONE) bad |= json_object_set_new(o, "kind", json_string(qa_kind_name(it->kind)));
    if (it->entity) bad |= json_object_set_new(o, "entity", json_string(it->entity));
    if (it->attribute) bad |= json_object_set_new(o, "attribute", json_string(it->attribute));
    if (it->changed >= 0) bad |= json_object_set_new(o, "changed", json_boolean(it->changed));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

DpStatus qa_squad_save(const QaDataset *ds, const char *path, DpError *err) {
    DpStatus st = DP_OK;
    char *text = NULL;
    json_t *root = json_pack("{s:s,s:[]}", "version", "1.1", "data");
    if (!root) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", path);
    json_t *data = json_object_get(root, "data");
    json_t *paras = NULL, *qas = NULL;
    for (size_t i = 0; i < ds->n_items; i++) {
        const QaItem *it = &ds->items[i];
        const QaItem *prev = i ? &ds->items[i - 1] : NULL;
        if (!prev || prev->article != it->article) {
            json_t *art = json_pack("{s:s,s:[]}", "title", it->title, "paragraphs");
            if (!art || json_array_append_new(data, art)) goto nomem;
            paras = json_object_get(art, "paragraphs");
            prev = NULL;
        }
        if (!prev || prev->paragraph != it->paragraph) {
            json_t *para = json_pack("{s:s,s:[]}", "context", it->context, "qas");
            if (!para || json_array_append_new(paras, para)) goto nomem;
            qas = json_object_get(para, "qas");
        }
        json_t *o = item_json(it);
        if (!o || json_array_append_new(qas, o)) goto nomem;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (!text) goto nomem;
    st = dp_write_file_atomic(path, text, strlen(text), err);
    goto out;
nomem:
    st = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory building JSON", path);
out:
    free(text);
    json_decref(root);
    return st;
}

// ---- split by article ----

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

DpStatus qa_dataset_split_by_title(const QaDataset *ds, double heldout_fraction, uint64_t seed,
                                   QaDataset *train, QaDataset *heldout, DpError *err) {
    DpStatus st = DP_OK;
    const char **titles = NULL;
    int *order = NULL;
    if (!(heldout_fraction >= 0 && heldout_fraction <= 1))
        return dp_fail(err, DP_ERR_INVAL, "split: held-out fraction %g not in [0, 1]", heldout_fraction);
    qa_dataset_init(train);
    qa_dataset_init(heldout);
    /* Distinct titles, sorted so the split does not depend on item order. */
    titles = malloc((ds->n_items ? ds->n_items : 1) * sizeof *titles);
    if (!titles) return dp_fail(err, DP_ERR_NOMEM, "split: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < ds->n_items; i++)
        if (i == 0 || ds->items[i].title != ds->items[i - 1].title) titles[n++] = ds->items[i].title;
    qsort(titles, n, sizeof *titles, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(titles[i], titles[u - 1])) titles[u++] = titles[i];
    order = malloc((u ? u : 1) * sizeof *order);
    if (!order) {
        st = dp_fail(err, DP_ERR_NOMEM, "split: out of memory");
        goto out;
    }
    for (size_t i = 0; i < u; i++) order[i] = (int)i;
    DpRng rng;
    dp_rng_seed(&rng, seed);
    dp_rng_shuffle_int(&rng, order, u);
    size_t n_held = (size_t)(heldout_fraction * (double)u + 0.5);
    if (heldout_fraction > 0 && n_held == 0 && u >= 2) n_held = 1;
    if (n_held > u) n_held = u;
    /* held[i] for sorted title i. */
    char *held = calloc(u ? u : 1, 1);
    if (!held) {
        st = dp_fail(err, DP_ERR_NOMEM, "split: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_held; i++) held[order[i]] = 1;
    for (size_t i = 0; i < ds->n_items && !st; i++) {
        const char *t = ds->items[i].title;
        const char **hit = bsearch(&t, titles, u, sizeof *titles, cmp_str);
        DP_ASSERT(hit);
        st = qa_dataset_add(held[hit - titles] ? heldout : train, &ds->items[i], err);
    }
    free(held);
out:
    free(titles);
    free(order);
    if (st) {
        qa_dataset_free(train);
        qa_dataset_free(heldout);
    }
    return st;
}

DpStatus qa_dataset_split_random(const QaDataset *ds, double heldout_fraction, uint64_t seed,
                                 QaDataset *train, QaDataset *heldout, DpError *err) {
    if (!(heldout_fraction >= 0 && heldout_fraction <= 1))
        return dp_fail(err, DP_ERR_INVAL, "split: held-out fraction %g not in [0, 1]", heldout_fraction);
    qa_dataset_init(train);
    qa_dataset_init(heldout);
    size_t n = ds->n_items;
    int *order = malloc((n ? n : 1) * sizeof *order);
    char *held = calloc(n ? n : 1, 1);
    DpStatus st = DP_OK;
    if (!order || !held || n > (size_t)INT32_MAX) {
        st = dp_fail(err, DP_ERR_NOMEM, "split: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) order[i] = (int)i;
    DpRng rng;
    dp_rng_seed(&rng, seed);
    dp_rng_shuffle_int(&rng, order, n);
    size_t n_held = (size_t)(heldout_fraction * (double)n + 0.5);
    for (size_t i = 0; i < n_held && i < n; i++) held[order[i]] = 1;
    for (size_t i = 0; i < n && !st; i++) st = qa_dataset_add(held[i] ? heldout : train, &ds->items[i], err);
out:
    free(order);
    free(held);
    if (st) {
        qa_dataset_free(train);
        qa_dataset_free(heldout);
    }
    return st;
}

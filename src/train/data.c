/* Reading the labelled window the retrain job learns from: the inference
 * service's JSON-lines log of labelled questions, or a SQuAD JSON file. */
#include "train.h"

#include <stdlib.h>
#include <string.h>

/* A SQuAD file is one JSON object with a "data" array; a JSON-lines log has
 * one object per line.  Peek: parse the whole text as one value first. */
static int looks_like_squad(const char *text, size_t len) {
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    int yes = o && json_is_object(o) && json_is_array(json_object_get(o, "data"));
    json_decref(o);
    return yes;
}

static DpStatus add_line(QaDataset *ds, json_t *o, const char *path, int line, DpError *err) {
    const char *q = json_string_value(json_object_get(o, "question"));
    if (!q) return dp_fail(err, DP_ERR_PARSE, "%s line %d: missing \"question\"", path, line);
    const char *ctx = json_string_value(json_object_get(o, "context"));
    const char *refs[16];
    int nr = 0;
    static const char *const keys[] = {"reference", "references", "answer", "answers"};
    for (size_t k = 0; k < 4 && nr == 0; k++) {
        json_t *v = json_object_get(o, keys[k]);
        if (json_is_string(v)) {
            refs[nr++] = json_string_value(v);
        } else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (nr >= 16) break;
                if (json_is_string(e)) refs[nr++] = json_string_value(e);
                else if (json_is_object(e) && json_is_string(json_object_get(e, "text")))
                    refs[nr++] = json_string_value(json_object_get(e, "text"));
            }
        }
    }
    if (nr == 0)
        return dp_fail(err, DP_ERR_PARSE, "%s line %d: no \"reference\" (string or array)", path,
                       line);
    QaAnswer ans[16];
    for (int i = 0; i < nr; i++) {
        ans[i].text = refs[i];
        ans[i].answer_start = -1;
    }
    QaItem it;
    memset(&it, 0, sizeof it);
    char id[32];
    snprintf(id, sizeof id, "line-%d", line);
    const char *given_id = json_string_value(json_object_get(o, "id"));
    it.id = given_id ? given_id : id;
    const char *kind = json_string_value(json_object_get(o, "kind"));
    it.kind = kind ? qa_kind_from_name(kind) : QA_KIND_NONE;
    it.entity = json_string_value(json_object_get(o, "entity"));
    it.attribute = json_string_value(json_object_get(o, "attribute"));
    json_t *ch = json_object_get(o, "changed");
    it.changed = json_is_boolean(ch) ? json_is_true(ch) : json_is_integer(ch) ? (int)json_integer_value(ch) : -1;
    /* One "article" per kind keeps the dataset's grouping cheap. */
    it.title = kind ? kind : "window";
    it.context = ctx ? ctx : "";
    it.question = q;
    it.answers = ans;
    it.n_answers = nr;
    return qa_dataset_add(ds, &it, err);
}

DpStatus train_load_labelled(const char *path, QaDataset *ds, DpError *err) {
    qa_dataset_init(ds);
    char *text = NULL;
    size_t len = 0;
    DpStatus st = dp_read_file(path, &text, &len, err);
    if (st) return st;
    if (looks_like_squad(text, len)) {
        free(text);
        return qa_squad_load(path, ds, err);
    }
    int line = 0;
    char *p = text;
    while (p && *p) {
        line++;
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k < n) {
            json_error_t je;
            json_t *o = json_loadb(p, n, 0, &je);
            if (!o || !json_is_object(o)) {
                json_decref(o);
                st = dp_fail(err, DP_ERR_PARSE, "%s line %d column %d: %s", path, line, je.column,
                             o ? "expected a JSON object" : je.text);
                goto fail;
            }
            st = add_line(ds, o, path, line, err);
            json_decref(o);
            if (st) goto fail;
        }
        p = nl ? nl + 1 : NULL;
    }
    free(text);
    return DP_OK;
fail:
    free(text);
    qa_dataset_free(ds);
    return st;
}

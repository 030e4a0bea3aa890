/* libFuzzer harness for the model file parsers of src/nn: the safetensors
 * header (safetensors_parse, then conversion of every tensor it accepts) and
 * config.json (gpt2_config_parse).  The first input byte picks the parser so
 * one corpus covers both.  Build and run: see fuzz/README.md. */
#include "nn.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    DpError err;
    if (data[0] & 1) {
        /* config.json: needs a NUL-terminated string */
        char *text = malloc(size);
        if (!text) return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        Gpt2Config cfg;
        if (gpt2_config_parse(text, "fuzz-config.json", &cfg, &err) == DP_OK) {
            /* a config that parses must also validate */
            if (gpt2_config_validate(&cfg, "fuzz", &err) != DP_OK) abort();
        }
        free(text);
        return 0;
    }
    Safetensors st;
    if (safetensors_parse(data + 1, size - 1, "fuzz.safetensors", &st, &err) != DP_OK) return 0;
    for (int i = 0; i < st.n_tensors; i++) {
        const SafetensorsTensor *t = &st.tensors[i];
        if (safetensors_find(&st, t->name) == NULL) abort();
        if (t->numel > (1u << 20)) continue;
        float *f = malloc(t->numel * sizeof(float) + 1);
        int *v = malloc(t->numel * sizeof(int) + 1);
        if (f && v) {
            safetensors_to_f32(&st, t, f, t->numel, &err);
            safetensors_to_i32(&st, t, v, t->numel, &err);
        }
        free(f);
        free(v);
    }
    safetensors_free(&st);
    return 0;
}

// nn internal header: kernels shared by gpt2.c (training) and generate.c
// (KV-cache inference).  Not part of the public API.
#ifndef DRIFTPILOT_GPT2_IMPL_H
#define DRIFTPILOT_GPT2_IMPL_H

#include "nn.h"

/* Rows of work below which a kernel runs on one thread: OpenMP's fork/join
 * costs more than the work for the tiny models and single-token decode. */
#define GPT2_PAR_MIN_WORK 32768

// out (N,C) = LayerNorm(inp (N,C)) * w + b; mean/rstd (N) may be NULL.
void gpt2_k_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w,
                      const float *b, int N, int C, float eps);
// out (N,OC) = inp (N,IC) @ W (IC,OC) + bias (OC, may be NULL).
void gpt2_k_matmul(float *out, const float *inp, const float *W, const float *bias, int N, int IC,
                   int OC);
// out (n) = gelu(inp (n)) in place allowed.
void gpt2_k_gelu(float *out, const float *inp, size_t n, Gpt2Activation act);
// A model with allocated, uninitialised parameters (hf.c fills them).
DpStatus gpt2_alloc_(const Gpt2Config *cfg, Gpt2 **out, DpError *err);
// logits (N,V) = x (N,C) @ wte (V,C)^T.
void gpt2_k_lm_head(float *logits, const float *x, const float *wte, int N, int C, int V);

#endif

/*
 * nn: the GPT-2 engine — Hugging Face model directories (config.json,
 * model.safetensors, vocab.json, merges.txt), byte-level BPE, forward,
 * backward, AdamW and generation with a KV cache.
 *
 * (Each section below is owned by one file group; see the section headers.)
 */
#ifndef DRIFTPILOT_NN_H
#define DRIFTPILOT_NN_H

#include "core.h"

#include <stddef.h>
#include <stdint.h>

// ==== tokenizer (bpe.c) ====
/*
 * GPT-2 byte-level BPE (bpe.c, bpe_train.c, bpe_unicode.c).
 *
 * A BpeTokenizer holds a vocabulary (token string -> id, as in vocab.json),
 * the ranked merges of merges.txt, and "atomic" tokens that are matched
 * literally before pre-tokenization: <|endoftext|> when the caller allows
 * special tokens, and the forced whole tokens of a trained vocabulary (kept in
 * added_tokens.json beside vocab.json).  Encoding follows GPT-2 exactly: text
 * is split by GPT-2's pre-tokenizer regex (implemented by hand over UTF-8),
 * each pre-token's bytes are mapped to GPT-2's byte alphabet, and merges are
 * applied lowest rank first.  Invalid UTF-8 is not an error: each invalid
 * byte is one "other" character, and decode gives the bytes back.
 *
 * Ownership: bpe_load_* and bpe_train return a tokenizer the caller frees
 * with bpe_free (NULL-safe).  Arrays returned through out-parameters (ids,
 * decoded text) are malloc'd and owned by the caller (free()).  Strings
 * returned by bpe_token_str/bpe_token_bytes are borrowed from the tokenizer.
 *
 * Thread safety: after loading, a tokenizer is read-only except for its
 * internal pre-token cache, which is sharded and locked; bpe_encode and
 * bpe_decode may be called from many threads at once on one tokenizer.
 *
 *     BpeTokenizer *tok = NULL;
 *     DpError err;
 *     if (bpe_load_dir("models/distilgpt2", &tok, &err) != DP_OK) { ... err.msg ... }
 *     int *ids = NULL;
 *     size_t n = 0;
 *     if (bpe_encode(tok, "Hello world", 11, 0, &ids, &n, &err) == DP_OK)
 *         ... ids = {15496, 995}, n = 2 ...
 *     free(ids);
 *     bpe_free(tok);
 */
typedef struct BpeTokenizer BpeTokenizer;

/* Loads vocab.json and merges.txt (and added_tokens.json when present) from
 * dir.  Errors name the file and line (merges) or position (JSON). */
DpStatus bpe_load_dir(const char *dir, BpeTokenizer **out, DpError *err);
/* Same from two explicit paths (no added tokens). */
DpStatus bpe_load_files(const char *vocab_path, const char *merges_path, BpeTokenizer **out,
                        DpError *err);
/* Same from in-memory file contents (added_json may be NULL); the names are
 * used in error messages only.  The buffers need not be NUL-terminated. */
DpStatus bpe_load_buffers(const char *vocab_json, size_t vocab_len, const char *merges_txt,
                          size_t merges_len, const char *added_json, size_t added_len,
                          const char *vocab_name, const char *merges_name, BpeTokenizer **out,
                          DpError *err);
/* Writes vocab.json, merges.txt (and added_tokens.json when the tokenizer has
 * forced tokens) into dir (created if missing), each atomically. */
DpStatus bpe_save_dir(const BpeTokenizer *tok, const char *dir, DpError *err);
void bpe_free(BpeTokenizer *tok);

/* Encodes text[0..len) into *ids (malloc'd, caller frees; NULL with *n_ids 0
 * for empty text).  allow_special = 0 treats "<|endoftext|>" as plain text
 * (GPT-2's default); 1 maps it to bpe_eot_id().  Fails only on out-of-memory. */
DpStatus bpe_encode(const BpeTokenizer *tok, const char *text, size_t len, int allow_special,
                    int **ids, size_t *n_ids, DpError *err);
/* Decodes ids to the exact bytes they stand for (*out malloc'd and
 * NUL-terminated, caller frees).  An id outside [0, vocab size) is
 * DP_ERR_INVAL naming its index. */
DpStatus bpe_decode(const BpeTokenizer *tok, const int *ids, size_t n_ids, char **out,
                    size_t *len, DpError *err);
/* As bpe_decode, then replaces invalid UTF-8 with U+FFFD as GPT-2's
 * decode(errors="replace") does, so the result is always valid UTF-8. */
DpStatus bpe_decode_text(const BpeTokenizer *tok, const int *ids, size_t n_ids, char **out,
                         size_t *len, DpError *err);

int bpe_vocab_size(const BpeTokenizer *tok);
int bpe_n_merges(const BpeTokenizer *tok);
/* The id of "<|endoftext|>", or -1 when the vocabulary has none. */
int bpe_eot_id(const BpeTokenizer *tok);
/* The token's vocab.json string (GPT-2 byte alphabet, e.g. "\u0120world"), or
 * NULL for an id out of range.  Borrowed. */
const char *bpe_token_str(const BpeTokenizer *tok, int id);
/* The raw bytes a token stands for (" world"); *len gets their count.  NULL
 * for an id out of range.  Borrowed. */
const char *bpe_token_bytes(const BpeTokenizer *tok, int id, size_t *len);
/* The id of a vocab.json string, or -1. */
int bpe_token_id(const BpeTokenizer *tok, const char *vocab_str);

/* Options for bpe_train.  Zero-initialise, then set vocab_size. */
typedef struct {
    int vocab_size;           /* total ids wanted: 256 bytes + merges + forced + 1 (eot) */
    int keep_digits_apart;    /* never merge a token holding an ASCII digit */
    int min_pair_count;       /* stop when the best pair occurs fewer times (default 2) */
    const char *const *forced_tokens; /* whole words made single tokens, with and  */
    int n_forced;                     /* without a leading space, e.g. "jade-93"   */
} BpeTrainOptions;

/* Trains a byte-level BPE vocabulary on texts (lens may be NULL for
 * NUL-terminated texts) with GPT-2's pre-tokenizer: ids 0..255 are the bytes
 * (in GPT-2's order), then one id per merge (highest pair count first; ties
 * go to the smaller (left id, right id)), then the forced tokens, then
 * "<|endoftext|>" as the last id.  Fewer ids result when the corpus runs out
 * of pairs.  Deterministic.  DP_ERR_INVAL when vocab_size is out of range or
 * cannot hold the forced words, or a forced word is empty or not UTF-8. */
DpStatus bpe_train(const char *const *texts, const size_t *lens, size_t n_texts,
                   const BpeTrainOptions *opts, BpeTokenizer **out, DpError *err);
// ==== end tokenizer ====

// ==== model (gpt2*.c, safetensors.c, hf.c, generate.c) ====
/*
 * GPT-2 model engine.  What it is: Hugging Face GPT2LMHeadModel semantics
 * (pre-LayerNorm blocks, causal attention scaled by 1/sqrt(head size), GELU
 * MLP, tied lm_head) in float32 on the CPU, with forward, backward, AdamW and
 * KV-cache generation.  Weights are kept in the Hugging Face "Conv1D" layout
 * ([in, out] for every projection), so loading and saving are plain copies.
 *
 * Memory (as llm.c does it): one allocation for all parameters, one for their
 * gradients, one each for AdamW's m and v, and one for the activations sized
 * from (B, T) by gpt2_reserve().  Nothing is allocated inside forward,
 * backward or the optimizer step.
 *
 * Ownership: a Gpt2 is created by gpt2_load_dir / gpt2_load_files /
 * gpt2_create and released with gpt2_free (NULL-safe).  Every pointer inside
 * it is owned by it.  Borrowed inputs (token ids, masks) are never kept.
 *
 * Threads: the kernels use OpenMP and OpenBLAS internally; one Gpt2 must not
 * be used by two threads at once (forward writes its activations).  A
 * Gpt2Generator reads the model's parameters only, so several generators can
 * share one model as long as nobody trains it meanwhile.
 *
 * Usage (fine-tuning step):
 *     Gpt2 *m = NULL;  DpError err;
 *     if (gpt2_load_dir("distilgpt2", &m, &err)) { puts(err.msg); ... }
 *     gpt2_reserve(m, B, T, GPT2_RESERVE_TRAIN, &err);
 *     Gpt2AdamW opt = gpt2_adamw_default();
 *     for (int step = 1; ...; step++) {
 *         float loss;
 *         gpt2_forward(m, inputs, targets, mask, B, T, &loss, &err);
 *         gpt2_zero_grad(m);
 *         gpt2_backward(m, &err);
 *         gpt2_clip_grad_norm(m, 1.0f);
 *         gpt2_adamw_step(m, &opt, step);
 *     }
 *     gpt2_save_dir(m, "out", "distilgpt2", &err);   // copies vocab.json/merges.txt
 *     gpt2_free(m);
 */

typedef enum {
    GPT2_ACT_GELU_TANH = 0, /* "gelu_new", "gelu_pytorch_tanh", "gelu_fast" */
    GPT2_ACT_GELU_ERF = 1,  /* "gelu": exact, with erf */
} Gpt2Activation;

typedef struct {
    int n_layer;
    int n_head;
    int n_embd;             /* C */
    int n_inner;            /* MLP width; config null means 4*n_embd */
    int n_positions;        /* maximum sequence length (n_ctx is accepted too) */
    int vocab_size;         /* V */
    float layer_norm_epsilon;
    Gpt2Activation activation;
    int bos_token_id;       /* -1 when the config has none */
    int eos_token_id;       /* -1 when the config has none */
} Gpt2Config;

/* The 16 parameter tensors, in the order they sit in the parameter block.
 * Per-layer tensors are stacked with the layer first.  Shapes (L layers,
 * C = n_embd, I = n_inner, V = vocab_size, P = n_positions):
 *   wte (V,C)  wpe (P,C)  ln1w ln1b (L,C)  qkvw (L,C,3C)  qkvb (L,3C)
 *   attprojw (L,C,C)  attprojb (L,C)  ln2w ln2b (L,C)  fcw (L,C,I)  fcb (L,I)
 *   fcprojw (L,I,C)  fcprojb (L,C)  lnfw lnfb (C)
 * Projection weights are [in, out] (Hugging Face Conv1D). */
#define GPT2_N_PARAM_TENSORS 16
typedef struct {
    float *wte, *wpe, *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb, *lnfw, *lnfb;
} Gpt2Params;

typedef struct Gpt2Work Gpt2Work; /* private: activations and scratch */

typedef struct {
    Gpt2Config config;
    size_t param_sizes[GPT2_N_PARAM_TENSORS];
    size_t n_params;        /* total floats in the parameter block */
    float *params_memory;   /* one block, n_params floats */
    Gpt2Params params;      /* pointers into params_memory */
    float *grads_memory;    /* NULL until gpt2_reserve(..., GPT2_RESERVE_TRAIN) */
    Gpt2Params grads;
    float *adam_m;          /* AdamW first and second moments (train only) */
    float *adam_v;
    char *config_json;      /* the source config.json text (NULL if none), kept so
                               that saving preserves fields we do not interpret */
    /* Set by gpt2_reserve: */
    int max_B, max_T;
    int training;
    Gpt2Work *work;
    /* Set by gpt2_forward: */
    int B, T;               /* shape of the last forward */
    float *logits;          /* (B,T,V) of the last forward.  gpt2_backward
                               overwrites it with d loss / d logits. */
    float loss;             /* mean masked loss of the last forward, or -1 */
} Gpt2;

/* ---- safetensors files (safetensors.c) ---- */

/* A parsed safetensors file: an 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
 * the data.  Every tensor's range is checked to lie inside the data and not
 * to overlap another; shapes must agree with the byte counts. */
typedef enum {
    SAFETENSORS_F32 = 0, SAFETENSORS_F16, SAFETENSORS_BF16, SAFETENSORS_F64,
    SAFETENSORS_I32, SAFETENSORS_I64, SAFETENSORS_I16, SAFETENSORS_I8,
    SAFETENSORS_U8, SAFETENSORS_BOOL,
} SafetensorsDtype;
#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef struct {
    char *name;
    SafetensorsDtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t numel;
    const unsigned char *data;  /* points into the file's bytes */
    size_t nbytes;
} SafetensorsTensor;

typedef struct {
    char *source;               /* file name for messages */
    int n_tensors;
    SafetensorsTensor *tensors;
    void *map;                  /* mmap'd or heap bytes when owned, else NULL */
    size_t map_len;
    int map_is_mmap;
} Safetensors;

/* Parses len bytes at buf (borrowed: the tensors point into it, so buf must
 * outlive st).  source names the file in errors.  On error st is empty. */
DpStatus safetensors_parse(const void *buf, size_t len, const char *source, Safetensors *st,
                           DpError *err);
/* Maps path read-only and parses it; st owns the mapping. */
DpStatus safetensors_open(const char *path, Safetensors *st, DpError *err);
void safetensors_free(Safetensors *st);   /* NULL-safe; zeroes st */
const SafetensorsTensor *safetensors_find(const Safetensors *st, const char *name);
const char *safetensors_dtype_name(SafetensorsDtype d);
/* Converts a float tensor (F32, F16, BF16, F64) or an integer tensor to n
 * floats; DP_ERR_INVAL (naming file and tensor) when numel != n. */
DpStatus safetensors_to_f32(const Safetensors *st, const SafetensorsTensor *t, float *out,
                            size_t n, DpError *err);
/* Converts an integer tensor (I32, I64, I16, I8, U8) to n ints. */
DpStatus safetensors_to_i32(const Safetensors *st, const SafetensorsTensor *t, int *out,
                            size_t n, DpError *err);

/* One tensor to write: F32 data, borrowed. */
typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
} SafetensorsWriteItem;
/* Writes n F32 tensors to path atomically with __metadata__ {"format":"pt"}. */
DpStatus safetensors_write_f32(const char *path, const SafetensorsWriteItem *items, int n,
                               DpError *err);

/* ---- configuration and files (hf.c) ---- */

/* Parses a Hugging Face GPT-2 config.json text.  source names the file in
 * error messages.  Refuses (DP_ERR_INVAL, naming the field) anything that
 * changes the computation in a way this engine does not implement. */
DpStatus gpt2_config_parse(const char *json_text, const char *source, Gpt2Config *cfg,
                           DpError *err);
/* Checks ranges and consistency (n_embd % n_head, limits on sizes). */
DpStatus gpt2_config_validate(const Gpt2Config *cfg, const char *source, DpError *err);
/* Name used in config.json for an activation ("gelu_new" or "gelu"). */
const char *gpt2_activation_name(Gpt2Activation a);

/* Loads DIR/config.json and DIR/model.safetensors.  *out is owned by the
 * caller (gpt2_free).  On error *out is NULL and err names file and field. */
DpStatus gpt2_load_dir(const char *dir, Gpt2 **out, DpError *err);
/* Loads weights from a safetensors file with a given config (for directories
 * without config.json).  F32, F16 and BF16 are accepted and converted. */
DpStatus gpt2_load_files(const Gpt2Config *cfg, const char *safetensors_path, Gpt2 **out,
                         DpError *err);
/* Writes DIR/config.json and DIR/model.safetensors (F32, `transformer.`
 * prefix, __metadata__ {"format":"pt"}), each atomically; creates DIR.  When
 * tokenizer_dir is not NULL, its vocab.json and merges.txt (those that exist)
 * are copied byte for byte into DIR. */
DpStatus gpt2_save_dir(const Gpt2 *model, const char *dir, const char *tokenizer_dir,
                       DpError *err);

/* ---- parameter naming (gpt2.c) ---- */

/* Number of named tensors in the Hugging Face layout: 2 + 12*n_layer + 2. */
int gpt2_n_named_tensors(const Gpt2Config *cfg);
/* Describes named tensor i: its Hugging Face name without prefix
 * ("h.0.attn.c_attn.weight"), shape, and offset (in floats) inside the
 * parameter block (the same offset works for grads, adam_m, adam_v).
 * Returns 0 when i is out of range. */
typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
    size_t offset;
    size_t numel;
    int no_decay;           /* bias or LayerNorm weight (HF Trainer's rule) */
} Gpt2TensorInfo;
int gpt2_tensor_info(const Gpt2Config *cfg, int i, Gpt2TensorInfo *info);

/* ---- model (gpt2.c) ---- */

/* A model with Hugging Face's initialisation: normal(0, 0.02) weights,
 * residual projections normal(0, 0.02/sqrt(2*n_layer)), zero biases, unit
 * LayerNorm weights.  Deterministic in seed. */
DpStatus gpt2_create(const Gpt2Config *cfg, uint64_t seed, Gpt2 **out, DpError *err);
/* Frees everything the model owns.  NULL-safe. */
void gpt2_free(Gpt2 *model);

#define GPT2_RESERVE_INFER 0
#define GPT2_RESERVE_TRAIN 1
/* Allocates activations for batches up to B x T (T <= n_positions); with
 * GPT2_RESERVE_TRAIN also gradients and AdamW state (zeroed).  May be called
 * again to grow; gradients and optimizer state are kept. */
DpStatus gpt2_reserve(Gpt2 *model, int B, int T, int flags, DpError *err);

/* Forward over inputs (B,T) token ids.  When targets (B,T) is not NULL,
 * also computes the cross-entropy loss: sum(mask*nll)/sum(mask) with mask
 * (B,T) weights (NULL: all ones; an all-zero mask gives loss 0).  The loss is
 * stored in model->loss and *loss (when not NULL); model->logits holds
 * (B,T,V).  Needs B <= max_B, T <= max_T; ids are checked (DP_ERR_INVAL). */
DpStatus gpt2_forward(Gpt2 *model, const int *inputs, const int *targets, const float *mask,
                      int B, int T, float *loss, DpError *err);
/* Sets all gradients to zero. */
void gpt2_zero_grad(Gpt2 *model);
/* Adds d loss / d params of the last forward (which must have had targets)
 * to model->grads.  Overwrites model->logits.  Needs GPT2_RESERVE_TRAIN. */
DpStatus gpt2_backward(Gpt2 *model, DpError *err);

typedef struct {
    float lr;
    float beta1, beta2, eps;
    float weight_decay;     /* decoupled: p -= lr*wd*p */
    int decay_all;          /* 1: decay every tensor (torch.optim.AdamW on all
                               params); 0: skip biases and LayerNorm weights as
                               Hugging Face's Trainer does (embeddings decay) */
} Gpt2AdamW;
/* lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, decay_all 1:
 * torch.optim.AdamW's defaults. */
Gpt2AdamW gpt2_adamw_default(void);
/* One AdamW update with bias correction for step t (1-based), computed the
 * way torch.optim.AdamW does it. */
void gpt2_adamw_step(Gpt2 *model, const Gpt2AdamW *opt, int t);
/* Global L2 norm of the gradients; when max_norm > 0 and the norm exceeds it,
 * scales all gradients by max_norm/norm.  Returns the norm before clipping. */
float gpt2_clip_grad_norm(Gpt2 *model, float max_norm);

/* ---- generation with a KV cache (generate.c) ---- */

/* A generator holds a KV cache for up to max_seqs sequences of up to
 * n_positions tokens each, plus scratch for max_rows tokens processed in one
 * call.  It borrows the model (which must outlive it and not be freed or
 * trained meanwhile). */
typedef struct Gpt2Generator Gpt2Generator;

/* max_ctx: tokens per sequence (0 or > n_positions: n_positions).  The cache
 * takes 2 * n_layer * max_seqs * max_ctx * n_embd floats. */
DpStatus gpt2_generator_create(const Gpt2 *model, int max_seqs, int max_ctx, int max_rows,
                               Gpt2Generator **out, DpError *err);
void gpt2_generator_destroy(Gpt2Generator *g);   /* NULL-safe */
/* Forgets the cached tokens of sequence seq (or all when seq < 0). */
void gpt2_generator_reset(Gpt2Generator *g, int seq);
/* Number of tokens cached for seq. */
int gpt2_generator_length(const Gpt2Generator *g, int seq);
/* Appends n tokens: token[i] goes to the end of sequence seq[i] (rows of the
 * same sequence in order).  Runs them through the model (prefill and decode
 * are the same call) and returns, in *logits (owned by g, valid until the
 * next call), a (max_seqs, V) table where row s holds the next-token logits
 * of sequence s if s was fed in this call.  Rows beyond max_rows are
 * processed in chunks.  DP_ERR_INVAL when a sequence would pass n_positions. */
DpStatus gpt2_generator_feed(Gpt2Generator *g, int n, const int *seq, const int *token,
                             const float **logits, DpError *err);

typedef struct {
    int max_new_tokens;
    float temperature;      /* <= 0: greedy (argmax) */
    int top_k;              /* 0: off */
    float top_p;            /* >= 1: off */
    int eos_id;             /* stop a sequence after emitting it; -1: none */
    /* Optional: called after each new token with the sequence's generated
     * tokens so far; nonzero stops that sequence (the caller decodes and
     * checks stop strings, so nn does not depend on the tokenizer). */
    int (*stop)(void *ctx, int seq, const int *tokens, int n);
    void *stop_ctx;
} Gpt2Sampling;
/* Greedy, max 32 tokens, no eos, no stop callback. */
Gpt2Sampling gpt2_sampling_default(void);

/* Picks a token from logits (V) with the settings (temperature, top-k,
 * top-p; ties at the cut are kept, as Hugging Face does).  scratch must hold
 * GPT2_SAMPLE_SCRATCH(V) bytes.  rng may be NULL for greedy. */
#define GPT2_SAMPLE_SCRATCH(V) ((size_t)(V) * 8u)
int gpt2_sample(const float *logits, int V, const Gpt2Sampling *s, DpRng *rng, void *scratch);

/* Generates continuations for n_seqs prompts at once (batched decode; each
 * sequence keeps its own length).  Resets the generator's sequences
 * 0..n_seqs-1 first.  out[i] must hold max_new_tokens ids; out_len[i] gets
 * how many were produced (generation stops at eos (which is included), the
 * stop callback, max_new_tokens or the context size).  rng may be NULL for
 * greedy. */
DpStatus gpt2_generate(Gpt2Generator *g, int n_seqs, const int *const *prompts,
                       const int *prompt_len, const Gpt2Sampling *s, DpRng *rng, int **out,
                       int *out_len, DpError *err);

/* ---- checks against reference vectors (gpt2_check.c) ---- */

/* Compares the model with a vectors file written by gpt2_reference.py
 * (inputs, targets, logits, loss, grad.*, adamw1.*, adamw2.*, prompt,
 * greedy).  Runs forward, backward, two AdamW steps (lr 1e-3, betas 0.9/0.999,
 * eps 1e-8, wd 0.01 on all tensors) and greedy decoding.  The model's
 * parameters, gradients and AdamW state are restored afterwards.
 *
 * AdamW tolerance: Adam's first step is lr*g/(|g|+eps), which turns a tiny
 * gradient difference into a large weight difference where |g| is near eps.
 * So each weight's tolerance is 1e-6 plus, per step taken,
 * lr*|f(g_ours) - f(g_ref)| with f(g) = g/(|g|+eps) and g the step-1
 * gradients: the AdamW groups check the optimizer's arithmetic given
 * gradients that the grad.* groups check.  The attention key bias is left
 * out of the AdamW groups: its true gradient is exactly zero (a constant
 * added to a softmax row's scores changes nothing), both sides hold float
 * noise of either sign there, and Adam's steps (about lr*sign(g)) follow the
 * noise; its gradient is still compared. */
#define GPT2_CHECK_MAX_GROUPS 24
typedef struct {
    char name[32];          /* "logits", "loss", "grad.wte", "adamw1", "greedy", ... */
    double max_abs;         /* largest |ours - ref| */
    double max_rel;         /* largest |ours - ref| / |ref| where |ref| > atol */
    double worst;           /* largest error in units of the tolerance (<= 1 passes) */
    double tol_rel, tol_abs;
    size_t n;               /* values compared */
    size_t n_skipped;       /* AdamW only: attention key bias values left out */
    size_t n_widened;       /* AdamW only: weights whose tolerance grew by more
                               than a tenth because our gradient and the
                               reference one differ (see gpt2_check_vectors) */
    int pass;
} Gpt2CheckGroup;
typedef struct {
    int n_groups;
    Gpt2CheckGroup groups[GPT2_CHECK_MAX_GROUPS];
    int pass;               /* all groups pass */
} Gpt2CheckReport;
/* tolerance_scale multiplies every tolerance (1 = the tolerances:
 * logits/grads 1e-4 rel or 1e-5 abs, loss 1e-5, AdamW 1e-6, greedy exact). */
DpStatus gpt2_check_vectors(Gpt2 *model, const char *vectors_path, double tolerance_scale,
                            Gpt2CheckReport *report, DpError *err);
/* Prints the report as an aligned table. */
void gpt2_check_print(const Gpt2CheckReport *report, FILE *out);

// ==== end model ====

#endif

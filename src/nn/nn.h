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
// ==== end tokenizer ====

// ==== model (gpt2*.c, safetensors.c, hf.c, generate.c) ====
// ==== end model ====

#endif

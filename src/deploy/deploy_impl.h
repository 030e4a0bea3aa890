/* deploy internal header: helpers shared by the files of src/deploy, not
 * part of the public API. */
#ifndef DRIFTPILOT_DEPLOY_IMPL_H
#define DRIFTPILOT_DEPLOY_IMPL_H

#include <sched.h>

#include "deploy.h"

/* Parses a CPU list such as "0-1,3" into set.  DP_ERR_INVAL naming the text
 * (prefixed by what) on failure; an empty list is an error. */
DpStatus deploy_parse_cpu_set(const char *text, cpu_set_t *set, const char *what, DpError *err);

/* True when s is a valid target / job name: [a-z0-9]([a-z0-9-]*[a-z0-9])?, <= 40 chars. */
int deploy_name_ok(const char *s);

/* Copies src into dst[cap]; 0 when it does not fit. */
int deploy_copy(char *dst, size_t cap, const char *src);

#endif

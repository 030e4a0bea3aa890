/* policy internal header: helpers shared by the policy kinds' .c files. */
#ifndef DRIFTPILOT_POLICY_IMPL_H
#define DRIFTPILOT_POLICY_IMPL_H

#include "policy.h"

/* A Policy with a zeroed impl of impl_size bytes; NULL on allocation failure. */
Policy *policy_alloc_(const PolicyVtbl *vt, const SimConfig *cfg, size_t impl_size);
/* The target a heuristic retrains on (rr: round-robin cursor); -1 when none is reachable. */
int policy_choose_target_(PolicyTargetMode mode, int fixed, int *rr, const SimObservation *o);
/* The action "retrain and redeploy on k" in p's action set (0 when k < 0). */
int policy_retrain_action_(const Policy *p, int k);
const char *policy_mode_name_(PolicyTargetMode m);

#endif

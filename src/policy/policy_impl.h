/* policy internal header: helpers shared by the policy kinds' .c files. */
#ifndef DRIFTPILOT_POLICY_IMPL_H
#define DRIFTPILOT_POLICY_IMPL_H

#include "policy.h"

/* A Policy with a zeroed impl of impl_size bytes; NULL on allocation failure. */
Policy *policy_alloc_(const PolicyVtbl *vt, const SimConfig *cfg, size_t impl_size);
/* The target a heuristic retrains on (rr: round-robin cursor); -1 when none is reachable. */
int policy_choose_target_(PolicyTargetMode mode, int fixed, int *rr, const SimObservation *o);
/* The action "retrain on k" in p's action set (0 when k < 0).  The result
 * serves on k, except in SIM_ACTIONS_PAIRS, where a heuristic keeps serving
 * where it serves now (o->serving_target, if up): it picks where to train,
 * not where to move traffic. */
int policy_retrain_action_(const Policy *p, int k, const SimObservation *o);
const char *policy_mode_name_(PolicyTargetMode m);

#endif

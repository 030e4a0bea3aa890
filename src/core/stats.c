/* Mean, sample standard deviation and quantiles for reports and benchmarks. */
#include "core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double dp_mean(const double *x, size_t n) {
    if (n == 0) return 0;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

double dp_std(const double *x, size_t n) {
    if (n < 2) return 0;
    double m = dp_mean(x, n), s = 0;
    for (size_t i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / (double)(n - 1));
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double dp_quantile(const double *x, size_t n, double q) {
    if (n == 0) return 0;
    double *c = malloc(n * sizeof *c);
    if (!c) return NAN;
    memcpy(c, x, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    if (q <= 0) q = 0;
    if (q >= 1) q = 1;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double v = c[lo] + (c[hi] - c[lo]) * (pos - (double)lo);
    free(c);
    return v;
}

/* ff_prefetch_w(p): a hint that the cache line at p is about to be written.  It never
 * faults (any address will do) and changes no result, only when the line arrives. */
#ifndef FASTFEED_PREFETCH_H
#define FASTFEED_PREFETCH_H

#if defined(_MSC_VER)
#include <intrin.h>
#if defined(_M_ARM64) || defined(_M_ARM)
#define ff_prefetch_w(p) __prefetch((const void *)(p))
#else
#define ff_prefetch_w(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#endif
#else
#define ff_prefetch_w(p) __builtin_prefetch((p), 1, 3) /* for a write; keep in all caches */
#endif

#endif

#ifndef LANYARD_CLINUX_SHIM_H
#define LANYARD_CLINUX_SHIM_H
// glibc calls that Swift's Glibc module does not export (malloc.h).
#include <malloc.h>
#include <stddef.h>

// Returns free memory at the top of the heap and free pages inside every
// arena to the kernel; 1 if it released anything.
static inline int lanyard_malloc_trim(size_t pad) { return malloc_trim(pad); }

#endif

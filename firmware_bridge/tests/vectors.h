/* Shared test vectors (PROTOCOL.md section 6): built by the C library, written to
 * test_vectors/frames.hex by `make vectors`, compared byte for byte by test_fb and by the
 * Python tests. */
#ifndef FB_VECTORS_H
#define FB_VECTORS_H

#include <stddef.h>
#include <stdint.h>

#define VEC_MAX 32
#define VEC_BYTES 1400

typedef struct {
    const char *name;
    const char *expect; /* decoder outcome: ok, crc, version, length, short, cobs, overflow */
    uint8_t bytes[VEC_BYTES];
    size_t n;
} vector;

/* Fills out[0..return) with every vector; aborts the test run on a builder failure. */
size_t vectors_build(vector *out);
/* Test-local COBS encoder (independent of the library's) for malformed frames. */
size_t cobs_raw(const uint8_t *in, size_t n, uint8_t *out);

#endif

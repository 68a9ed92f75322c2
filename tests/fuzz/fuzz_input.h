/* Reading a libFuzzer input a few bytes at a time, shared by the virtio fuzz targets. */
#ifndef KILN_FUZZ_INPUT_H
#define KILN_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t *p;
	size_t n;
};

/* The next `bytes` bytes as a little-endian number; past the input's end, zeros. */
static inline uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

/* A guest-physical address for a guest of ram bytes: mostly in RAM, sometimes at its edge or
 * far outside. */
static inline uint64_t fuzz_addr(struct input *in, uint64_t ram)
{
	uint32_t v = (uint32_t)take(in, 4);

	switch (v >> 29) {
	case 0:
		return UINT64_MAX - (v & 0xfff);
	case 1:
		return ram - (v & 0xff);
	default:
		return v % ram;
	}
}

#endif

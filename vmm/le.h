/* Little-endian integers in byte buffers, written and read byte by byte (wire and file formats
 * never take a struct's memory layout). */
#ifndef KILN_LE_H
#define KILN_LE_H

#include <stdint.h>

static inline void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif

/* Firecracker's rule for an instance id, shared by kiln and kiln-jailer (which passes it on). */
#ifndef KILN_INSTANCE_ID_H
#define KILN_INSTANCE_ID_H

#include <stdbool.h>
#include <string.h>

#define INSTANCE_ID_MAX 64

/* 1 to INSTANCE_ID_MAX letters, digits or '-'. */
static inline bool instance_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > INSTANCE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '-' || (id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

#endif

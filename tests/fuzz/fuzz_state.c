/*
 * Fuzz target for the state-file parser: the container (migration/state.c) and every section
 * decoder a restore runs before any vCPU does (VM, vCPU, serial, i8042, poison log, memory,
 * configuration). The first input byte chooses the mode: even, the rest is taken as a whole
 * image; odd, the rest is an image without its checksum, which the target appends, so that the
 * fuzzer reaches the section decoders it could never reach past a 64-bit hash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "config.h"
#include "device_state.h"
#include "i8042.h"
#include "kvm_state_x86_64.h"
#include "le.h"
#include "poison_log.h"
#include "serial.h"
#include "state.h"

static void decode_sections(const struct state_view *v)
{
	static struct kvm_state_vcpu vcpu; /* ~32 KiB: not on the stack */
	struct kvm_state_vm vm;
	char err[512];

	for (size_t i = 0; i < v->nr; i++) {
		const struct state_section *s = &v->sections[i];
		struct state_cursor c = state_cursor_of(s);

		switch (s->tag) {
		case STATE_TAG_VM:
			(void)kvm_state_decode_vm(&c, &vm, err, sizeof(err));
			break;
		case STATE_TAG_VCPU:
			(void)kvm_state_decode_vcpu(&c, &vcpu, err, sizeof(err));
			break;
		case STATE_TAG_SERIAL: {
			struct serial u;

			serial_init(&u, -1, NULL, NULL);
			(void)device_state_load_serial(&u, &c, err, sizeof(err));
			serial_destroy(&u);
			break;
		}
		case STATE_TAG_I8042: {
			struct i8042 k;

			i8042_init(&k, NULL, NULL, NULL);
			(void)device_state_load_i8042(&k, &c, err, sizeof(err));
			i8042_destroy(&k);
			break;
		}
		case STATE_TAG_POISON: {
			struct poison_log log;

			if (poison_log_init(&log) == 0) {
				(void)poison_log_decode(&log, s->data, s->len, true);
				poison_log_destroy(&log);
			}
			break;
		}
		case STATE_TAG_CONFIG: {
			struct vm_config cfg;

			config_init(&cfg);
			(void)config_parse_text(&cfg, "fuzz", (const char *)s->data, s->len, err,
						sizeof(err));
			config_free(&cfg);
			break;
		}
		default:
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state_view view;
	uint8_t *img;
	size_t len;
	char err[512];

	if (size < 1 || size > (1u << 20))
		return 0;
	len = size - 1 + ((data[0] & 1) ? STATE_TRAILER_SIZE : 0);
	img = malloc(len ? len : 1);
	if (!img)
		return 0;
	memcpy(img, data + 1, size - 1);
	if (data[0] & 1)
		put_le(img + size - 1, XXH3_64bits(img, size - 1), 8);
	if (state_parse(img, len, &view, err, sizeof(err)) == 0)
		decode_sections(&view);
	free(img);
	return 0;
}

/* i8042 model: enough of the controller for Linux's probe, reboot=k, and keyboard input. */
#include "i8042.h"

#include <errno.h>

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08
#define ST_UNLOCKED 0x10

#define CTR_KBDINT 0x01
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20

enum {
	CMD_READ_CTR = 0x20,
	CMD_WRITE_CTR = 0x60,
	CMD_AUX_DISABLE = 0xa7,
	CMD_AUX_ENABLE = 0xa8,
	CMD_AUX_TEST = 0xa9,
	CMD_SELF_TEST = 0xaa,
	CMD_KBD_TEST = 0xab,
	CMD_KBD_DISABLE = 0xad,
	CMD_KBD_ENABLE = 0xae,
	CMD_READ_INPUT = 0xc0,
	CMD_READ_MODE = 0xca,
	CMD_WRITE_MODE = 0xcb,
	CMD_WRITE_OUTPUT = 0xd1,
	CMD_WRITE_KBD_BUF = 0xd2,
	CMD_WRITE_AUX_BUF = 0xd3,
	CMD_WRITE_AUX = 0xd4,
	CMD_RESET_CPU = 0xfe,
};

enum { KBD_ECHO = 0xee, KBD_GET_ID = 0xf2, KBD_RESET = 0xff };
enum { KBD_ACK = 0xfa, KBD_SELF_TEST_OK = 0xaa };

void i8042_init(struct i8042 *k, i8042_irq_fn set_irq, i8042_reset_fn reset, void *opaque)
{
	*k = (struct i8042){
		.set_irq = set_irq,
		.reset = reset,
		.opaque = opaque,
		.ctr = CTR_KBDINT | CTR_SYS,
		.status = ST_SYS | ST_UNLOCKED,
	};
	pthread_mutex_init(&k->lock, NULL);
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

static void set_level(struct i8042 *k, int level)
{
	if (level != k->irq_level) {
		k->irq_level = level;
		if (k->set_irq)
			k->set_irq(k->opaque, level);
	}
}

/* Keyboard bytes interrupt the guest when it enabled that; controller replies do not. */
static void push(struct i8042 *k, uint8_t byte, bool from_kbd)
{
	if (k->count == I8042_BUF_LEN)
		return;
	k->buf[(k->head + k->count) % I8042_BUF_LEN] = byte;
	k->count++;
	k->status |= ST_OBF;
	if (from_kbd && (k->ctr & CTR_KBDINT))
		set_level(k, 1);
}

static uint8_t pop(struct i8042 *k)
{
	if (k->count) {
		k->last = k->buf[k->head];
		k->head = (k->head + 1) % I8042_BUF_LEN;
		k->count--;
	}
	if (!k->count)
		k->status &= ~ST_OBF;
	/* A falling then rising edge per byte while keyboard data remains. */
	set_level(k, 0);
	if (k->count && (k->ctr & CTR_KBDINT))
		set_level(k, 1);
	return k->last;
}

static void keyboard_command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case KBD_ECHO:
		push(k, KBD_ECHO, true);
		break;
	case KBD_RESET:
		push(k, KBD_ACK, true);
		push(k, KBD_SELF_TEST_OK, true);
		break;
	case KBD_GET_ID:
		push(k, KBD_ACK, true);
		push(k, 0xab, true);
		push(k, 0x83, true);
		break;
	default:
		push(k, KBD_ACK, true); /* commands and their argument bytes alike */
		break;
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;

	k->pending_cmd = 0;
	k->status &= ~ST_CMD;
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case CMD_WRITE_KBD_BUF:
		push(k, v, true);
		break;
	case CMD_WRITE_MODE:
	case CMD_WRITE_OUTPUT:
	case CMD_WRITE_AUX_BUF:
	case CMD_WRITE_AUX:
		break; /* no A20 gate, no auxiliary device */
	default:
		keyboard_command(k, v);
		break;
	}
}

/* Returns true if the guest asked for a CPU reset. */
static bool command_write(struct i8042 *k, uint8_t cmd)
{
	k->status |= ST_CMD;
	switch (cmd) {
	case CMD_READ_CTR:
		push(k, k->ctr, false);
		break;
	case CMD_WRITE_CTR:
	case CMD_WRITE_MODE:
	case CMD_WRITE_OUTPUT:
	case CMD_WRITE_KBD_BUF:
	case CMD_WRITE_AUX_BUF:
	case CMD_WRITE_AUX:
		k->pending_cmd = cmd;
		break;
	case CMD_AUX_DISABLE:
		k->ctr |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->ctr &= ~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
		push(k, 0xff, false); /* no auxiliary port */
		break;
	case CMD_SELF_TEST:
		push(k, 0x55, false);
		break;
	case CMD_KBD_TEST:
		push(k, 0x00, false);
		break;
	case CMD_KBD_DISABLE:
		k->ctr |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->ctr &= ~CTR_KBDDIS;
		break;
	case CMD_READ_INPUT:
		push(k, 0x00, false);
		break;
	case CMD_READ_MODE:
		push(k, 0x01, false); /* PS/2 mode */
		break;
	case CMD_RESET_CPU:
		k->resets++;
		return true;
	default:
		break;
	}
	return false;
}

static void i8042_read(void *opaque, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;

	pthread_mutex_lock(&k->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t port = I8042_PORT_BASE + offset + i;

		if (port == I8042_DATA_PORT)
			data[i] = pop(k);
		else if (port == I8042_CMD_PORT)
			data[i] = k->status;
		else
			data[i] = 0xff;
	}
	pthread_mutex_unlock(&k->lock);
}

static void i8042_write(void *opaque, uint64_t offset, const uint8_t *data, uint32_t len)
{
	struct i8042 *k = opaque;
	bool reset = false;

	pthread_mutex_lock(&k->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t port = I8042_PORT_BASE + offset + i;

		if (port == I8042_DATA_PORT)
			data_write(k, data[i]);
		else if (port == I8042_CMD_PORT)
			reset |= command_write(k, data[i]);
	}
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

const struct bus_ops i8042_bus_ops = { .read = i8042_read, .write = i8042_write };

int i8042_send_ctrl_alt_del(struct i8042 *k)
{
	static const uint8_t seq[] = { 0x14, 0x11, 0xe0, 0x71 }; /* Ctrl, Alt, E0 Del */
	int ret = 0;

	pthread_mutex_lock(&k->lock);
	if (I8042_BUF_LEN - k->count < sizeof(seq)) {
		ret = -ENOSPC;
	} else {
		for (unsigned i = 0; i < sizeof(seq); i++)
			push(k, seq[i], true);
	}
	pthread_mutex_unlock(&k->lock);
	return ret;
}

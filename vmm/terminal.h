/* The host terminal in raw-ish mode while the guest owns the console. */
#ifndef KILN_TERMINAL_H
#define KILN_TERMINAL_H

#include <stdbool.h>
#include <termios.h>

struct terminal {
	int fd;
	bool saved;
	struct termios orig;
};

/*
 * If fd is a terminal, saves its mode and switches it to raw input with no echo, keeping
 * signal keys (Ctrl-C still stops kiln). Does nothing for pipes and files.
 */
void terminal_raw(struct terminal *t, int fd);

/* Puts the saved mode back; safe to call more than once. */
void terminal_restore(struct terminal *t);

#endif

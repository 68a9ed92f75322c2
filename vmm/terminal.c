/* Terminal mode handling for the serial console. */
#include "terminal.h"

#include <unistd.h>

void terminal_raw(struct terminal *t, int fd)
{
	struct termios raw;

	t->fd = fd;
	t->saved = false;
	if (!isatty(fd) || tcgetattr(fd, &t->orig) < 0)
		return;
	raw = t->orig;
	raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	raw.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
	raw.c_cflag |= CS8;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &raw) == 0)
		t->saved = true;
}

void terminal_restore(struct terminal *t)
{
	if (t->saved)
		tcsetattr(t->fd, TCSANOW, &t->orig);
	t->saved = false;
}

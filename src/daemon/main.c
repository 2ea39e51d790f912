/* SPDX-License-Identifier: MIT */
/* outboxd: placeholder until the daemon wiring lands. */
#include <stdio.h>
int
main(void)
{
	fprintf(stderr, "outboxd: not built yet\n");
	return 1;
}

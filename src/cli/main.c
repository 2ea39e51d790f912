/* SPDX-License-Identifier: MIT */
/* outbox: placeholder until the CLI lands. */
#include <stdio.h>
int
main(void)
{
	fprintf(stderr, "outbox: not built yet\n");
	return 1;
}

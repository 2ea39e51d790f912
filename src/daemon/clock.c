/* SPDX-License-Identifier: MIT */
/* Wall-clock helpers for the daemon: queue times and RFC 5322 dates. */
#include <stdio.h>
#include <time.h>

#include "outbox/daemon.h"

int64_t
daemon_now(void)
{
	return (int64_t)time(NULL);
}

void
daemon_date(char *out, size_t size)
{
	daemon_date_at((int64_t)time(NULL), out, size);
}

void
daemon_date_at(int64_t when, char *out, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
					    "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
					      "May", "Jun", "Jul", "Aug",
					      "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)when;
	struct tm tm;
	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	/* Spelled out, not strftime: the names must not follow the locale. */
	snprintf(out, size, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
		 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
		 off / 60, off % 60);
}

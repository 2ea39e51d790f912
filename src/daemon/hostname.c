/* SPDX-License-Identifier: MIT */
/*
 * Our host name for EHLO, banners, Received: and DSNs: [listen] hostname
 * if set, else the FQDN. Shared by the daemon and the sendmail command so
 * both name the host the same way.
 */
#include <netdb.h>
#include <string.h>
#include <unistd.h>

#include "outbox/daemon.h"
#include "outbox/str.h"

void
daemon_fqdn(const struct config *cfg, char *out, size_t size)
{
	if (cfg->listen.hostname[0] != '\0') {
		str_copy(out, size, cfg->listen.hostname);
		return;
	}
	char name[HOSTNAME_MAX + 1] = "localhost";
	if (gethostname(name, sizeof(name)) != 0 || name[0] == '\0')
		str_copy(name, sizeof(name), "localhost");
	name[sizeof(name) - 1] = '\0';
	if (strchr(name, '.') == NULL) {
		/* The canonical name, usually from /etc/hosts. Start-up only:
		 * it may ask DNS. */
		struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
		if (getaddrinfo(name, NULL, &hints, &ai) == 0 && ai &&
		    ai->ai_canonname && strchr(ai->ai_canonname, '.'))
			str_copy(name, sizeof(name), ai->ai_canonname);
		if (ai)
			freeaddrinfo(ai);
	}
	str_copy(out, size, name);
}
